//! The KMS rules as decisions: (what a key's current record says, what is asked, now) →
//! what the record must say next, or the KMS error. The token runs these inside one
//! store transaction against the key's current record (docs/key-model.md, "Exactly
//! once"), so two callers never both decide on the same old facts: of N concurrent
//! imports of different material into one fresh key, exactly one binds.
//!
//! Pure: no I/O, no clock (time is an argument), no PKCS#11 types; the facts are
//! extracted from and written back to objects by the token.

use super::key::{KeyState, Origin};
use super::lifecycle::{self, Event};
use super::material;
use crate::error::KmsError;

/// What the rules need to know of a key, as its current record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub origin: Origin,
    pub state: KeyState,
    /// The fingerprint of the material the key is bound to; `None` only while no
    /// material was ever bound. The token fills it in from the material a key holds
    /// when the record has none yet (a key created from plaintext while logged out).
    pub bound: Option<[u8; 32]>,
    /// When the material expires, unix seconds; 0 never.
    pub expiry: i64,
}

/// What a decision is given: the key's facts as its current record says them, and
/// whether the record holds secret material now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub facts: KeyFacts,
    pub holds_material: bool,
    /// Whether the record holds secret material an expiry would wipe (`holds_material`
    /// counts a key whose private half was destroyed as holding its public material;
    /// it holds none of this).
    pub holds_secret: bool,
}

/// ImportKeyMaterial, once the material has been unwrapped and fingerprinted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportRequest {
    pub fingerprint: [u8; 32],
    /// KeyMaterialExpireUnix; 0 for material that never expires.
    pub expiry: i64,
    /// When the import token the material came with expires, unix seconds: an import
    /// decided at or after it is refused, however early the call began (review 17b: an
    /// import whose transaction waited past its token's expiry was written).
    pub token_expiry: i64,
}

/// ImportKeyMaterial: the first import binds the key to the material; every later one
/// must bring the same material; the state follows `lifecycle`; the expiry is the
/// request's.
pub fn import(current: &KeyFacts, request: &ImportRequest, now: i64) -> Result<KeyFacts, KmsError> {
    if now >= request.token_expiry {
        return Err(KmsError::ExpiredImportToken);
    }
    if request.expiry != 0 && request.expiry <= now {
        return Err(KmsError::InvalidParameter(
            "KeyMaterialExpireUnix is in the past",
        ));
    }
    let state = lifecycle::transition(current.origin, current.state, Event::ImportMaterial)?;
    material::check_same(current.bound.as_ref().map(|b| &b[..]), &request.fingerprint)?;
    Ok(KeyFacts {
        origin: current.origin,
        state,
        bound: Some(request.fingerprint),
        expiry: request.expiry,
    })
}

/// The event a request for state `wanted` amounts to on a key in `state`.
pub fn event_for(state: KeyState, wanted: KeyState) -> Event {
    match (state, wanted) {
        (KeyState::PendingDeletion, KeyState::Disabled) => Event::CancelDeletion,
        (_, KeyState::Enabled) => Event::Enable,
        (_, KeyState::Disabled) => Event::Disable,
        (_, KeyState::PendingImport) => Event::DeleteMaterial,
        (_, KeyState::PendingDeletion) => Event::ScheduleDeletion,
    }
}

/// What a state change decided: the event the request amounted to, the facts after it,
/// and whether the material had expired by the time of the decision (it is wiped by it,
/// the expiry recorded before the change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub event: Event,
    pub facts: KeyFacts,
    pub expired_first: bool,
}

/// The key a decision at `now` is made on: material that has expired by `now`, not yet
/// wiped by a sweep, is as good as gone, so the key is as its expiry leaves it (review
/// 18c: an EnableKey whose transaction waited past the expiry enabled expired material).
/// The second part says the expiry applied (the decision wipes the material and
/// records the expiry first).
pub fn as_at(current: &Current, now: i64) -> (Current, bool) {
    match expire(&current.facts, current.holds_secret, now) {
        Some(facts) => (
            Current {
                facts,
                holds_material: false,
                holds_secret: false,
            },
            true,
        ),
        None => (current.clone(), false),
    }
}

/// Enable/DisableKey, DeleteKeyMaterial, Schedule/CancelKeyDeletion, decided at `now`
/// on the key as `as_at` says it is then: the event the request amounts to and the
/// facts after it. The binding survives DeleteKeyMaterial (only the same material may
/// come back), so a key holding material must reach this with `bound` filled in:
/// deleting the material of an unbound key is refused here rather than leaving a key
/// bound to nothing.
pub fn change_state(
    current: &Current,
    wanted: KeyState,
    now: i64,
) -> Result<StateChange, KmsError> {
    judge_state_change(current, wanted, now).1
}

/// `change_state`, with the event the request amounts to on the key as `as_at` leaves
/// it, also when it is refused (the name a refusal is recorded under).
pub fn judge_state_change(
    current: &Current,
    wanted: KeyState,
    now: i64,
) -> (Event, Result<StateChange, KmsError>) {
    let (at_now, expired_first) = as_at(current, now);
    let (current, holds_material) = (at_now.facts, at_now.holds_material);
    let event = event_for(current.state, wanted);
    let decided =
        lifecycle::transition_holding(current.origin, current.state, event, holds_material)
            .and_then(|state| {
                if event == Event::DeleteMaterial && holds_material && current.bound.is_none() {
                    return Err(KmsError::InvalidKeyMaterial);
                }
                Ok(StateChange {
                    event,
                    facts: KeyFacts { state, ..current },
                    expired_first,
                })
            });
    (event, decided)
}

/// The material's expiry passing: a key whose current record holds material that has
/// expired by `now` loses it and goes back to PendingImport (keeping its binding), or
/// stays PendingDeletion; `None` when there is nothing to do — the record already moved
/// on (material deleted, or imported again with a later expiry, by someone deciding
/// after the sweep read it).
pub fn expire(current: &KeyFacts, holds_secret: bool, now: i64) -> Option<KeyFacts> {
    // Only secret material is wiped, whatever the state (review 18c: a key whose
    // deletion was scheduled kept expired material for good; review 18e: a key whose
    // private half was destroyed, holding nothing to wipe, was found expired again at
    // every change and every sweep, each recorded).
    let live = holds_secret
        && matches!(
            current.state,
            KeyState::Enabled | KeyState::Disabled | KeyState::PendingDeletion
        );
    if current.expiry == 0 || now < current.expiry || !live {
        return None;
    }
    let state =
        lifecycle::transition(current.origin, current.state, Event::MaterialExpired).ok()?;
    Some(KeyFacts {
        state,
        ..current.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A current record of `facts`, holding (secret) material or not.
    fn cur(facts: &KeyFacts, holds: bool) -> Current {
        Current {
            facts: facts.clone(),
            holds_material: holds,
            holds_secret: holds,
        }
    }

    fn pending(bound: Option<[u8; 32]>) -> KeyFacts {
        KeyFacts {
            origin: Origin::External,
            state: KeyState::PendingImport,
            bound,
            expiry: 0,
        }
    }

    fn request(fp: u8, expiry: i64) -> ImportRequest {
        ImportRequest {
            fingerprint: [fp; 32],
            expiry,
            token_expiry: i64::MAX,
        }
    }

    #[test]
    fn an_import_decided_at_or_after_its_tokens_expiry_is_refused() {
        let late = ImportRequest {
            token_expiry: 100,
            ..request(1, 0)
        };
        assert_eq!(
            import(&pending(None), &late, 100),
            Err(KmsError::ExpiredImportToken)
        );
        assert!(import(&pending(None), &late, 99).is_ok());
    }

    #[test]
    fn the_first_import_binds_and_a_later_one_must_match() {
        let first = import(&pending(None), &request(1, 0), 100).unwrap();
        assert_eq!(first.state, KeyState::Enabled);
        assert_eq!(first.bound, Some([1; 32]));
        // Decided on the facts the first import wrote, another material is refused...
        assert_eq!(
            import(&first, &request(2, 0), 100),
            Err(KmsError::InvalidKeyMaterial)
        );
        // ...and the same one is taken again, with its new expiry.
        let again = import(&first, &request(1, 500), 100).unwrap();
        assert_eq!((again.bound, again.expiry), (Some([1; 32]), 500));
    }

    #[test]
    fn an_expiry_in_the_past_is_refused_before_anything_else() {
        assert!(matches!(
            import(&pending(Some([9; 32])), &request(1, 100), 100),
            Err(KmsError::InvalidParameter(_))
        ));
    }

    #[test]
    fn import_follows_the_lifecycle() {
        let mut facts = pending(None);
        facts.state = KeyState::PendingDeletion;
        assert_eq!(
            import(&facts, &request(1, 0), 0),
            Err(KmsError::IncorrectKeyState("PendingDeletion"))
        );
        facts.origin = Origin::Kms;
        facts.state = KeyState::Enabled;
        assert_eq!(
            import(&facts, &request(1, 0), 0),
            Err(KmsError::UnsupportedOrigin)
        );
        let disabled = KeyFacts {
            state: KeyState::Disabled,
            ..pending(Some([1; 32]))
        };
        assert_eq!(
            import(&disabled, &request(1, 0), 0).unwrap().state,
            KeyState::Disabled
        );
    }

    #[test]
    fn deleting_material_keeps_the_binding_and_needs_one() {
        let enabled = KeyFacts {
            state: KeyState::Enabled,
            ..pending(Some([3; 32]))
        };
        let StateChange {
            event,
            facts: after,
            ..
        } = change_state(&cur(&enabled, true), KeyState::PendingImport, 0).unwrap();
        assert_eq!(event, Event::DeleteMaterial);
        assert_eq!(
            (after.state, after.bound),
            (KeyState::PendingImport, Some([3; 32]))
        );
        let unbound = KeyFacts {
            bound: None,
            ..enabled
        };
        assert_eq!(
            change_state(&cur(&unbound, true), KeyState::PendingImport, 0),
            Err(KmsError::InvalidKeyMaterial)
        );
        assert!(change_state(&cur(&pending(None), false), KeyState::PendingImport, 0).is_ok());
    }

    #[test]
    fn expiry_is_decided_on_the_current_record() {
        let live = KeyFacts {
            state: KeyState::Disabled,
            expiry: 100,
            ..pending(Some([3; 32]))
        };
        assert_eq!(expire(&live, true, 99), None);
        let after = expire(&live, true, 100).unwrap();
        assert_eq!(
            (after.state, after.bound),
            (KeyState::PendingImport, Some([3; 32]))
        );
        // Imported again meanwhile with a later expiry, or deleted: nothing to do.
        assert_eq!(
            expire(
                &KeyFacts {
                    expiry: 500,
                    ..live.clone()
                },
                true,
                100
            ),
            None
        );
        assert_eq!(expire(&pending(Some([3; 32])), false, 100), None);
        assert_eq!(
            expire(
                &KeyFacts {
                    expiry: 0,
                    ..live.clone()
                },
                true,
                100
            ),
            None
        );
    }

    /// Review 18c: a key pending deletion loses the material it holds when that expires,
    /// and keeps its state; one that holds none has nothing to lose.
    #[test]
    fn expired_material_of_a_key_pending_deletion_is_wiped() {
        let pending_deletion = KeyFacts {
            state: KeyState::PendingDeletion,
            expiry: 100,
            ..pending(Some([3; 32]))
        };
        let after = expire(&pending_deletion, true, 100).unwrap();
        assert_eq!(after.state, KeyState::PendingDeletion);
        assert_eq!(expire(&pending_deletion, false, 100), None);
    }

    /// Review 18c: a state change decided once the material has expired (not yet wiped)
    /// is judged on the key as the expiry leaves it, the expiry going first: no change
    /// makes expired material usable, and a change the wiped key allows wipes it too.
    #[test]
    fn a_state_change_decided_after_the_material_expired_is_judged_after_the_expiry() {
        let disabled = KeyFacts {
            state: KeyState::Disabled,
            expiry: 100,
            ..pending(Some([3; 32]))
        };
        let before = change_state(&cur(&disabled, true), KeyState::Enabled, 99).unwrap();
        assert_eq!(
            (before.facts.state, before.expired_first),
            (KeyState::Enabled, false)
        );
        for wanted in [KeyState::Enabled, KeyState::Disabled] {
            assert_eq!(
                change_state(&cur(&disabled, true), wanted, 100),
                Err(KmsError::IncorrectKeyState(KeyState::PendingImport.name()))
            );
        }
        let scheduled =
            change_state(&cur(&disabled, true), KeyState::PendingDeletion, 100).unwrap();
        assert_eq!(
            (scheduled.facts.state, scheduled.expired_first),
            (KeyState::PendingDeletion, true)
        );
        // A key pending deletion: its cancellation finds no material left.
        let pending_deletion = KeyFacts {
            state: KeyState::PendingDeletion,
            ..disabled
        };
        let cancelled =
            change_state(&cur(&pending_deletion, true), KeyState::Disabled, 100).unwrap();
        assert_eq!(
            (
                cancelled.event,
                cancelled.facts.state,
                cancelled.expired_first
            ),
            (Event::CancelDeletion, KeyState::PendingImport, true)
        );
    }

    /// Review 18e: a key whose private half was destroyed holds its public material but
    /// nothing an expiry wipes: pending deletion, it is not found expired again at every
    /// decision (each would record the expiry once more).
    #[test]
    fn a_key_holding_no_secret_material_is_not_expired_again() {
        let public_only = Current {
            facts: KeyFacts {
                state: KeyState::PendingDeletion,
                expiry: 100,
                ..pending(Some([3; 32]))
            },
            holds_material: true,
            holds_secret: false,
        };
        let cancelled = change_state(&public_only, KeyState::Disabled, 200).unwrap();
        assert_eq!(
            (cancelled.facts.state, cancelled.expired_first),
            (KeyState::Disabled, false)
        );
    }

    #[test]
    fn state_changes_are_decided_on_the_current_state() {
        let enabled = KeyFacts {
            state: KeyState::Enabled,
            ..pending(Some([3; 32]))
        };
        assert_eq!(
            change_state(&cur(&enabled, true), KeyState::Disabled, 0)
                .unwrap()
                .facts
                .state,
            KeyState::Disabled
        );
        // Once another caller deleted the material, enabling is refused.
        assert_eq!(
            change_state(&cur(&pending(Some([3; 32])), false), KeyState::Enabled, 0),
            Err(KmsError::IncorrectKeyState("PendingImport"))
        );
        let deleting = KeyFacts {
            state: KeyState::PendingDeletion,
            ..enabled
        };
        let StateChange {
            event,
            facts: after,
            ..
        } = change_state(&cur(&deleting, true), KeyState::Disabled, 0).unwrap();
        assert_eq!(
            (event, after.state),
            (Event::CancelDeletion, KeyState::Disabled)
        );
        // Deleted material does not come back with the cancelled deletion.
        let StateChange {
            event,
            facts: after,
            ..
        } = change_state(&cur(&deleting, false), KeyState::Disabled, 0).unwrap();
        assert_eq!(
            (event, after.state),
            (Event::CancelDeletion, KeyState::PendingImport)
        );
    }
}

//! The face of the key model: CreateKey, GetParametersForImport, ImportKeyMaterial,
//! DeleteKeyMaterial, the state changes and the expiry sweep, each as one call. Rules
//! that need no records are plain functions; rules decided on a key's current record
//! run through `KeyRecords`, inside its transaction, so each is decided exactly once.
//!
//! What each rule is lives in `decide` and `lifecycle`; this module says which rule a
//! request runs, what it writes (state, binding, expiry, the material kept, wiped or
//! installed) and which audit operation records it. It must not know how records are
//! kept, nor any PKCS#11 type.

use super::audit::Operation;
use super::decide::{self, ImportRequest, KeyFacts};
use super::import::WrappingAlgorithm;
use super::key::{KeyId, KeySpec, KeyState, KeyUsage, Origin};
use super::lifecycle::{self, Event};
use super::records::{Decision, KeyRecords, MaterialChange};
use crate::error::KmsError;

/// What a new key starts as (CreateKey, or a key made from material handed in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub id: KeyId,
    pub facts: KeyFacts,
    /// The usage the key is confined to: the one asked for, or for a key waiting for
    /// material the only one its spec allows, if there is one.
    pub usage: Option<KeyUsage>,
}

/// CreateKey. A key without material waits for it (PendingImport, EXTERNAL only), with
/// a usage its spec allows; one with material is Enabled, bound to `bound` when its
/// fingerprint is known.
///
/// The usage of a key made with material is taken as given, as it always was: keys
/// generated, unwrapped, derived or created from plaintext are judged at each use by
/// the mechanism their key type allows, and tightening that here would refuse keys
/// that were accepted before (docs/key-model.md).
pub fn create_key(
    origin: Origin,
    spec: Option<KeySpec>,
    usage: Option<KeyUsage>,
    holds_material: bool,
    bound: Option<[u8; 32]>,
) -> Result<NewKey, KmsError> {
    let (state, usage) = if holds_material {
        (KeyState::Enabled, usage)
    } else {
        if origin != Origin::External {
            return Err(KmsError::UnsupportedOrigin);
        }
        let spec = spec.ok_or(KmsError::InvalidParameter(
            "a key waiting for material needs a key spec",
        ))?;
        if usage.is_some_and(|u| !spec.allows(u)) {
            return Err(KmsError::InvalidParameter(
                "the key usage does not fit the key spec",
            ));
        }
        (KeyState::PendingImport, usage.or_else(|| spec.only_usage()))
    };
    Ok(NewKey {
        id: KeyId::generate(),
        facts: KeyFacts {
            origin,
            state,
            bound: if holds_material { bound } else { None },
            expiry: 0,
        },
        usage,
    })
}

/// GetParametersForImport: whether import parameters for `alg` may be issued for a key
/// whose record says `origin`, `state` and `spec` (`None`: the record names none). They
/// are issued when an import could be made (`precheck`), for a spec the algorithm fits;
/// answers the spec.
pub fn check_import_parameters(
    origin: Origin,
    state: Option<KeyState>,
    spec: Option<KeySpec>,
    alg: WrappingAlgorithm,
) -> Result<KeySpec, KmsError> {
    precheck_import(origin, state)?;
    let spec = spec.ok_or(KmsError::NotFound)?;
    if !spec.accepts(alg) {
        return Err(KmsError::InvalidParameter(
            "the wrapping algorithm does not fit the key spec",
        ));
    }
    Ok(spec)
}

/// ImportKeyMaterial's `precheck` on a cached record whose state may be missing (a
/// malformed record): the origin is judged first, then a missing state is NotFound.
/// Answers the state.
pub fn precheck_import(origin: Origin, state: Option<KeyState>) -> Result<KeyState, KmsError> {
    // `lifecycle::transition` judges an import's origin before its state; a state that
    // allows imports stands in for a missing one there.
    precheck(
        origin,
        state.unwrap_or(KeyState::PendingImport),
        Event::ImportMaterial,
    )?;
    state.ok_or(KmsError::NotFound)
}

/// Whether a request on a key whose cached record says `origin` and `state` could succeed: asked
/// before any expensive work (unwrapping, say) so a hopeless request is refused early.
/// The answer is decided again, on the current record, by the call itself.
pub fn precheck(origin: Origin, state: KeyState, event: Event) -> Result<(), KmsError> {
    lifecycle::transition(origin, state, event).map(|_| ())
}

/// The rules decided on current records, over `R`.
#[derive(Debug)]
pub struct KeyModel<'r, R: KeyRecords + ?Sized> {
    records: &'r R,
}

impl<'r, R: KeyRecords + ?Sized> KeyModel<'r, R> {
    pub fn new(records: &'r R) -> Self {
        KeyModel { records }
    }

    /// ImportKeyMaterial of material whose fingerprint and expiry `request` carries:
    /// the first import binds the key, a later one must bring the same material.
    pub fn import_material(
        &self,
        id: &KeyId,
        request: &ImportRequest,
        material: &R::Material,
    ) -> Result<(), R::Error> {
        self.records.decide_on(id, true, &mut |current| {
            // The time of the decision, inside its transaction: a transaction that waited
            // for its lock decides at the time it decides (review 17b), on the key as an
            // expiry passed by then leaves it, the expiry recorded first (review 18e).
            let now = self.records.now();
            let (at_now, expired_first) = decide::as_at(current, now);
            let facts = decide::import(&at_now.facts, request, now)?;
            Ok(Some(Decision {
                facts,
                material: MaterialChange::Install(material.clone()),
                operation: Operation::ImportKeyMaterial,
                preceded_by: expired_first.then_some(Operation::KeyMaterialExpired),
            }))
        })
    }

    /// Enable/DisableKey, DeleteKeyMaterial (`PendingImport`), ScheduleKeyDeletion
    /// (`PendingDeletion`) and CancelKeyDeletion (`Disabled` from PendingDeletion).
    pub fn change_state(&self, id: &KeyId, wanted: KeyState) -> Result<(), R::Error> {
        self.change_state_judged(id, wanted).0
    }

    /// `change_state`, with the event the request amounted to on the record it was
    /// decided on (`None` where no decision ran): a refusal is recorded under that
    /// name, not under one a stale cache would give (review 18a).
    pub fn change_state_judged(
        &self,
        id: &KeyId,
        wanted: KeyState,
    ) -> (Result<(), R::Error>, Option<Event>) {
        // Only a deletion must record the binding of the material it wipes (the same
        // material alone may come back); the other changes leave the record's binding
        // as it is, and need no login to compute one.
        let deleting = wanted == KeyState::PendingImport;
        let mut judged = None;
        let result = self.records.decide_on(id, deleting, &mut |current| {
            // The time of the decision, inside its transaction.
            let now = self.records.now();
            let (event, decided) = decide::judge_state_change(current, wanted, now);
            judged = Some(event);
            let change = decided?;
            let material = if change.event == Event::DeleteMaterial || change.expired_first {
                MaterialChange::Wipe
            } else {
                MaterialChange::Keep
            };
            Ok(Some(Decision {
                facts: change.facts,
                material,
                operation: Operation::of(change.event),
                preceded_by: change
                    .expired_first
                    .then_some(Operation::KeyMaterialExpired),
            }))
        });
        (result, judged)
    }

    /// DeleteKeyMaterial: the key waits for the same material again.
    pub fn delete_material(&self, id: &KeyId) -> Result<(), R::Error> {
        self.change_state(id, KeyState::PendingImport)
    }

    /// The sweep's expiries: each key in `due` whose current record still holds
    /// material expired by now loses it; the others are left as they are.
    pub fn expire(&self, due: &[KeyId]) -> Result<(), R::Error> {
        let now = self.records.now();
        self.records.decide_on_each(due, &mut |current| {
            Ok(
                decide::expire(&current.facts, current.holds_secret, now).map(|facts| Decision {
                    facts,
                    material: MaterialChange::Wipe,
                    operation: Operation::KeyMaterialExpired,
                    preceded_by: None,
                }),
            )
        })
    }
}

#[cfg(test)]
mod tests;

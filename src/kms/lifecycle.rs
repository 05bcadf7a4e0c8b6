//! The key state machine: every state change of a KMS key goes through `transition`.
//!
//! ```text
//!   create (KMS) ─► Enabled ◄──────── enable ──────── Disabled
//!                   │  ▲  └────────── disable ────────►  │
//!   create (EXTERNAL)  │ import (same material)            │ import (keeps Disabled)
//!        ▼          │  │                                 │
//!   PendingImport ◄─┴──┴── delete material / material expired (EXTERNAL only)
//!   any but PendingDeletion ── schedule deletion ─► PendingDeletion ── cancel ─► Disabled
//!                                  (PendingImport if the key holds no material: `transition_holding`)
//! ```
//! Rules from the kms-docs: material can be imported only into EXTERNAL keys; after it
//! expires or is deleted the key is unusable (PendingImport) until the same material
//! returns. This module must not know about PKCS#11.

use super::key::{KeyState, Origin};
use crate::error::KmsError;

/// What is asked of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Enable,
    Disable,
    ImportMaterial,
    DeleteMaterial,
    MaterialExpired,
    ScheduleDeletion,
    CancelDeletion,
}

/// The state after `event`, or why the key refuses it.
pub fn transition(origin: Origin, state: KeyState, event: Event) -> Result<KeyState, KmsError> {
    use Event::*;
    use KeyState::*;
    let refuse = |s: KeyState| Err(KmsError::IncorrectKeyState(s.name()));
    match (event, state) {
        (ImportMaterial | DeleteMaterial | MaterialExpired, _) if origin != Origin::External => {
            Err(KmsError::UnsupportedOrigin)
        }
        // Expired material is wiped whatever the state; the deletion stays pending.
        (MaterialExpired, PendingDeletion) => Ok(PendingDeletion),
        (_, PendingDeletion) if event != CancelDeletion => refuse(state),
        (Enable, Enabled | Disabled) => Ok(Enabled),
        (Disable, Enabled | Disabled) => Ok(Disabled),
        (Enable | Disable, PendingImport) => refuse(state),
        (ImportMaterial, PendingImport | Enabled) => Ok(Enabled),
        (ImportMaterial, Disabled) => Ok(Disabled),
        (DeleteMaterial | MaterialExpired, Enabled | Disabled | PendingImport) => Ok(PendingImport),
        (ScheduleDeletion, _) => Ok(PendingDeletion),
        (CancelDeletion, PendingDeletion) => Ok(Disabled),
        (CancelDeletion, _) => refuse(state),
        // PendingDeletion with any other event was refused above.
        (_, PendingDeletion) => refuse(state),
    }
}

/// `transition` for a key that holds material now (`holds_material`) or not: a deletion
/// cancelled on a key without material (deleted, or never imported) leaves it
/// PendingImport, where Disabled would let an EnableKey make it Enabled with nothing to
/// use (only the same material's return does that); and no key without material is
/// enabled.
pub fn transition_holding(
    origin: Origin,
    state: KeyState,
    event: Event,
    holds_material: bool,
) -> Result<KeyState, KmsError> {
    let next = transition(origin, state, event)?;
    match (event, holds_material) {
        (Event::CancelDeletion, false) => Ok(KeyState::PendingImport),
        // Not reached through this module (a key without material is never Disabled
        // now), but a token written before could hold one.
        (Event::Enable, false) => Err(KmsError::IncorrectKeyState(state.name())),
        _ => Ok(next),
    }
}

/// Whether a key in `state` may be used for cryptography (expiry is checked apart).
pub fn usable(state: KeyState) -> Result<(), KmsError> {
    match state {
        KeyState::Enabled => Ok(()),
        other => Err(KmsError::IncorrectKeyState(other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;
    use KeyState::*;

    /// Every (origin, state, event) and its expected outcome: `Some(state)` allowed,
    /// `None` refused.
    #[test]
    fn every_transition_allowed_and_refused() {
        let table: &[(Origin, KeyState, Event, Option<KeyState>)] = &[
            (Origin::Kms, Enabled, Enable, Some(Enabled)),
            (Origin::Kms, Enabled, Disable, Some(Disabled)),
            (Origin::Kms, Disabled, Enable, Some(Enabled)),
            (Origin::Kms, Disabled, Disable, Some(Disabled)),
            (Origin::Kms, Enabled, ImportMaterial, None),
            (Origin::Kms, Enabled, DeleteMaterial, None),
            (Origin::Kms, Enabled, MaterialExpired, None),
            (
                Origin::Kms,
                Enabled,
                ScheduleDeletion,
                Some(PendingDeletion),
            ),
            (
                Origin::Kms,
                Disabled,
                ScheduleDeletion,
                Some(PendingDeletion),
            ),
            (Origin::Kms, PendingDeletion, CancelDeletion, Some(Disabled)),
            (Origin::Kms, PendingDeletion, Enable, None),
            (Origin::Kms, PendingDeletion, ScheduleDeletion, None),
            (Origin::Kms, Enabled, CancelDeletion, None),
            (
                Origin::External,
                PendingImport,
                ImportMaterial,
                Some(Enabled),
            ),
            (Origin::External, Enabled, ImportMaterial, Some(Enabled)),
            (Origin::External, Disabled, ImportMaterial, Some(Disabled)),
            (Origin::External, PendingDeletion, ImportMaterial, None),
            (
                Origin::External,
                Enabled,
                DeleteMaterial,
                Some(PendingImport),
            ),
            (
                Origin::External,
                Disabled,
                DeleteMaterial,
                Some(PendingImport),
            ),
            (
                Origin::External,
                PendingImport,
                DeleteMaterial,
                Some(PendingImport),
            ),
            (Origin::External, PendingDeletion, DeleteMaterial, None),
            (
                Origin::External,
                Enabled,
                MaterialExpired,
                Some(PendingImport),
            ),
            (
                Origin::External,
                Disabled,
                MaterialExpired,
                Some(PendingImport),
            ),
            (
                Origin::External,
                PendingDeletion,
                MaterialExpired,
                Some(PendingDeletion),
            ),
            (Origin::External, PendingImport, Enable, None),
            (Origin::External, PendingImport, Disable, None),
            (
                Origin::External,
                PendingImport,
                ScheduleDeletion,
                Some(PendingDeletion),
            ),
            (
                Origin::External,
                PendingDeletion,
                CancelDeletion,
                Some(Disabled),
            ),
            (Origin::External, PendingImport, CancelDeletion, None),
        ];
        for (origin, state, event, want) in table {
            let got = transition(*origin, *state, *event).ok();
            assert_eq!(got, *want, "{origin:?} {state:?} {event:?}");
        }
    }

    #[test]
    fn import_into_a_kms_key_is_unsupported_origin() {
        assert_eq!(
            transition(Origin::Kms, Enabled, ImportMaterial),
            Err(KmsError::UnsupportedOrigin)
        );
    }

    #[test]
    fn only_enabled_keys_are_usable() {
        assert!(usable(Enabled).is_ok());
        for s in [Disabled, PendingImport, PendingDeletion] {
            assert!(usable(s).is_err());
        }
    }

    #[test]
    fn a_cancelled_deletion_without_material_is_pending_import() {
        for origin in [Origin::Kms, Origin::External] {
            assert_eq!(
                transition_holding(origin, PendingDeletion, CancelDeletion, true),
                Ok(Disabled)
            );
        }
        assert_eq!(
            transition_holding(Origin::External, PendingDeletion, CancelDeletion, false),
            Ok(PendingImport)
        );
        assert_eq!(
            transition_holding(Origin::External, Disabled, Enable, false),
            Err(KmsError::IncorrectKeyState("Disabled"))
        );
        assert_eq!(
            transition_holding(Origin::External, Enabled, Disable, false),
            Ok(Disabled)
        );
    }
}

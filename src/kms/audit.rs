//! What an audit event says, in the kms-docs' vocabulary: the operation, its outcome,
//! the key (or object) it concerns, the public identifier of the material involved, and
//! who (process) and when. Encoded as one JSON object with the documents' PascalCase
//! field names; the store keeps the bytes and chains them (`store::audit`).
//!
//! An event must never carry material, a PIN or any secret: the only material-derived
//! field is `MaterialId`, a hash of the keyed fingerprint (`material_id`), which says
//! "the same material as in that other event" and nothing about the material itself.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use super::lifecycle::Event;
use crate::error::KmsError;

/// The operations the trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    CreateKey,
    GetParametersForImport,
    ImportKeyMaterial,
    DeleteKeyMaterial,
    /// The sweep found the material's expiry passed and wiped it.
    KeyMaterialExpired,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    /// A key object destroyed (`C_DestroyObject`).
    DestroyKey,
    /// The sweep removed an import wrapping key pair whose token expired.
    PurgeWrappingKey,
    #[serde(rename = "C_InitToken")]
    InitToken,
    #[serde(rename = "C_InitPIN")]
    InitPin,
    #[serde(rename = "C_SetPIN")]
    SetPin,
    /// A wrong PIN (`C_Login`, or the old PIN of `C_SetPIN`).
    #[serde(rename = "C_Login")]
    Login,
    /// The wrong PIN that reached the lockout limit.
    PinLockout,
}

impl Operation {
    /// The operation a lifecycle event is asked by.
    pub fn of(event: Event) -> Operation {
        match event {
            Event::Enable => Operation::EnableKey,
            Event::Disable => Operation::DisableKey,
            Event::ImportMaterial => Operation::ImportKeyMaterial,
            Event::DeleteMaterial => Operation::DeleteKeyMaterial,
            Event::MaterialExpired => Operation::KeyMaterialExpired,
            Event::ScheduleDeletion => Operation::ScheduleKeyDeletion,
            Event::CancelDeletion => Operation::CancelKeyDeletion,
        }
    }

    /// The name as printed (the JSON `EventName`).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Whether the operation was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Success,
    Refused,
}

/// One event. `None` fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditEvent {
    /// Unix seconds.
    pub event_time: i64,
    pub token_serial: String,
    pub event_name: Operation,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_id: Option<String>,
    /// An object without a KeyId: its store uid, hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub object_uid: Option<String>,
    /// The kms-docs error code of a refusal (`KmsError::code`), or the PKCS#11 one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
    /// `material_id` of the material bound, imported, offered, deleted or expired.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub material_id: Option<String>,
    /// Whose PIN (`User` or `SO`), for the PIN events.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
    /// The wrong PINs in a row so far, for failed logins and lockouts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pin_failures: Option<u32>,
    pub process_id: u32,
}

impl AuditEvent {
    /// A successful `operation` now, by this process.
    pub fn new(event_time: i64, serial: &str, operation: Operation) -> AuditEvent {
        AuditEvent {
            event_time,
            token_serial: serial.to_owned(),
            event_name: operation,
            outcome: Outcome::Success,
            key_id: None,
            object_uid: None,
            error_code: None,
            error_message: None,
            material_id: None,
            role: None,
            pin_failures: None,
            process_id: std::process::id(),
        }
    }

    pub fn key(mut self, key_id: &[u8]) -> AuditEvent {
        self.key_id = Some(String::from_utf8_lossy(key_id).into_owned());
        self
    }

    pub fn object(mut self, uid: &[u8]) -> AuditEvent {
        self.object_uid = Some(uid.iter().map(|b| format!("{b:02x}")).collect());
        self
    }

    pub fn material(mut self, fingerprint: Option<&[u8]>) -> AuditEvent {
        self.material_id = fingerprint.map(material_id);
        self
    }

    /// A refusal by the key model.
    pub fn refused(self, error: &KmsError) -> AuditEvent {
        self.refused_with(error.code(), &error.to_string())
    }

    /// A refusal with another code (a PKCS#11 one).
    pub fn refused_with(mut self, code: &str, message: &str) -> AuditEvent {
        self.outcome = Outcome::Refused;
        self.error_code = Some(code.to_owned());
        self.error_message = Some(message.to_owned());
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<AuditEvent> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The public identifier of material whose keyed fingerprint is `fingerprint`: the
/// first 16 bytes of SHA-256 over a label and the fingerprint, hex. The fingerprint is
/// already a MAC under a token subkey; this hash of it reveals nothing more, and lets a
/// reader see that two events concern the same material.
pub fn material_id(fingerprint: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"kmshsm material id v1\0");
    ctx.update(fingerprint);
    ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_kms_docs_names_and_no_empty_fields() {
        let e = AuditEvent::new(1_700_000_000, "serial-1", Operation::ImportKeyMaterial)
            .key(b"key-123")
            .material(Some(&[7; 32]))
            .refused(&KmsError::InvalidKeyMaterial);
        let text = String::from_utf8(e.encode()).unwrap();
        assert!(
            text.contains(r#""EventName":"ImportKeyMaterial""#),
            "{text}"
        );
        assert!(
            text.contains(r#""ErrorCode":"InvalidKeyMaterial""#),
            "{text}"
        );
        assert!(!text.contains("ObjectUid"), "{text}");
        assert_eq!(AuditEvent::decode(text.as_bytes()), Some(e));
        assert_eq!(Operation::InitPin.name(), "C_InitPIN");
    }

    #[test]
    fn the_material_id_is_stable_and_not_the_fingerprint() {
        let id = material_id(&[7; 32]);
        assert_eq!(id.len(), 32);
        assert_eq!(id, material_id(&[7; 32]));
        assert_ne!(id, material_id(&[8; 32]));
        assert!(!id.contains("0707070707"));
    }
}

//! What the store indexes a token object by: lookup keys for the attributes searches
//! usually name, and the time something about the object falls due.
//!
//! The store keeps both beside each record (`store::RecordIndex`) so that a token with
//! many objects finds one by label, id or KMS key id, and the expiry sweep finds what is
//! due, without reading the rest. The same keys index the in-memory table. This module
//! must stay a pure function of an object's plain attributes: the store can only answer
//! for what was computed when the record was written.

use crate::ck::{CKA_ID, CKA_LABEL};

use super::attr::{AttrType, Value};
use super::lookup::LookupKey;
use super::policy::{IMPORT_TOKEN, KEY_ID, KEY_STATE, MATERIAL_EXPIRY, TOKEN_EXPIRY};
use super::Object;
use crate::store::RecordIndex;

/// Attributes searches usually name. Changing this list changes what the store holds:
/// bump `VERSION` so that tokens written before rebuild their index on open.
pub(crate) const INDEXED: [AttrType; 4] = [CKA_LABEL, CKA_ID, KEY_ID, IMPORT_TOKEN];

/// Recorded in a token's metadata once every record carries the index this build makes.
/// The due times are part of it: version 2 makes a key pending deletion that still holds
/// expiring material due (review 18c).
pub(crate) const VERSION: &[u8] = b"2:label,id,key-id,import-token;due";

/// The lookup key for `value` of attribute `ty`: the type, then the value's bytes.
pub(crate) fn lookup_key(ty: AttrType, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + value.len());
    key.extend_from_slice(&ty.get().to_be_bytes());
    key.extend_from_slice(value);
    key
}

/// The same key as a `LookupKey`, for the in-memory index, built without a heap
/// allocation when it is short (as labels and ids are).
pub(crate) fn table_key(ty: AttrType, value: &[u8]) -> LookupKey {
    const TYPE_LEN: usize = std::mem::size_of::<AttrType>();
    let mut buf = [0u8; 64];
    let len = TYPE_LEN + value.len();
    match buf.get_mut(..len) {
        Some(key) => {
            key[..TYPE_LEN].copy_from_slice(&ty.get().to_be_bytes());
            key[TYPE_LEN..].copy_from_slice(value);
            LookupKey::new(key)
        }
        None => LookupKey::new(&lookup_key(ty, value)),
    }
}

/// The first indexed attribute `template` names, as a lookup key. Any one will do: a
/// match must have every value the template names, so the objects holding one of them
/// include all the matches.
pub(crate) fn search_key(template: &[(AttrType, Value)]) -> Option<Vec<u8>> {
    INDEXED.iter().find_map(|wanted| {
        template
            .iter()
            .find(|(ty, _)| ty == wanted)
            .and_then(|(ty, v)| v.as_bytes().map(|b| lookup_key(*ty, b)))
    })
}

/// When something about `object` expires: its import token, or its live material.
pub(crate) fn deadline_of(object: &Object) -> Option<i64> {
    if let Some(at) = object.ulong(TOKEN_EXPIRY) {
        return Some(at as i64);
    }
    let expiry = object.ulong(MATERIAL_EXPIRY).filter(|e| *e != 0)?;
    let state = object.ulong(KEY_STATE)?;
    // Material that expires is wiped whatever the key's state, pending deletion included
    // (a key there keeps its state, so only the material it still holds makes it due).
    let live = state == crate::vendor::KMSHSM_STATE_ENABLED
        || state == crate::vendor::KMSHSM_STATE_DISABLED
        || (state == crate::vendor::KMSHSM_STATE_PENDING_DELETION
            && object.holds_secret_material());
    live.then_some(expiry as i64)
}

/// The index the store keeps for `object`.
pub(crate) fn record_index(object: &Object) -> RecordIndex {
    RecordIndex {
        lookup: INDEXED
            .iter()
            .filter_map(|ty| object.bytes(*ty).map(|v| lookup_key(*ty, v)))
            .collect(),
        due: deadline_of(object),
    }
}

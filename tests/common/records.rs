//! A token file's object records as an attacker with write access and the record format
//! at hand edits them (offline, no PIN): for the tests of what the module notices.

use std::path::Path;

use cryptoki::context::Pkcs11;
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::CK_ATTRIBUTE_TYPE;
use kmshsm::object::attr::{self, AttrType, Value};

use super::{attribute_bytes, hex, slot_of_token, user_session, TestEnv, TOKEN_LABEL};

/// Releases the token for an offline edit (finalizes `ctx`), runs `edit`, then loads the
/// module again and logs the user in on the token: the new context and session.
pub fn offline(env: &TestEnv, ctx: Pkcs11, edit: impl FnOnce()) -> (Pkcs11, Session) {
    ctx.finalize().unwrap();
    edit();
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    (ctx, session)
}

/// The record uid of `object` (its `CKA_UNIQUE_ID`, hex).
pub fn uid_of(session: &Session, object: ObjectHandle) -> Vec<u8> {
    let hex_id = attribute_bytes(session, object, AttributeType::UniqueId);
    hex(std::str::from_utf8(&hex_id).unwrap())
}

/// Rewrites the plain part of the record `uid` in the token database `db_path` with
/// `edit`, decoding and re-encoding it.
pub fn edit_plain(db_path: &Path, uid: &[u8], edit: impl FnOnce(&mut Vec<(u64, Value)>)) {
    let db = rusqlite::Connection::open(db_path).unwrap();
    let plain: Vec<u8> = db
        .query_row("SELECT plain FROM objects WHERE uid = ?1", [uid], |r| {
            r.get(0)
        })
        .unwrap();
    let mut attrs: Vec<(u64, Value)> = attr::decode(&plain)
        .unwrap()
        .into_iter()
        .map(|(t, v)| (t.get(), v))
        .collect();
    edit(&mut attrs);
    let encoded = attr::encode(attrs.iter().map(|(t, v)| (AttrType::new(*t), v)));
    let n = db
        .execute(
            "UPDATE objects SET plain = ?2 WHERE uid = ?1",
            rusqlite::params![uid, encoded],
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// Sets attribute `ty` of a decoded record to `value`.
pub fn set_attr(attrs: &mut Vec<(u64, Value)>, ty: CK_ATTRIBUTE_TYPE, value: Value) {
    attrs.retain(|(t, _)| *t != ty);
    attrs.push((ty, value));
}

//! Records forged offline (issue 13): with write access to the token database and no
//! PIN, an attacker edits records with rusqlite while no process holds the token — flips
//! an attribute, swaps a public key's modulus, re-enables a disabled key, swaps two
//! records between uids, marks a key trusted, strips a record's authentication. After
//! the next login each edited object is refused with `CKR_KMSHSM_RECORD_TAMPERED`, and
//! everything else on the token still works (docs/security.md, "Records at rest").
//! Run with `cargo nextest run --test tamper`.

#![allow(clippy::unwrap_used, unreachable_pub)]
// test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

// CK_ULONG is u64 here and u32 on other targets, so the casts stay.
#![allow(clippy::unnecessary_cast)]

mod common;

use common::kms::*;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use kmshsm::object::attr::{self, AttrType, Value};

const TAMPERED: RvError = RvError::VendorDefined(KMSHSM | 0x07);

/// The store uid of an object (its `CKA_UNIQUE_ID` is the uid in hex).
fn uid_of(session: &Session, object: ObjectHandle) -> Vec<u8> {
    let hex_id = attribute_bytes(session, object, AttributeType::UniqueId);
    hex(std::str::from_utf8(&hex_id).unwrap())
}

/// Rewrites the plain part of the record `uid` with `edit`, decoding and re-encoding
/// it as an attacker with the format at hand would.
fn edit_plain(env: &TestEnv, uid: &[u8], edit: impl FnOnce(&mut Vec<(u64, Value)>)) {
    let db = rusqlite::Connection::open(env.token_database()).unwrap();
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

fn set_attr(attrs: &mut Vec<(u64, Value)>, ty: CK_ATTRIBUTE_TYPE, value: Value) {
    attrs.retain(|(t, _)| *t != ty as u64);
    attrs.push((ty as u64, value));
}

fn find_one(session: &Session, label: &str) -> ObjectHandle {
    let found = find_by_label(session, label);
    assert_eq!(found.len(), 1, "objects labelled {label}: {found:?}");
    found[0]
}

fn aes_key(session: &Session, label: &str, sensitive: bool) -> ObjectHandle {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(sensitive),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap()
}

fn encrypts(session: &Session, key: ObjectHandle) -> Result<Vec<u8>, RvError> {
    session
        .encrypt(&Mechanism::AesCbcPad(IV), key, b"data")
        .map_err(|e| match e {
            cryptoki::error::Error::Pkcs11(rv, _) => rv,
            other => panic!("{other}"),
        })
}

/// Releases the token so the attacker can edit the file, then loads and logs in again.
fn offline(env: &TestEnv, ctx: Pkcs11, edit: impl FnOnce()) -> (Pkcs11, Session) {
    ctx.finalize().unwrap();
    edit();
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    (ctx, session)
}

#[test]
fn every_offline_edit_is_refused_after_login_and_nothing_else_is_lost() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let secret = aes_key(&session, "secret", true);
    let other = aes_key(&session, "other", true);
    let control = aes_key(&session, "control", true);
    let disabled = aes_key(&session, "disabled", true);
    let spare = session
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"spare".to_vec()),
                Attribute::ValueLen(32.into()),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let spare_mac = session.sign(&Mechanism::Sha256Hmac, spare, b"m").unwrap();
    set_state(&session, disabled, STATE_DISABLED).unwrap();
    let (public_a, _private_a) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"rsa-a".to_vec()),
                Attribute::ModulusBits(2048.into()),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    let (public_b, _) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"rsa-b".to_vec()),
                Attribute::ModulusBits(2048.into()),
            ],
            &[Attribute::Token(true)],
        )
        .unwrap();
    let uids: Vec<Vec<u8>> = [secret, other, disabled, public_a]
        .iter()
        .map(|h| uid_of(&session, *h))
        .collect();
    let modulus_b = attribute_bytes(&session, public_b, AttributeType::Modulus);
    let control_ct = encrypts(&session, control).unwrap();

    let (ctx, session) = offline(&env, ctx, || {
        // Attribute flip: the secret key becomes readable.
        edit_plain(&env, &uids[0], |a| {
            set_attr(a, CKA_SENSITIVE, Value::Bool(false));
            set_attr(a, CKA_TRUSTED, Value::Bool(true));
        });
        // State change: the disabled key is enabled again.
        edit_plain(&env, &uids[2], |a| {
            set_attr(a, CKA_KMSHSM_KEY_STATE, Value::Ulong(STATE_ENABLED))
        });
        // Modulus swap: key A's public half gets B's modulus.
        edit_plain(&env, &uids[3], |a| {
            set_attr(a, CKA_MODULUS, Value::Bytes(modulus_b.clone()))
        });
    });
    let secret = find_one(&session, "secret");
    assert_eq!(encrypts(&session, secret), Err(TAMPERED));
    assert_eq!(
        rv(session.get_attributes(secret, &[AttributeType::Value])),
        TAMPERED
    );
    let disabled = find_one(&session, "disabled");
    assert_eq!(encrypts(&session, disabled), Err(TAMPERED));
    let public_a = find_one(&session, "rsa-a");
    assert_rv!(
        session.verify(&Mechanism::Sha256RsaPkcs, public_a, b"x", &[0u8; 256]),
        TAMPERED
    );
    // Nothing else lost.
    let control = find_one(&session, "control");
    assert_eq!(
        session
            .decrypt(&Mechanism::AesCbcPad(IV), control, &control_ct)
            .unwrap(),
        b"data"
    );
    let other = find_one(&session, "other");
    encrypts(&session, other).expect("an untouched key works");

    // Record swap between uids, and a record stripped of its authentication.
    let (ctx, session) = offline(&env, ctx, || {
        let db = rusqlite::Connection::open(env.token_database()).unwrap();
        let row = |uid: &[u8]| -> (Vec<u8>, Option<Vec<u8>>) {
            db.query_row(
                "SELECT plain, sealed FROM objects WHERE uid = ?1",
                [uid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let (control_uid, other_uid) = (uid_of_label(&db, "control"), uids[1].clone());
        let (a, b) = (row(&control_uid), row(&other_uid));
        for (uid, (plain, sealed)) in [(&control_uid, b), (&other_uid, a)] {
            db.execute(
                "UPDATE objects SET plain = ?2, sealed = ?3 WHERE uid = ?1",
                rusqlite::params![uid, plain, sealed],
            )
            .unwrap();
        }
        drop(db);
        // Strip: no format marker, no sealed part (as if written without a login).
        edit_plain(&env, &uids[2], |a| {
            a.retain(|(t, _)| *t != 0x8000_0000 | 0x4B4D_0F02)
        });
        let db = rusqlite::Connection::open(env.token_database()).unwrap();
        db.execute(
            "UPDATE objects SET sealed = NULL WHERE uid = ?1",
            [&uids[2]],
        )
        .unwrap();
    });
    // The swapped records no longer match their index (labels moved with them), so look
    // at every AES key: each of the four edited ones is refused.
    let aes_keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
        ])
        .unwrap();
    assert_eq!(aes_keys.len(), 4, "secret, other, control, disabled");
    let refused = aes_keys
        .iter()
        .filter(|h| encrypts(&session, **h) == Err(TAMPERED))
        .count();
    assert_eq!(
        refused, 4,
        "every edited key is refused (secret stays refused too)"
    );
    // Nothing else lost: the untouched HMAC key still computes the same MAC.
    let spare = find_one(&session, "spare");
    assert_eq!(
        session.sign(&Mechanism::Sha256Hmac, spare, b"m").unwrap(),
        spare_mac
    );
    let log = env.log();
    assert!(
        log.contains("fails authentication"),
        "the refusal is logged with the uid:\n{log}"
    );
    ctx.finalize().unwrap();
}

/// The uid of the object labelled `label`, read from the database (for the swap).
fn uid_of_label(db: &rusqlite::Connection, label: &str) -> Vec<u8> {
    let mut q = db.prepare("SELECT uid, plain FROM objects").unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.into_iter()
        .find(|(_, plain)| {
            attr::decode(plain).unwrap().iter().any(|(t, v)| {
                t.raw() == CKA_LABEL && matches!(v, Value::Bytes(b) if b == label.as_bytes())
            })
        })
        .map(|(uid, _)| uid)
        .unwrap_or_else(|| panic!("no record labelled {label}"))
}

#[test]
fn a_public_object_written_without_login_stays_usable_and_a_forged_private_one_does_not() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    // A public session (no login) writes a public token object: unauthenticated, fine.
    let public = ctx.open_rw_session(slot).unwrap();
    let note = public
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(b"note".to_vec()),
            Attribute::Value(b"hello".to_vec()),
        ])
        .unwrap();
    let uid = uid_of(&public, note);
    drop(public);
    // The attacker turns it into a private, trusted key-like object.
    let (_ctx, session) = offline(&env, ctx, || {
        edit_plain(&env, &uid, |a| {
            set_attr(a, CKA_PRIVATE, Value::Bool(true));
        });
    });
    let found = session
        .find_objects(&[Attribute::Label(b"note".to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_rv!(
        session.get_attributes(found[0], &[AttributeType::Value]),
        TAMPERED
    );
    // An untouched public object written without login is used as written.
    let ok = session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(b"fine".to_vec()),
            Attribute::Value(b"x".to_vec()),
        ])
        .unwrap();
    assert_eq!(attribute_bytes(&session, ok, AttributeType::Value), b"x");
}

#[test]
fn a_public_key_written_while_logged_in_verifies_in_a_public_session() {
    // Every record written while logged in carries a sealed part that authenticates it,
    // even a public key's; using the key needs no login all the same.
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"pub".to_vec()),
                Attribute::EcParams(OID_P256.to_vec()),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    let signature = session
        .sign(&Mechanism::EcdsaSha256, private, b"message")
        .unwrap();
    let _ = public;
    session.logout().unwrap();
    let anonymous = ctx.open_ro_session(slot).unwrap();
    let public = find_one(&anonymous, "pub");
    anonymous
        .verify(&Mechanism::EcdsaSha256, public, b"message", &signature)
        .expect("a public key verifies without login");
}

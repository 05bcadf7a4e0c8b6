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
use common::records::{edit_plain, offline, set_attr, uid_of};
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use kmshsm::object::attr::{self, Value};

const TAMPERED: RvError = RvError::VendorDefined(KMSHSM | 0x07);

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
        edit_plain(&env.token_database(), &uids[0], |a| {
            set_attr(a, CKA_SENSITIVE, Value::Bool(false));
            set_attr(a, CKA_TRUSTED, Value::Bool(true));
        });
        // State change: the disabled key is enabled again.
        edit_plain(&env.token_database(), &uids[2], |a| {
            set_attr(a, CKA_KMSHSM_KEY_STATE, Value::Ulong(STATE_ENABLED))
        });
        // Modulus swap: key A's public half gets B's modulus.
        edit_plain(&env.token_database(), &uids[3], |a| {
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
        edit_plain(&env.token_database(), &uids[2], |a| {
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
        edit_plain(&env.token_database(), &uid, |a| {
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

/// The store's lookup key of KeyId `id` (`object::index::lookup_key`): the attribute type
/// as 8 bytes big-endian, then the value.
fn key_id_lookup_key(id: &str) -> Vec<u8> {
    let mut key = (CKA_KMSHSM_KEY_ID as u64).to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// Attack (from an independent review of schema version 6): the lookup table is not
/// authenticated, and since version 6 a lookup key names a row number (`rid`), which
/// SQLite hands to the next record made when no row has a larger one. An attacker who
/// can write the file once, with no PIN, adds a row saying that KeyId A's key names the
/// row the next record will take; a key B made later by the user lands in that row. A
/// state change of key A (`KeyRecords::decide_on`, `Token::decide_on_key`) is then
/// written onto every record the store's lookup of A's KeyId returns, B's included,
/// without checking that their KeyId is A's: B is disabled (re-authenticated under the
/// master key, and with an audit event naming A only). The index may hide a record,
/// never make one part of another key (docs/security.md, "Records at rest").
#[test]
fn a_lookup_key_planted_for_a_later_row_does_not_bring_another_key_into_a_state_change() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let a = aes_key(&session, "a", true);
    let a_id = key_id(&session, a);
    drop(session);
    let (_ctx, session, a, b) = plant_then_make_b(&env, ctx, &a_id);
    set_state(&session, a, STATE_DISABLED).unwrap();
    assert_eq!(state(&session, a), STATE_DISABLED);
    assert_eq!(
        state(&session, b),
        STATE_ENABLED,
        "key B was disabled by a state change of key A"
    );
    assert!(encrypts(&session, b).is_ok(), "key B no longer encrypts");
}

/// Takes the token offline and adds a lookup row naming KeyId `a_id`'s key to the row the
/// next record will take; back online, makes AES key B (generated, so its material
/// cannot be imported again) and checks that it took that row. Returns the context, the
/// session, key A's one object and key B.
fn plant_then_make_b(
    env: &TestEnv,
    ctx: Pkcs11,
    a_id: &str,
) -> (Pkcs11, Session, ObjectHandle, ObjectHandle) {
    let mut planted = 0i64;
    let (ctx, session) = offline(env, ctx, || {
        let db = rusqlite::Connection::open(env.token_database()).unwrap();
        let newest: i64 = db
            .query_row("SELECT max(rid) FROM objects", [], |r| r.get(0))
            .unwrap();
        planted = newest + 1;
        db.execute(
            "INSERT INTO lookup (key, rid) VALUES (?1, ?2)",
            rusqlite::params![key_id_lookup_key(a_id), planted],
        )
        .unwrap();
    });
    let a = objects_of_key(&session, a_id);
    assert_eq!(a.len(), 1, "key A's objects: {a:?}");
    // A decision is made on the facts of the first of the key's records in uid order:
    // B is made again (in the same row: a removal leaves the planted key, which is not
    // B's, and the next record takes the row again) until A's record comes first.
    let a_uid = uid_of(&session, a[0]);
    let mut b = aes_key(&session, "b", true);
    let mut b_uid = uid_of(&session, b);
    while b_uid < a_uid {
        session.destroy_object(b).unwrap();
        b = aes_key(&session, "b", true);
        b_uid = uid_of(&session, b);
    }
    let db = rusqlite::Connection::open(env.token_database()).unwrap();
    let b_rid: i64 = db
        .query_row("SELECT rid FROM objects WHERE uid = ?1", [&b_uid], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(b_rid, planted, "B took the row the planted key names");
    assert!(encrypts(&session, b).is_ok());
    (ctx, session, a[0], b)
}

/// The same attack as above, with DeleteKeyMaterial: the material of an EXTERNAL key A
/// is deleted (`CKA_KMSHSM_KEY_STATE` set to PendingImport), and the wipe is written onto
/// key B's record too. B was generated in the token: its material exists nowhere else
/// and cannot be imported again, so it is lost for good.
#[test]
fn a_lookup_key_planted_for_a_later_row_does_not_let_a_material_deletion_wipe_another_key() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let a = create_external(&session, Spec::Aes256, "a");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        a,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        None,
    )
    .unwrap();
    let a_id = key_id(&session, a);
    drop(session);
    let (_ctx, session, a, b) = plant_then_make_b(&env, ctx, &a_id);
    set_state(&session, a, STATE_PENDING_IMPORT).unwrap();
    assert_eq!(state(&session, a), STATE_PENDING_IMPORT);
    assert_eq!(
        state(&session, b),
        STATE_ENABLED,
        "key B's material was deleted with key A's"
    );
    assert!(encrypts(&session, b).is_ok(), "key B no longer encrypts");
}

/// Found by an independent review of schema version 6: docs/security.md says an edit of
/// the (unauthenticated) index can hide a record from a search until it is rewritten. A
/// KMS decision takes the key's objects from the store's lookup of its KeyId alone
/// (`Token::decide_on_key`), so with the private half's KeyId key taken out of `lookup`,
/// DisableKey (asked on the private half itself) answers CKR_OK and disables the public
/// half only: the private key still signs, and its rewrites, whose keys are unchanged,
/// never put the key back (`store::sqlite::tests::a_rewrite_puts_back_*`).
#[test]
fn a_key_pairs_private_half_left_out_of_the_index_is_disabled_with_its_key() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"pair-public".to_vec()),
                Attribute::ModulusBits(2048.into()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Label(b"pair-private".to_vec()),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let id = key_id(&session, public);
    assert_eq!(key_id(&session, private), id);
    let private_uid = uid_of(&session, private);
    drop(session);
    let (_ctx, session) = offline(&env, ctx, || {
        let db = rusqlite::Connection::open(env.token_database()).unwrap();
        let n = db
            .execute(
                "DELETE FROM lookup WHERE key = ?1 AND rid = \
                 (SELECT rid FROM objects WHERE uid = ?2)",
                rusqlite::params![key_id_lookup_key(&id), private_uid],
            )
            .unwrap();
        assert_eq!(n, 1);
    });
    let private = find_one(&session, "pair-private");
    let public = find_one(&session, "pair-public");
    let sign = |key| session.sign(&Mechanism::Sha256RsaPkcs, key, b"message");
    assert!(sign(private).is_ok());
    set_state(&session, private, STATE_DISABLED).unwrap();
    assert_eq!(state(&session, public), STATE_DISABLED);
    assert_eq!(
        state(&session, private),
        STATE_DISABLED,
        "DisableKey answered CKR_OK and left the private half enabled"
    );
    assert!(sign(private).is_err(), "the disabled key still signs");
}

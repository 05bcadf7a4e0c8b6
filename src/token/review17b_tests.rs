//! An attacker's review (branch attack17b) of time in the KMS decisions: where the
//! module reads its clock for a rule, and whether the time that counts is the time the
//! decision is written. A step armed before a transaction (`test_store::At::Transact`)
//! that moves a `FixedClock` on stands for the wait a real transaction can have before it
//! decides (a PostgreSQL row lock held by another host, up to `statement_timeout_ms`;
//! SQLite's busy wait), where a real test would need luck.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::test_store::{At, StoreHooks, TestStore};
use super::*;
use crate::ck::*;
use crate::ids::{SessionHandle, SlotId};
use crate::kms::clock::FixedClock;
use crate::object::attr::{RawAttribute, RawValue};
use crate::store::sqlite::SqliteStore;

const SO_PIN: &[u8] = b"so-pin-1234";
const USER_PIN: &[u8] = b"user-pin-5678";

const CALLER: Caller = Caller {
    session: SessionHandle::new(1),
    rw: true,
};

fn raw(ty: crate::object::attr::AttrType, value: &[u8]) -> RawAttribute {
    RawAttribute {
        ty,
        value: RawValue::Bytes(Zeroizing::new(value.to_vec())),
    }
}

fn ulong(ty: crate::object::attr::AttrType, v: u64) -> RawAttribute {
    raw(ty, &(v as crate::ck::CK_ULONG).to_ne_bytes())
}

/// A new token `serial` in `dir` on a clock that stands still until moved, opened
/// through a `TestStore`, with session 1 open and the user logged in; the clock, and
/// the store's hooks.
fn token_on_a_fixed_clock(
    dir: &std::path::Path,
    serial: &str,
) -> (Token, Arc<FixedClock>, StoreHooks) {
    let clock = FixedClock::new(1_700_000_000);
    let shared = Arc::new(Shared {
        config: Arc::clone(&shared_for_tests(dir).config),
        handles: Default::default(),
        clock: clock.clone(),
    });
    let backend = crate::store::Backend::Files(dir.to_path_buf());
    drop(
        Token::create(
            &backend,
            SlotId::new(1),
            serial,
            [b' '; LABEL_LEN],
            SO_PIN,
            Arc::clone(&shared),
        )
        .expect("token"),
    );
    let (store, hooks) = TestStore::wrap(Box::new(
        SqliteStore::open(&crate::store::Backend::file_of(dir, serial)).expect("store"),
    ));
    let token = Token::open_store(store, "here".into(), shared).expect("token");
    token
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    token
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    token.init_pin(true, USER_PIN).expect("user PIN");
    token.logout().expect("logout");
    token
        .login(SessionHandle::new(1), UserKind::User, USER_PIN)
        .expect("user login");
    (token, clock, hooks)
}

/// Defect: ImportKeyMaterial judges the import token's 24 hours at the start of the call
/// (`token/kms/import.rs` `import_decided`: `ImportToken::open(token, mac_key, now)`),
/// and the material expiry against a time read before the store transaction
/// (`KeyModel::import_material` reads `now` before `decide_on`). The transaction that
/// actually binds and installs the material is then entered without looking at the clock
/// again: an import whose transaction waits past the token's expiry (here, the 24 hours
/// end while it waits for the store's lock) is written all the same, and answers
/// `CKR_OK` — the token has been used after it expired, and the key is Enabled with
/// material that arrived after its parameters lapsed.
///
/// Expected (docs/key-model.md, "Exactly once": "the answer that counts is the
/// transaction's", the decision "a pure function of the key's facts, the request and the
/// time" made inside the transaction; "The rules, each enforced": the token "is valid for
/// 24 hours (`CKR_KMSHSM_EXPIRED_IMPORT_TOKEN`)"): the rule is judged at the time the
/// decision is made and written, so an import decided after the token's expiry is
/// refused with `CKR_KMSHSM_EXPIRED_IMPORT_TOKEN` and nothing is installed.
#[test]
fn an_import_whose_transaction_starts_after_its_token_expired_is_still_written() {
    use crate::kms::import::{WrappingAlgorithm, TOKEN_LIFETIME};
    use crate::kms::key::{KeySpec, KeyState, Origin};
    use crate::mechanism::params::OaepParams;
    use crate::mechanism::{MechanismArg, Param};
    use crate::object::attr::{
        IMPORT_TARGET, IMPORT_TOKEN, KEY_ID, KEY_SPEC, KEY_STATE, ORIGIN, WRAPPING_ALGORITHM,
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock, hooks) = token_on_a_fixed_clock(dir.path(), "review17b1");
    // CreateKey(Origin EXTERNAL, AES_256): PendingImport.
    let key = token
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
                ulong(CKA_KEY_TYPE, CKK_AES.raw()),
                raw(CKA_TOKEN, &[1]),
                raw(CKA_ENCRYPT, &[1]),
                raw(CKA_DECRYPT, &[1]),
                ulong(ORIGIN, Origin::External.code()),
                ulong(KEY_SPEC, KeySpec::Aes256.code()),
            ],
        )
        .expect("EXTERNAL key");
    let key_id = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.bytes(KEY_ID).map(<[u8]>::to_vec))
        .expect("KeyId");
    // GetParametersForImport(RSA_2048, RSAES_OAEP_SHA_256).
    let (public, private) = token
        .generate_key_pair(
            CALLER,
            &MechanismArg {
                kind: CKM_RSA_PKCS_KEY_PAIR_GEN,
                param: Param::None,
            },
            &[raw(CKA_TOKEN, &[1]), ulong(CKA_MODULUS_BITS, 2048)],
            &[
                raw(CKA_TOKEN, &[1]),
                raw(IMPORT_TARGET, &key_id),
                ulong(
                    WRAPPING_ALGORITHM,
                    WrappingAlgorithm::RsaesOaepSha256.code(),
                ),
            ],
        )
        .expect("import parameters");
    let (spki, import_token) = {
        let table = token.objects.read();
        let spki = table
            .get(public)
            .and_then(|e| e.object.bytes(CKA_PUBLIC_KEY_INFO).map(<[u8]>::to_vec))
            .expect("the wrapping public key");
        let t = table
            .get(private)
            .and_then(|e| e.object.bytes(IMPORT_TOKEN).map(<[u8]>::to_vec))
            .expect("the import token");
        (spki, t)
    };
    // The user's side: 32 bytes of material under RSA-OAEP-SHA-256.
    let mut material = [0u8; 32];
    crate::crypto::rand::random_fill(&mut material).expect("random");
    let wrapping = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).expect("SPKI");
    let oaep = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(wrapping).expect("OAEP key");
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped_len = oaep
        .encrypt(
            &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
            &material,
            &mut wrapped,
            None,
        )
        .expect("wrap")
        .len();
    wrapped.truncate(wrapped_len);

    // 10 seconds before the token expires, the import is made; its transaction waits 20
    // seconds for the store's lock, and begins 10 seconds after the token expired.
    clock.advance(TOKEN_LIFETIME - 10);
    let waiting = Arc::clone(&clock);
    hooks.arm(At::Transact, move || waiting.advance(20));
    let mech = MechanismArg {
        kind: CKM_RSA_PKCS_OAEP,
        param: Param::Oaep(OaepParams {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: CKZ_DATA_SPECIFIED,
            label: Vec::new(),
        }),
    };
    let result = token.unwrap_key(
        CALLER,
        &mech,
        private,
        &wrapped,
        &[raw(IMPORT_TOKEN, &import_token)],
    );
    assert_eq!(
        hooks.armed(),
        0,
        "the import reached its transaction (the clock was moved on there)"
    );
    let state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert!(
        matches!(
            result,
            Err(Error::Kms(crate::error::KmsError::ExpiredImportToken))
        ),
        "an import decided 10 s after its token expired answered {:?}; the key is now in \
         state {state:?} (Enabled is {})",
        result.as_ref().map(|_| "CKR_OK"),
        KeyState::Enabled.code()
    );
    assert_eq!(state, Some(KeyState::PendingImport.code()));
}

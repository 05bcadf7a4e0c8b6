//! The separation-of-duties scenarios' shared set-up (tests/attacks_policy.rs and the
//! attacker reviews 16a, 16b): a token under the policy, the victim key the attacks try to
//! read, a key that only wraps, and the check that a key recovered the victim.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{ready_token, TestEnv};

/// The value of the victim key (known to the tests only, to tell a recovery).
pub const VICTIM: [u8; 16] = [0x5a; 16];

/// Turns the separation-of-duties policy on in `env`'s configuration.
pub fn separate_duties(env: &TestEnv) {
    let text = std::fs::read_to_string(&env.conf_path).expect("the configuration");
    env.write_config(&format!("separation_of_duties = true\n{text}"));
}

/// A token whose configuration turns the policy on, and a user session on it.
pub fn separated_token(env: &TestEnv) -> (Pkcs11, Session) {
    separate_duties(env);
    let (ctx, _slot, session) = ready_token(env);
    (ctx, session)
}

/// The owner's key: sensitive (its value is never read) but extractable (it may leave
/// the token wrapped, as PKCS#11 lets such keys), with no duty of its own.
pub fn extractable_victim(session: &Session, token: bool) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(token),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Value(VICTIM.to_vec()),
        ])
        .expect("C_CreateObject(victim)")
}

/// A generated, never extractable AES-128 key that wraps and has no other duty: the key
/// the policy allows to wrap. `derive` as given.
pub fn wrap_only_key(session: &Session, token: bool, derive: bool) -> ObjectHandle {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(token),
                Attribute::ValueLen(16.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Wrap(true),
                Attribute::Unwrap(false),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
                Attribute::Derive(derive),
            ],
        )
        .expect("a generated, unextractable key that only wraps is allowed under the policy")
}

/// Whether `key` decrypts `wrapped` (the victim wrapped with `CKM_AES_ECB`) to the
/// victim's value.
pub fn recovers_victim(session: &Session, key: ObjectHandle, wrapped: &[u8]) -> bool {
    session
        .decrypt(&Mechanism::AesEcb, key, wrapped)
        .is_ok_and(|plain| plain == VICTIM)
}

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, no label.
pub fn oaep_sha256() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

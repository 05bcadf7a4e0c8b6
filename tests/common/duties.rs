//! The separation-of-duties scenarios' shared set-up (tests/attacks_policy.rs and the
//! attacker reviews 16a, 16b, 20a, 20c): a token under the policy, the victim key the
//! attacks try to read, a key that only wraps, a pair whose private half decrypts, the
//! offline removal of the policy's row, and the check that a key recovered the victim.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use std::path::Path;

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{find_by_label, ready_token, TestEnv};

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

/// The metadata row that says a token is under the policy, as the store names it.
pub const POLICY_ROW: &str = "separation_of_duties";

/// Deletes the policy's metadata row from the token database at `db`, as a writer of the
/// file without a PIN can, while processes may have it open.
pub fn delete_policy_row(db: &Path) {
    let n = rusqlite::Connection::open(db)
        .expect("the token database")
        .execute("DELETE FROM meta WHERE name = ?1", [POLICY_ROW])
        .expect("the row's deletion");
    assert_eq!(n, 1, "the row was there to delete");
}

/// `env`'s configuration with the policy's line taken out: what the restrained user
/// runs their own processes with.
pub fn drop_policy_from_config(env: &TestEnv) {
    let text = std::fs::read_to_string(&env.conf_path).expect("the configuration");
    env.write_config(&text.replace("separation_of_duties = true\n", ""));
}

/// The one object labelled `label`.
pub fn one_labelled(session: &Session, label: &str) -> ObjectHandle {
    let found = find_by_label(session, label);
    assert_eq!(found.len(), 1, "one object labelled {label}");
    found[0]
}

/// An RSA token pair of the user's, made under the policy: its private half (labelled
/// `decrypting half`) decrypts and does not unwrap, its public half encrypts and does
/// not wrap — allowed. Answers the private half and the public values (modulus and
/// exponent).
pub fn decrypting_pair(session: &Session) -> (ObjectHandle, Vec<Attribute>) {
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::Wrap(false),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Label(b"decrypting half".to_vec()),
                Attribute::Decrypt(true),
                Attribute::Unwrap(false),
            ],
        )
        .expect("a pair that encrypts and decrypts is allowed under the policy");
    let values = session
        .get_attributes(
            public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .expect("the pair's public values");
    (private, values)
}

/// A public RSA token key of `values`, labelled `label`, that wraps or (if not `wrap`)
/// encrypts.
pub fn rsa_public_template(values: &[Attribute], label: &str, wrap: bool) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Wrap(wrap),
        Attribute::Encrypt(!wrap),
    ];
    template.extend_from_slice(values);
    template
}

/// A token made by a process configured with the policy (so under it, sealed at its
/// first login), holding the user's victim (`extractable_victim`, labelled `victim`) and
/// the user's `decrypting_pair`; the module finalised again. Answers the pair's public
/// values.
pub fn token_under_the_policy_with_a_victim(env: &TestEnv) -> Vec<Attribute> {
    separate_duties(env);
    let (ctx, _slot, session) = ready_token(env);
    let victim = extractable_victim(&session, true);
    session
        .update_attributes(victim, &[Attribute::Label(b"victim".to_vec())])
        .expect("the victim's label");
    let (_private, values) = decrypting_pair(&session);
    // Control: the policy refuses a public key that wraps made from the pair's values.
    let control = session.create_object(&rsa_public_template(&values, "control", true));
    assert!(
        matches!(
            control,
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::TemplateInconsistent,
                _
            ))
        ),
        "control: the token is under the policy: {control:?}"
    );
    drop(session);
    ctx.finalize().expect("C_Finalize");
    values
}

/// A token under the policy with a victim (`token_under_the_policy_with_a_victim`), its
/// policy row deleted offline, opened by a process configured without the policy; in it,
/// before the user's login, a public session AES key that wraps and decrypts (`extra`
/// added to its template), which is made (before a login the row is all a process goes
/// by: a known limit); then the user logged in. The module, the session and that key.
pub fn session_key_made_before_the_login(
    env: &TestEnv,
    extra: &[Attribute],
) -> (Pkcs11, Session, ObjectHandle) {
    token_under_the_policy_with_a_victim(env);
    drop_policy_from_config(env);
    delete_policy_row(&env.token_database());
    let ctx = env.load();
    let slot = super::slot_of_token(&ctx, super::TOKEN_LABEL);
    let session = ctx.open_rw_session(slot).expect("a session");
    let mut template = vec![
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::ValueLen(16.into()),
        Attribute::Wrap(true),
        Attribute::Decrypt(true),
    ];
    template.extend_from_slice(extra);
    let both = session
        .generate_key(&Mechanism::AesKeyGen, &template)
        .expect("before a login the row is all a process goes by (known limit)");
    session
        .login(
            cryptoki::session::UserType::User,
            Some(&super::pin(super::USER_PIN)),
        )
        .expect("the user's login");
    (ctx, session, both)
}

//! A fifth attacker's review (2026-12-07), of sessions, handles and the login state
//! machine: what a session's objects become when the session closes while a call in
//! another thread is still making them.
//! Run with `cargo nextest run --test attack_review13e` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::Session;

/// An RSA length the module generates itself (not one of aws-lc's 2048/3072/4096), odd,
/// so that the generation takes long enough for another thread to close the session
/// while it runs.
const SLOW_RSA_BITS: u64 = 6001;

/// Generates a session RSA key pair labelled `label` in `session`, both halves public
/// (`CKA_PRIVATE` false), so that any session of the application may see them.
fn slow_session_pair(
    session: &Session,
    label: &str,
) -> cryptoki::error::Result<(
    cryptoki::object::ObjectHandle,
    cryptoki::object::ObjectHandle,
)> {
    let public = vec![
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::ModulusBits(SLOW_RSA_BITS.into()),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let private = vec![
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    session.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
}

/// PKCS#11 3.0 §4.4 and §5.6 (C_CloseSession): "When a session is closed, all session
/// objects created by the session are destroyed automatically, even if the application
/// has other sessions 'using' the objects." A session object must not outlive its
/// session.
///
/// It does when the session is closed while a call in another thread is still making
/// the object: `Provider::close_session` takes the session out of the table and
/// `Token::remove_session` drops the objects it owns *now*, but a `C_GenerateKeyPair`
/// (or `C_CreateObject`, `C_GenerateKey`, `C_UnwrapKey`, `C_DeriveKey`,
/// `C_CopyObject`) that looked the session up before the close goes on and inserts its
/// objects afterwards (`Token::insert_all_in` → `ObjectTable::insert_session_object`)
/// without asking whether the owning session is still open. The objects are owned by
/// a handle no session will ever have again (handles are never reused), so no later
/// close removes them: they stay, visible to and usable by every session of the
/// application, until `C_Finalize`; the call even answers `CKR_OK`.
///
/// Expected: the call fails (`CKR_SESSION_CLOSED`, as `C_Login` answers in the same
/// race, docs/security.md) or its objects are gone with the session; either way no
/// other session finds them. Actual: the closed session's key pair is found by the
/// other session and its handles work there.
#[test]
fn a_session_object_made_while_its_session_closes_does_not_outlive_it() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    // The application stays logged in through this session.
    let observer = user_session(&ctx, slot);
    let owner = ctx.open_rw_session(slot).unwrap();
    let owner_handle = owner.handle();
    let done = AtomicBool::new(false);
    let raw = Raw::load();
    let (made, closed_while_running, took) = std::thread::scope(|sc| {
        let generating = sc.spawn(|| {
            let started = Instant::now();
            let made = slow_session_pair(&owner, "orphan");
            done.store(true, Ordering::SeqCst);
            // Closed through the C ABI below; cryptoki must not close it again.
            std::mem::forget(owner);
            (made, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        let running = !done.load(Ordering::SeqCst);
        assert_eq!(raw.close_session(owner_handle), Ok(()));
        let (made, took) = generating.join().unwrap();
        (made, running, took)
    });
    assert!(
        closed_while_running,
        "the key generation ended within 200 ms ({took:?}), before the close: the race \
         was not set up (raise SLOW_RSA_BITS)"
    );
    let found = find_by_label(&observer, "orphan");
    assert!(
        found.is_empty(),
        "the key pair made by session {owner_handle} (call answered {made:?}, after \
         {took:?}) outlived the session's close: another session finds {found:?}"
    );
    if let Ok((public, _)) = made {
        assert_rv!(
            observer.get_attributes(public, &[AttributeType::Label]),
            cryptoki::error::RvError::ObjectHandleInvalid,
            "the closed session's public key is still reachable by its handle"
        );
    }
}

/// docs/security.md (the split key pair row, after 17020dc/c1e0fba): "a key's objects are
/// all in the token or all in one session", so that what is decided on a key (its state,
/// its destruction with its session) reaches every object of it. `C_GenerateKeyPair`
/// keeps to it; ImportKeyMaterial does not.
///
/// An asymmetric EXTERNAL key created as a session object has no public object until
/// its first import, which adds one (docs/key-model.md). That new object is given to the
/// session that *calls* the import (`records_for(Some(caller.session))` in
/// `token/kms/import.rs`, `decide_on_key`'s `new_owner`), not to the session that owns
/// the key. Imported from another session of the application, the key is then split
/// between two sessions: closing the key's own session destroys its private object
/// (§5.6 C_CloseSession) but leaves the public object behind, a key without its
/// private half that still carries the KeyId, the Enabled state and the material's
/// public key, and answers searches for the key; closing the importing session instead
/// would leave the private half without its public one.
///
/// Expected: the public object made by the import belongs to the session that owns the
/// key (or the import from another session is refused), so that the key's objects go
/// together. Actual: after the owner session closes, the public half is still found.
#[test]
fn an_import_from_another_session_does_not_split_a_session_key_between_sessions() {
    use common::kms::*;
    let env = TestEnv::new();
    let (ctx, slot, importer) = ready_token(&env);
    let owner = ctx.open_rw_session(slot).unwrap();
    let work = Work::new(&env);
    let mut template = external_template(Spec::EcP256, "split-by-import");
    template.retain(|a| !matches!(a, Attribute::Token(_)));
    template.push(Attribute::Token(false));
    let key = owner.create_object(&template).expect("C_CreateObject");
    let id = key_id(&owner, key);
    let material = work.material(Spec::EcP256);
    import_with(
        &importer,
        &work,
        key,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        None,
    )
    .expect("ImportKeyMaterial from the application's other session");
    assert_eq!(
        objects_of_key(&importer, &id).len(),
        2,
        "the imported key has its private and its public object"
    );
    owner.close().unwrap();
    let left = objects_of_key(&importer, &id);
    assert!(
        left.is_empty(),
        "the session owning key {id} closed, yet {} of its objects remain (class {:?}, \
         state {:?}): the import gave the key's public object to the importing session",
        left.len(),
        left.iter()
            .map(|h| read_ulong(&importer, *h, cryptoki_sys::CKA_CLASS))
            .collect::<Vec<_>>(),
        left.iter()
            .map(|h| read_ulong(&importer, *h, CKA_KMSHSM_KEY_STATE))
            .collect::<Vec<_>>(),
    );
}

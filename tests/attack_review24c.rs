//! An attacker's review (branch attack24c) of the fixes of `f368f5d..6ac579f`: the audit
//! record of a state change refused because an object of the key is unmodifiable
//! (1e3bb26), the repeats of a device error held back in the log (de5bca7),
//! `C_GetObjectSize` counted by public lengths and the import pair's public half as
//! private as its target (052676b), and the search's de-duplication and snapshot, the
//! template entry budget and the bounded configuration read (6ac579f).
//!
//! No defect was reproduced in the time box: every test here is "PASSING (coverage, no
//! defect)", an attack that held. Looked at without a test of its own:
//!
//! - `ffi/repeats.rs` keys its memory by the error's text alone, not the entry point: a
//!   device error of `C_DestroyObject` with the text of one `C_Login` showed at warn
//!   less than 10 s before goes to `debug`, and is counted on the next warn line of
//!   that text only (never, if the text does not recur after the quiet period; lost
//!   when 8 other texts evict it). Hiding a real error this way needs a harmless device
//!   error of identical text, which a caller cannot provoke without control of the
//!   store; the hash is `DefaultHasher` over text the log would hold anyway.
//! - `C_FindObjects`' snapshot (6ac579f): measured against the parent commit's module
//!   on 2,000 and 10,000 session objects (debug builds, 200 finds each), a find by label
//!   (the index's path), by label and class, by class alone (every object a candidate)
//!   and by an unindexed value cost the same within the machine's noise (about ±30 %).
//!
//! Run with `cargo nextest run --test attack_review24c` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::audit::events;
use common::kms::*;
use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::UserType;
use cryptoki_sys::*;

/// A token AES key (a KMS key), unmodifiable, labelled `label`, made by the logged-in user.
fn unmodifiable_key(session: &cryptoki::session::Session, label: &str) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Encrypt(true),
            Attribute::Modifiable(false),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Value(vec![0x3C; 32]),
        ])
        .unwrap()
}

/// PASSING (coverage, no defect). 1e3bb26: only the owner's own refused attempt (the
/// logged-in user in a read/write session) writes the new `ActionProhibited` event: a
/// read-only session is refused first (`CKR_SESSION_READ_ONLY`), a session after the
/// logout cannot reach the key at all, and an out-of-range state is refused before the
/// decision; each owner's attempt writes one event, named after the key's own KeyId, with
/// a fixed message (nothing of the key's value), and the trail still verifies.
#[test]
fn an_unmodifiable_keys_refusal_is_recorded_for_the_owners_attempts_only() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let key = unmodifiable_key(&session, "fixed");
    let id = key_id(&session, key);

    // A read-only session of the same (logged-in) application.
    let ro = ctx.open_ro_session(slot).unwrap();
    assert_rv!(
        set_state(&ro, key, STATE_DISABLED),
        RvError::SessionReadOnly
    );
    drop(ro);
    // A state the model does not know.
    assert_rv!(
        set_state(&session, key, 0x7777),
        RvError::AttributeValueInvalid
    );
    // Two refused attempts by the owner.
    for _ in 0..2 {
        assert_rv!(
            set_state(&session, key, STATE_DISABLED),
            RvError::ActionProhibited
        );
    }
    // After the logout the private key is out of reach: no event either.
    session.logout().unwrap();
    let public = ctx.open_rw_session(slot).unwrap();
    assert!(set_state(&public, key, STATE_DISABLED).is_err());
    drop(public);
    drop(session);
    drop(ctx);

    let all = events(&[]);
    let about: Vec<_> = all.iter().filter(|e| e["KeyId"] == id.as_str()).collect();
    let refused: Vec<_> = about.iter().filter(|e| e["Outcome"] == "Refused").collect();
    assert_eq!(
        refused.len(),
        2,
        "one event per refused attempt of the owner: {about:?}"
    );
    for e in &refused {
        assert_eq!(e["ErrorCode"], "ActionProhibited", "{e}");
        assert_eq!(e["EventName"], "DisableKey", "{e}");
        let text = e.to_string();
        assert!(!text.to_lowercase().contains(&"3c".repeat(8)), "{text}");
    }
    assert_eq!(common::audit::verify_ok()["Intact"], true);
}

/// A C_FindObjects* run through the C ABI with raw attributes (values as given, so a
/// CK_BBOOL of 2 can be sent), returning every handle found.
fn find_raw(
    ck: &Ck,
    session: CK_SESSION_HANDLE,
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> Vec<CK_OBJECT_HANDLE> {
    let mut values: Vec<Vec<u8>> = template.iter().map(|(_, v)| v.clone()).collect();
    let mut attrs: Vec<CK_ATTRIBUTE> = template
        .iter()
        .zip(values.iter_mut())
        .map(|((ty, _), v)| CK_ATTRIBUTE {
            type_: *ty,
            pValue: v.as_mut_ptr().cast(),
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect();
    let f = ck.functions();
    // SAFETY: the template and its values live for the call.
    let rv = unsafe {
        f.C_FindObjectsInit.unwrap()(session, attrs.as_mut_ptr(), attrs.len() as CK_ULONG)
    };
    assert_eq!(rv, CKR_OK, "C_FindObjectsInit");
    let mut out = vec![0 as CK_OBJECT_HANDLE; 64];
    let mut count: CK_ULONG = 0;
    // SAFETY: room for 64 handles and one count.
    let rv = unsafe { f.C_FindObjects.unwrap()(session, out.as_mut_ptr(), 64, &mut count) };
    assert_eq!(rv, CKR_OK, "C_FindObjects");
    out.truncate(count as usize);
    // SAFETY: plain handle.
    assert_eq!(unsafe { f.C_FindObjectsFinal.unwrap()(session) }, CKR_OK);
    out.sort_unstable();
    out
}

fn ulong_bytes(v: u64) -> Vec<u8> {
    (v as CK_ULONG).to_ne_bytes().to_vec()
}

/// PASSING (coverage, no defect). 6ac579f's de-duplication of a search template compares
/// parsed values: a CK_BBOOL given as 1 and as 2 (both true) is one criterion, not a
/// contradiction; a repeated label takes the label index's path and finds what the label
/// alone finds; two different labels, or two different KMS states, find nothing; a KMS
/// state given twice alike finds the key as once.
#[test]
fn a_search_with_repeated_attributes_finds_what_the_attribute_once_finds() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let a = unmodifiable_key(&session, "dup-a");
    let b = unmodifiable_key(&session, "dup-b");
    let label = |l: &str| (CKA_LABEL, l.as_bytes().to_vec());
    let token = |v: u8| (CKA_TOKEN, vec![v]);
    let state = |v: u64| (CKA_KMSHSM_KEY_STATE, ulong_bytes(v));
    let class = (CKA_CLASS, ulong_bytes(CKO_SECRET_KEY));

    let once = find_raw(&ck, s, &[label("dup-a")]);
    assert_eq!(once, vec![a.handle()]);
    assert_eq!(find_raw(&ck, s, &[label("dup-a"), label("dup-a")]), once);
    assert_eq!(
        find_raw(&ck, s, &[token(1), label("dup-a"), token(2), class.clone()]),
        once,
        "CK_BBOOL 1 and 2 are both true"
    );
    assert_eq!(
        find_raw(&ck, s, &[label("dup-a"), label("dup-b")]),
        Vec::<CK_OBJECT_HANDLE>::new()
    );
    let both = [a.handle(), b.handle()];
    let enabled = find_raw(
        &ck,
        s,
        &[class.clone(), state(STATE_ENABLED), state(STATE_ENABLED)],
    );
    assert!(
        both.iter().all(|h| enabled.contains(h)),
        "a state given twice alike: {enabled:?}"
    );
    assert_eq!(
        find_raw(
            &ck,
            s,
            &[class, state(STATE_ENABLED), state(STATE_DISABLED)]
        ),
        Vec::<CK_OBJECT_HANDLE>::new()
    );
}

/// PASSING (coverage, no defect). 052676b: an import pair's public half follows its
/// target's CKA_PRIVATE: for a private target, a session without login finds no object
/// naming the KeyId; for a public target (the owner's choice) the half stays public and
/// is found, so the flows that read it without login still work for such a key.
#[test]
fn an_import_pairs_public_half_is_as_private_as_its_target() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let hidden = create_external(&session, Spec::Aes256, "hidden-target");
    let mut open_template = external_template(Spec::Aes256, "open-target");
    open_template.push(Attribute::Private(false));
    let open = session.create_object(&open_template).unwrap();
    let (hidden_id, open_id) = (key_id(&session, hidden), key_id(&session, open));
    let alg = WRAP_RSAES_OAEP_SHA_256;
    get_params(&session, &hidden_id, alg);
    get_params(&session, &open_id, alg);
    session.logout().unwrap();

    let public = ctx.open_ro_session(slot).unwrap();
    let named = |id: &str| {
        public
            .find_objects(&[Attribute::Label(format!("import:{id}").into_bytes())])
            .unwrap()
    };
    assert!(
        named(&hidden_id).is_empty(),
        "a private target's pair is hidden"
    );
    let open_pair = named(&open_id);
    assert_eq!(open_pair.len(), 1, "a public target's public half is found");
    // What the half says is the target's KeyId, which the target itself shows.
    assert!(public
        .find_objects(&[Attribute::Label(b"open-target".to_vec())])
        .unwrap()
        .contains(&open));
    drop(public);
    // The owner still finds both halves of both pairs after logging in again.
    let owner = ctx.open_rw_session(slot).unwrap();
    owner.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        owner
            .find_objects(&[Attribute::Label(format!("import:{hidden_id}").into_bytes())])
            .unwrap()
            .len(),
        2
    );
}

/// PASSING (coverage, no defect). 052676b: the size of an EC (P-256) private key does not
/// depend on its scalar: a scalar beginning with a zero byte (given in full, 32 bytes),
/// the same scalar given in 31 bytes, and one that begins with no zero byte give one size.
#[test]
fn an_ec_private_keys_size_does_not_depend_on_its_scalar() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let make = |first: u8, len: usize| {
        let mut value = vec![0x42u8; len];
        value[0] = first;
        session
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Token(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::EcParams(common::kms::OID_P256.to_vec()),
                Attribute::Value(value),
            ])
            .unwrap()
    };
    let size = |key: ObjectHandle| {
        let mut size: CK_ULONG = 0;
        // SAFETY: one writable CK_ULONG.
        let rv = unsafe {
            ck.functions().C_GetObjectSize.unwrap()(session.handle(), key.handle(), &mut size)
        };
        assert_eq!(rv, CKR_OK);
        size
    };
    let (zero, full) = (make(0x00, 32), make(0x7F, 32));
    assert_eq!(size(zero), size(full));
    // The same scalar as the first, its leading zero byte left out (as an encoder of
    // integers writes it): the size is the curve's, not the value's.
    let short = make(0x42, 31);
    assert_eq!(size(short), size(full));
}

/// `C_Initialize` with `KMSHSM_CONF` naming `path`, in a thread: its return code, or
/// `None` when it has not returned within `deadline` (the thread is left behind).
fn initialize_with_conf(path: &std::path::Path, deadline: std::time::Duration) -> Option<CK_RV> {
    std::env::set_var("KMSHSM_CONF", path);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ck = Ck::load();
        // SAFETY: NULL arguments are allowed by the specification.
        let rv = unsafe { ck.functions().C_Initialize.unwrap()(std::ptr::null_mut()) };
        if rv == CKR_OK {
            // SAFETY: NULL reserved argument.
            unsafe { ck.functions().C_Finalize.unwrap()(std::ptr::null_mut()) };
        }
        let _ = tx.send(rv);
    });
    rx.recv_timeout(deadline).ok()
}

/// PASSING (coverage, no defect). 6ac579f's bounded configuration read, through
/// `KMSHSM_CONF` rather than `pReserved` (review 24a's path): a symlink to `/dev/zero`, a
/// symlink to a FIFO without a writer, and a `/proc` file (a regular file whose size is
/// reported as 0, read to its end) each end `C_Initialize` with an error within seconds,
/// and never read more than the bound.
#[test]
fn special_files_behind_kmshsm_conf_are_refused_promptly() {
    let env = TestEnv::new();
    let deadline = std::time::Duration::from_secs(30);
    let fifo = env.dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let links = [
        ("zero", std::path::PathBuf::from("/dev/zero")),
        ("fifo-link", fifo),
        ("proc", std::path::PathBuf::from("/proc/self/status")),
    ];
    for (name, target) in links {
        let link = env.dir.path().join(format!("{name}.toml"));
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let rv = initialize_with_conf(&link, deadline);
        assert!(
            rv.is_some_and(|rv| rv != CKR_OK),
            "{name}: C_Initialize answered {rv:?} (None: still running)"
        );
    }
}

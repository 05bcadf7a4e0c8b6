//! An attacker's review (branch attack22a) of 5803d9b, separation of duties judged as
//! the token is when a write is stored (`Change::RequireMeta`): two processes shown as
//! two `Token`s of one store, one placed at a test point of the other's write. Each test
//! fails against the module as reviewed; its doc comment says what is wrong and what a
//! correct module answers.

use super::test_store;
use super::*;
use crate::ck::*;
use crate::object::attr::RawAttribute;

const SO_PIN: &[u8] = b"so-pin-1234";
const USER_PIN: &[u8] = b"user-pin-5678";
const SESSION: SessionHandle = SessionHandle::new(1);

/// An RSA public token key of the caller's values labelled `label` that wraps: one the
/// policy refuses (its caller may know the private half), and one a token not under the
/// policy takes from any read/write session, logged in or not.
fn wrapping_public_key(label: &[u8]) -> Vec<RawAttribute> {
    let mut modulus = vec![0xc5; 256];
    modulus[255] = 0x4b;
    vec![
        test_store::ulong(CKA_CLASS, CKO_PUBLIC_KEY.raw()),
        test_store::ulong(CKA_KEY_TYPE, CKK_RSA.raw()),
        test_store::bytes(CKA_MODULUS, &modulus),
        test_store::bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
        test_store::bytes(CKA_TOKEN, &[1]),
        test_store::bytes(CKA_PRIVATE, &[0]),
        test_store::bytes(CKA_LABEL, label),
        test_store::bytes(CKA_WRAP, &[1]),
    ]
}

/// A write the policy would refuse, judged (rightly) without it by a process whose
/// session is not logged in, on a token that predates authenticated records and is
/// under no policy. Between its judgement and its commit another process, also
/// configured without the policy, logs in: the adoption of the old token writes the
/// record-authentication marker (a plain one, that does not cover the policy). The
/// write's commit requires the marker it judged with (none), finds the plain one, and the
/// write is answered `CKR_TEMPLATE_INCONSISTENT`, the policy's refusal, though no process
/// ever put the token under the policy and it is not under it after either (the same
/// call made again succeeds).
///
/// docs/security.md: "otherwise it gets the policy's answer" is meant for a token put
/// under the policy meanwhile. A correct module answers a write refused by a changed
/// marker that does not put the token under the policy as the token now is: it judges
/// again, and stores the key.
#[test]
fn a_login_adopting_an_old_token_is_not_the_policy_for_a_write_judged_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let plain = test_store::configured(dir.path(), false, None);
    let path = test_store::legacy_token(dir.path(), &plain, "review22a", SO_PIN, &[]);

    let writer = Token::open(&path, Arc::clone(&plain)).unwrap();
    writer.add_session(SESSION, true).unwrap();
    assert!(!writer.separating_duties().unwrap(), "control: no policy");
    writer
        .create_object(test_store::CALLER, &wrapping_public_key(b"control"))
        .expect("control: the token takes such a key");
    let (other_path, other_shared) = (path.clone(), Arc::clone(&plain));
    writer.test_steps.lock().push((
        "inserting",
        Box::new(move |_: &Token| {
            let other = Token::open(&other_path, Arc::clone(&other_shared)).unwrap();
            other.add_session(SESSION, true).unwrap();
            other.login(SESSION, UserKind::User, USER_PIN).unwrap();
            assert!(
                !other.separating_duties().unwrap(),
                "the adoption seals nothing"
            );
        }),
    ));

    let made = writer.create_object(test_store::CALLER, &wrapping_public_key(b"racing"));
    assert!(
        !writer.separating_duties().unwrap(),
        "the token is still under no policy"
    );
    assert!(
        made.is_ok(),
        "a write the token under no policy allows is not refused: {made:?}"
    );
    let found = writer
        .find(&[test_store::bytes(CKA_LABEL, b"racing")])
        .unwrap();
    assert_eq!(found.len(), 1, "the key is stored");
}

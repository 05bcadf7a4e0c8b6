//! An attacker's review (branch attack18a): unit tests of fixes made after 9dfc28b that
//! an integration test cannot reach. Each test reproduces one defect and asserts what the
//! project's documents promise, so it fails against the module as reviewed (3ae451a).

use zeroize::Zeroizing;

use super::test_store::TestStore;
use super::*;
use crate::ck::*;
use crate::config::Config;
use crate::error::Error;
use crate::ids::{SessionHandle, SlotId};
use crate::object::attr::{RawAttribute, RawValue};

/// Review 17c's fix (`config.rs` `parse_error`) still prints a `store_url` password.
/// docs/security.md promises "a configuration that does not parse is described by line,
/// column and the parser's message with quoted values left out, never quoted back", and
/// the fix's own unit test puts a URL with its password in the wrong field
/// (`max_pin_failures = "postgresql://u:s3cret-pw@h/d"`) and checks the password is not
/// said. But "quoted values" are found only as the text between pairs of `"` in the
/// parser's message, and serde quotes values two other ways:
/// - an unknown enum variant is quoted in backticks (`unknown variant `…`, expected one
///   of `off`, …`): the URL put in `log_level` (or `[postgres] change_check`) is printed
///   whole;
/// - a string is quoted with Rust's `{:?}`, which writes a `"` inside it as `\"`: a
///   password holding a `"` (a TOML literal string, `'…'`, takes one as it is) flips the
///   odd/even count, and everything after that `"` is printed as if outside quotes.
///
/// Expected: neither message holds the password.
#[test]
fn a_configuration_error_does_not_print_a_password_quoted_otherwise() {
    let mut printed = Vec::new();
    for text in [
        // A URL in an enum field: serde's unknown_variant quotes it in backticks.
        "token_dir = \"/t\"\nlog_level = \"postgresql://u:s3cret-pw@h/d\"\n",
        // A password with a double quote, in a field of another type.
        "token_dir = \"/t\"\nmax_pin_failures = 'postgresql://u:pa\"s3cret-pw@h/d'\n",
    ] {
        let said = match Config::parse(text) {
            Err(Error::Config(said)) => said,
            other => panic!("{text:?} did not fail to parse: {other:?}"),
        };
        if said.contains("s3cret") {
            printed.push(format!("{text:?} => {said}"));
        }
    }
    assert!(
        printed.is_empty(),
        "configuration errors print the password:\n{}",
        printed.join("\n")
    );
}

fn raw(ty: AttrType, value: &[u8]) -> RawAttribute {
    RawAttribute {
        ty: ty as _,
        value: RawValue::Bytes(Zeroizing::new(value.to_vec())),
    }
}

/// The body (JSON) of the last audit event of the token file at `path`.
fn last_event(path: &std::path::Path) -> String {
    let db = rusqlite::Connection::open(path).expect("the token file");
    let body: Vec<u8> = db
        .query_row(
            "SELECT body FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("an audit event");
    String::from_utf8_lossy(&body).into_owned()
}

/// Review 16e's fix (`Token::change_state`) names a refused state change "after the
/// state as cached now", on the ground that "a refusal first caught the cache up with
/// the store (`refused_on_current`)". That holds only for a refusal of the early check
/// on the cached state. When the cached state allows the request and the decision on
/// the current record (`KeyModel::change_state`, inside the store transaction) refuses
/// it, nothing caught the cache up: the audit event is named after a state the key no
/// longer has. Here the key is PendingDeletion in this process's cache (PostgreSQL's
/// notify mode, before another host's commits are heard of) while another process has
/// cancelled the deletion and deleted the material (PendingImport). The user asks for
/// Disabled: on the current record that is DisableKey, refused (no material); the trail
/// records a refused **CancelKeyDeletion**, an operation that was never decided on (the
/// key was not pending deletion). docs/audit.md's trail is what an auditor reads to
/// know what was asked of a key and refused.
/// Expected: the refusal is recorded as the operation the decision refused (DisableKey),
/// the name judged on the record the refusal was decided on.
#[test]
fn a_refusal_decided_on_the_current_record_is_named_after_that_record() {
    use crate::kms::key::KeyState;
    use crate::object::attr::KEY_STATE;
    let dir = tempfile::tempdir().expect("temporary directory");
    let serial = "audit18a01";
    let backend = crate::store::Backend::Files(dir.path().to_path_buf());
    drop(
        Token::create(
            &backend,
            SlotId::new(1),
            serial,
            [b' '; LABEL_LEN],
            b"so-pin-1234",
            shared_for_tests(dir.path()),
        )
        .expect("token"),
    );
    let path = crate::store::Backend::file_of(dir.path(), serial);
    let (store, hooks) = TestStore::wrap(Box::new(SqliteStore::open(&path).expect("store")));
    let here = Token::open_store(store, serial.into(), shared_for_tests(dir.path()))
        .expect("this process's token");
    let elsewhere =
        Token::open(&path, shared_for_tests(dir.path())).expect("the other process's token");
    let session = SessionHandle::new(1);
    let caller = Caller { session, rw: true };
    let user_pin = b"user-pin-5678";
    here.add_session(session, true).expect("session");
    here.login(session, UserKind::So, b"so-pin-1234")
        .expect("SO login");
    here.init_pin(true, user_pin).expect("user PIN");
    here.logout().expect("logout");
    here.login(session, UserKind::User, user_pin)
        .expect("user login");
    elsewhere.add_session(session, true).expect("session");
    elsewhere
        .login(session, UserKind::User, user_pin)
        .expect("user login elsewhere");
    let key = here
        .create_object(
            caller,
            &[
                raw(CKA_CLASS, &CKO_SECRET_KEY.raw().to_ne_bytes()),
                raw(CKA_KEY_TYPE, &CKK_AES.raw().to_ne_bytes()),
                raw(CKA_TOKEN, &[1]),
                raw(CKA_PRIVATE, &[1]),
                raw(CKA_LABEL, b"stale-audit"),
                raw(CKA_VALUE, &[7; 32]),
            ],
        )
        .expect("an EXTERNAL key with material");
    let state = |s: KeyState| [raw(KEY_STATE, &s.code().to_ne_bytes())];
    let theirs = elsewhere
        .find(&[raw(CKA_LABEL, b"stale-audit")])
        .expect("find elsewhere");
    assert_eq!(theirs.len(), 1);
    elsewhere
        .set_attributes(caller, theirs[0], &state(KeyState::PendingDeletion))
        .expect("deletion scheduled elsewhere");
    here.sync()
        .expect("this process sees the deletion scheduled");
    hooks.set_deaf(true);
    elsewhere
        .set_attributes(caller, theirs[0], &state(KeyState::Disabled))
        .expect("deletion cancelled elsewhere");
    elsewhere
        .set_attributes(caller, theirs[0], &state(KeyState::PendingImport))
        .expect("material deleted elsewhere");

    let refused = here.set_attributes(caller, key, &state(KeyState::Disabled));
    assert!(
        matches!(refused, Err(Error::Kms(_))),
        "Disabled for a key whose current record is PendingImport: {refused:?}"
    );
    let event = last_event(&path);
    assert!(
        event.contains("DisableKey") && !event.contains("CancelKeyDeletion"),
        "the refusal of DisableKey (decided on the current PendingImport record) is \
         recorded as: {event}"
    );
}

//! An attacker's review (branch attack18a): unit tests of fixes made after 9dfc28b that
//! an integration test cannot reach. Each test reproduces one defect and asserts what the
//! project's documents promise, so it fails against the module as reviewed (3ae451a).

use super::test_store::StaleKey;
use crate::config::Config;
use crate::error::Error;

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
    let dir = tempfile::tempdir().expect("temporary directory");
    let stale = StaleKey::new(dir.path(), "audit18a01", b"stale-audit");
    // Unheard of here: the deletion cancelled, then the material deleted.
    stale.set_elsewhere(KeyState::Disabled);
    stale.set_elsewhere(KeyState::PendingImport);
    let (here, caller, key, path) = (&stale.here, stale.caller, stale.key, &stale.path);
    let state = StaleKey::state;

    let refused = here.set_attributes(caller, key, &state(KeyState::Disabled));
    assert!(
        matches!(refused, Err(Error::Kms(_))),
        "Disabled for a key whose current record is PendingImport: {refused:?}"
    );
    let event = last_event(path);
    assert!(
        event.contains("DisableKey") && !event.contains("CancelKeyDeletion"),
        "the refusal of DisableKey (decided on the current PendingImport record) is \
         recorded as: {event}"
    );
}

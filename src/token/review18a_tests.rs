//! An attacker's review (branch attack18a): unit tests of fixes made after 9dfc28b that
//! an integration test cannot reach. Each test reproduces one defect and asserts what the
//! project's documents promise, so it fails against the module as reviewed (3ae451a).

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

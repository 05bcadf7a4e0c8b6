//! A sixth attacker's review, of 9393113 (copy-token takes only a serial, the module
//! skips a token file not named after its token's serial, the CLI answers a refused
//! command line with its JSON error) and 3ed325f (no session object is made in a closed
//! session): each test reproduces one defect found by reading the code, asserts what
//! PKCS#11 3.0 or the project's documents promise, and fails against the module as it
//! was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review13f` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `kmshsm --config conf args...`; answers (exit code, stdout, stderr).
fn kmshsm(conf: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let run = common::audit::kmshsm_with(conf, args);
    (run.code, run.stdout, run.stderr)
}

// ---------------------------------------------------------------------------------------
// 9393113: the module's "named after its serial" rule holds for files only
// ---------------------------------------------------------------------------------------

/// Defect: 9393113 made the module skip a token *file* not named after its token's
/// serial (`provider.rs` `open_new_files`), because a backup stored under another name
/// stands in for the live token of that serial: the provider opens the stores in name
/// order and `add_tokens` keeps the first token of a serial, skipping the later one as a
/// duplicate. The PostgreSQL store has the same structure (one `kmshsm_tokens` row per
/// token, its `serial` column the name, the token's own serial in its metadata) but
/// `open_new_rows` has no such check: a backup of token X restored into the database
/// under another row name that sorts first (here `0...`, by a database administrator
/// keeping it beside the live one) is opened as token X, and the live row X is then
/// skipped as a duplicate. Applications get the stale backup: a key made after the
/// backup is gone, a key destroyed since is back, PIN changes are undone.
///
/// Expected (docs/cli.md: "the module itself skips a token file not named after its
/// token's serial"; the same rule for a row, the store being the only difference): the
/// row whose name is not its token's serial is skipped and the live token X is what the
/// slot holds. Actual: the backup row takes X's slot.
#[test]
fn a_postgres_row_named_otherwise_than_its_serial_stands_in_for_the_live_token() {
    let live = TestEnv::postgres();
    {
        let ctx = live.load();
        init_token(&ctx);
        ctx.finalize().unwrap();
    }
    let serial = token_serial(&live, TOKEN_LABEL);
    let pg = live.pg.as_ref().unwrap();

    // A backup of the token, made with the tool into a directory.
    let backups = live.dir.path().join("backups");
    let (code, out, err) = kmshsm(
        &live.conf_path,
        &["copy-token", "--to", backups.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "backup: {out}{err}");

    // The live token goes on: a key is made after the backup.
    {
        let ctx = live.load();
        let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
        session
            .create_object(&aes_template("made-after-backup", &[7u8; 32], true))
            .unwrap();
        drop(session);
        ctx.finalize().unwrap();
    }

    // The backup is restored into the database beside the live token, under a name of
    // its own: the live row is renamed for the time of the copy (the tool copies a token
    // under its own serial only), the restored one renamed, the live one named back.
    let rename = |from: &str, to: &str| {
        pg.sql(
            "kmshsm",
            &format!("UPDATE kmshsm_tokens SET serial = '{to}' WHERE serial = '{from}'"),
        );
    };
    rename(&serial, "livetmp");
    let (code, out, err) = kmshsm(
        &live.conf_path,
        &[
            "copy-token",
            "--from",
            backups.to_str().unwrap(),
            "--serial",
            &serial,
            "--to",
            live.store_url.as_deref().unwrap(),
            "--slot-id",
            "4242",
        ],
    );
    assert_eq!(code, Some(0), "restore: {out}{err}");
    rename(&serial, "0restored");
    rename("livetmp", &serial);
    // Compared as a set: a random serial may sort before "0restored".
    let rows = pg.sql("kmshsm", "SELECT serial FROM kmshsm_tokens");
    let mut serials: Vec<&str> = rows.lines().collect();
    serials.sort_unstable();
    let mut expected = vec!["0restored", serial.as_str()];
    expected.sort_unstable();
    assert_eq!(serials, expected);

    let ctx = live.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let found = find_by_label(&session, "made-after-backup").len();
    let slot_id = slot.id();
    // Every slot list reads the rows again: the row found mismatched is not opened and
    // warned about again.
    for _ in 0..5 {
        ctx.get_slots_with_token().unwrap();
    }
    drop(session);
    ctx.finalize().unwrap();
    let warned = live.log().matches("skipping token 0restored").count();
    assert_eq!(
        warned,
        1,
        "one warning for the mismatched row: {}",
        live.log()
    );
    assert_eq!(
        found, 1,
        "the module opened row 0restored (a backup of token {serial}, slot {slot_id}) as \
         token {serial} and skipped the live row {serial}: the key made after the backup \
         is gone"
    );
}

// ---------------------------------------------------------------------------------------
// 9393113: a command line without its subcommand is answered with the tool's description
// ---------------------------------------------------------------------------------------

/// Defect: `main` sends every clap error that clap would print on standard error through
/// the JSON error, taking the first line of clap's rendering as the message. A command
/// line that lacks its subcommand (`kmshsm`, `kmshsm audit`) is such an error in clap
/// (`DisplayHelpOnMissingArgumentOrSubcommand`: the derive makes a required subcommand
/// show the help), and the first line of the help is the command's *description*: the
/// tool answers `{"Code": "InvalidParameter", "Message": "The KMS API (CreateKey, ...)
/// over kmshsm tokens"}` for `kmshsm`, and `"Message": "The token's audit trail of the
/// key lifecycle (docs/audit.md)"` for `kmshsm audit`. Nothing says that a command is
/// missing or which ones there are; the usage clap printed before 9393113 is gone.
///
/// Expected (docs/cli.md: a failure prints `{"Code", "Message", "RequestId"}`; the
/// message says what is wrong, as it does for every other refused command line, e.g.
/// "unexpected argument ..."): a message that names the missing subcommand. Actual: the
/// description of the command, as if it were the error.
#[test]
fn cli_without_a_subcommand_answers_the_description_as_the_error() {
    let env = TestEnv::new();
    env.activate();
    // The bare command (nothing after it: the configuration comes from $KMSHSM_CONF),
    // and a command group without its action.
    let config = env.conf_path.to_str().unwrap();
    for args in [&[][..], &["--config", config, "audit"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
            .args(args)
            .output()
            .expect("run kmshsm");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kmshsm {args:?}: {err}");
        let answer: serde_json::Value = serde_json::from_str(&err)
            .unwrap_or_else(|e| panic!("kmshsm {args:?}: no JSON error ({e}): {err}"));
        let message = answer["Message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            message.contains("command"),
            "kmshsm {args:?} answered {message:?}: the command's description, not what \
             is wrong with the command line"
        );
    }
}

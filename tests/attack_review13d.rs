//! A fourth attacker's review of c1e0fba, of `kmshsm copy-token` chiefly: each test
//! reproduces one defect found by reading the code, asserts what the project's documents
//! promise, and fails against the module as it was reviewed. Its doc comment says what is
//! wrong.
//! Run with `cargo nextest run --test attack_review13d`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use cryptoki::object::AttributeType;

/// Runs `kmshsm --config conf args...`; answers (success, the JSON it printed, as text).
fn kmshsm(conf: &Path, args: &[&str]) -> (bool, String) {
    let run = common::audit::kmshsm_with(conf, args);
    (run.ok, if run.ok { run.stdout } else { run.stderr })
}

/// The `.db` files directly in `dir`, sorted.
fn databases(dir: &Path) -> Vec<PathBuf> {
    let mut dbs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "db"))
                .collect()
        })
        .unwrap_or_default();
    dbs.sort();
    dbs
}

// ---------------------------------------------------------------------------------------
// copy-token: --serial is a file name, not checked
// ---------------------------------------------------------------------------------------

/// Defect: `copy-token --serial` is joined into a path as it is given
/// (`Backend::file_of`: `dir.join(format!("{serial}.db"))`), in the source and in the
/// destination alike; nothing checks that it is a serial (no `/`, no `..`). A serial of
/// `../tokens/<serial>` reads the source's token and writes the copy **outside** the
/// directory named by `--to`, into its sibling `tokens`, while the tool's refusals look
/// at `--to` only: "the destination must not hold the serial yet, and no other token
/// there may have the copy's slot id" (docs/cli.md) are checked on the empty staging
/// directory, not where the copy lands. Here the copy lands in another installation's
/// live token directory, beside its token, and is even given that token's slot id
/// (`--slot-id`), which the tool exists to refuse: the module then opens only one of two
/// tokens that share a slot id, whichever file sorts first (`provider.rs` `add_tokens`),
/// so the copy may take the live token's slot from its applications. The tool reports
/// `"Serial": "../tokens/<serial>"` and `"Verified": true`.
///
/// Expected (docs/cli.md, `copy-token`; the module's own token files are named by their
/// serial only): a `--serial` that is not a token serial is refused, and nothing is
/// written outside the destination named. Actual: the copy is made and reported
/// `"Verified": true`, at `<to>/../tokens/<serial>.db`.
#[test]
fn copy_token_serial_with_a_path_writes_outside_the_destination() {
    let source = TestEnv::new();
    {
        let ctx = source.load();
        init_token_labelled(&ctx, "source");
        ctx.finalize().unwrap();
    }
    let serial = token_serial(&source, "source");

    // Another installation, with a live token of its own in its token directory, and an
    // empty staging directory beside it: the only destination the operator names.
    let live = TestEnv::new();
    let live_slot = {
        let ctx = live.load();
        let slot = init_token_labelled(&ctx, "live");
        ctx.finalize().unwrap();
        slot.id().to_string()
    };
    let before = databases(&live.token_dir);
    assert_eq!(before.len(), 1, "{before:?}");
    let staging = live.dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();

    let crafted = format!("../tokens/{serial}");
    let (ok, said) = kmshsm(
        &source.conf_path,
        &[
            "copy-token",
            "--from",
            source.token_dir.to_str().unwrap(),
            "--serial",
            &crafted,
            "--to",
            staging.to_str().unwrap(),
            "--slot-id",
            &live_slot,
        ],
    );
    let after = databases(&live.token_dir);
    assert!(
        !ok,
        "a --serial holding a path was accepted, and the copy written outside --to: {said}"
    );
    assert_eq!(
        after, before,
        "copy-token wrote into a directory it was not pointed at"
    );
}

/// Defect: the copy is created under the name given on the command line, not under the
/// token's own serial (`copy_token` passes `serial`, the file stem, to `to.create` and
/// checks the destination's serials against it, while the copied metadata keeps the
/// token's real serial). A backup of a token kept under another file name
/// (`<serial>-backup.db`) is copied back into a directory that still holds the live
/// token: docs/cli.md says "The destination must not hold the serial yet", but the check
/// compares `<serial>-backup` with `<serial>` and lets it in (the slot id check is passed
/// with `--slot-id`, as the refusal message itself advises). The destination then holds
/// two tokens with one serial. The module opens its directory's files in name order and
/// skips the second token of a serial (`provider.rs` `add_tokens`): `<serial>-backup.db`
/// sorts before `<serial>.db` (`-` < `.`), so applications now get the stale backup as
/// the token: keys made since the backup are gone, and any KMS state changed since
/// (a key disabled, its material deleted, a PIN's failure count) is rolled back.
///
/// Expected (docs/cli.md: "The destination must not hold the serial yet"; the token is
/// identified by its serial, `CK_TOKEN_INFO.serialNumber`): the copy is refused, and the
/// live token, with the key made after the backup, is what the module opens. Actual:
/// the copy succeeds and the key made after the backup is no longer found.
#[test]
fn copy_token_under_another_name_shadows_the_live_token_of_that_serial() {
    let live = TestEnv::new();
    {
        let ctx = live.load();
        init_token(&ctx);
        ctx.finalize().unwrap();
    }
    let serial = token_serial(&live, TOKEN_LABEL);
    let live_db = live.token_dir.join(format!("{serial}.db"));
    assert!(live_db.is_file(), "{live_db:?}");

    // A backup of the token file, kept elsewhere under a name of its own.
    let backups = live.dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let backup_name = format!("{serial}-backup");
    for suffix in ["", "-wal"] {
        let from = PathBuf::from(format!("{}{suffix}", live_db.display()));
        if from.is_file() {
            let to = backups.join(format!("{backup_name}.db{suffix}"));
            std::fs::copy(&from, &to).unwrap();
        }
    }

    // The live token goes on: a key is made after the backup.
    {
        let (ctx, _slot, session) = ready_token_again(&live);
        session
            .create_object(&aes_template("made-after-backup", &[7u8; 32], true))
            .unwrap();
        drop(session);
        ctx.finalize().unwrap();
    }

    // The backup is copied back into the live directory, with another slot id as the
    // tool asks for; it must be refused, the serial being there already.
    let (ok, said) = kmshsm(
        &live.conf_path,
        &[
            "copy-token",
            "--from",
            backups.to_str().unwrap(),
            "--serial",
            &backup_name,
            "--to",
            live.token_dir.to_str().unwrap(),
            "--slot-id",
            "4242",
        ],
    );

    // Whatever the tool answered, the module must still open the live token.
    let ctx = live.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let found = find_by_label(&session, "made-after-backup");
    let value_len = found
        .first()
        .map(|h| attribute_bytes(&session, *h, AttributeType::ValueLen).len());
    drop(session);
    ctx.finalize().unwrap();
    assert_eq!(
        found.len(),
        1,
        "after copying a backup of token {serial} back under another name (tool said \
         ok={ok}), the module opened the stale backup as the token: the key made since \
         is gone ({value_len:?}); {said}"
    );
    assert!(
        !ok,
        "a second token with serial {serial} was copied into the destination: {said}"
    );
}

/// The module's side of the same: a backup of a token file renamed by hand into the token
/// directory (no tool asked) holds the token's serial under another name. The module
/// opens the file named after the serial and skips the other, saying so in its log, so
/// the live token, with the key made after the backup, is what applications get.
#[test]
fn a_token_file_named_otherwise_than_its_serial_is_skipped() {
    let live = TestEnv::new();
    {
        let ctx = live.load();
        init_token(&ctx);
        ctx.finalize().unwrap();
    }
    let serial = token_serial(&live, TOKEN_LABEL);
    let live_db = live.token_dir.join(format!("{serial}.db"));
    let renamed = live.token_dir.join(format!("{serial}-backup.db"));
    std::fs::copy(&live_db, &renamed).unwrap();
    {
        let (ctx, _slot, session) = ready_token_again(&live);
        session
            .create_object(&aes_template("made-after-backup", &[7u8; 32], true))
            .unwrap();
        drop(session);
        ctx.finalize().unwrap();
    }
    let skipped = |log: &str| log.matches("skipping token file").count();
    let before = skipped(&live.log());
    let ctx = live.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    assert_eq!(find_by_label(&session, "made-after-backup").len(), 1);
    // Every slot list rescans the folder: the file found mismatched is not opened and
    // warned about again while it stays as it was.
    for _ in 0..5 {
        ctx.get_slots_with_token().unwrap();
    }
    let log = live.log();
    assert!(
        log.contains("skipping token file") && log.contains(&format!("{serial}-backup.db")),
        "{log}"
    );
    assert_eq!(skipped(&log) - before, 1, "one warning for one file: {log}");
    // A file written since is looked at again.
    std::fs::copy(&live_db, &renamed).unwrap();
    ctx.get_slots_with_token().unwrap();
    assert_eq!(skipped(&live.log()) - before, 2, "the file changed");
    drop(session);
    ctx.finalize().unwrap();
}

/// Loads the module of `env` again and logs in to its (initialised) token.
fn ready_token_again(
    env: &TestEnv,
) -> (
    cryptoki::context::Pkcs11,
    cryptoki::slot::Slot,
    cryptoki::session::Session,
) {
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    (ctx, slot, session)
}

// ---------------------------------------------------------------------------------------
// The CLI: a bad option value is not answered as docs/cli.md says
// ---------------------------------------------------------------------------------------

/// Defect: values the option parser (clap) rejects never reach `run`, so they are not
/// answered the documented way: `schedule-key-deletion --pending-window-in-days 400` is
/// `{"Code": "InvalidParameter", ...}` on standard error with exit 1, but
/// `--pending-window-in-days 4294967296` (past `u32`), `--key-material-expire-unix -5`
/// or `--slot abc` print clap's plain-text usage error and exit **2**. A script that
/// reads the error's JSON (as docs/cli.md tells it it can) gets no JSON at all, and one
/// that checks for exit 1 sees an unknown status.
///
/// Expected (docs/cli.md: "Every command prints JSON ... A failure prints `{"Code": ...,
/// "Message": ..., "RequestId": ...}` on standard error and exits 1", the code being the
/// documents' `InvalidParameter` for a bad parameter value). Actual: exit 2, plain text.
#[test]
fn cli_bad_option_values_fail_without_the_documented_json_and_exit_code() {
    let env = TestEnv::new();
    {
        let ctx = env.load();
        init_token(&ctx);
        ctx.finalize().unwrap();
    }
    let cases: [&[&str]; 4] = [
        // The documented answer, for comparison: within u32, out of 7..=366.
        &[
            "schedule-key-deletion",
            "--key-id",
            "00000000-0000-0000-0000-000000000000",
            "--pending-window-in-days",
            "400",
        ],
        &[
            "schedule-key-deletion",
            "--key-id",
            "00000000-0000-0000-0000-000000000000",
            "--pending-window-in-days",
            "4294967296",
        ],
        &[
            "import-key-material",
            "--key-id",
            "00000000-0000-0000-0000-000000000000",
            "--encrypted-key-material",
            "AAAA",
            "--import-token",
            "AAAA",
            "--key-material-expire-unix=-5",
        ],
        &["--slot", "abc", "list-keys"],
    ];
    let mut wrong = Vec::new();
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
            .arg("--config")
            .arg(&env.conf_path)
            .args(args)
            .env("KMSHSM_PIN", USER_PIN)
            .output()
            .expect("run kmshsm");
        let code = serde_json::from_slice::<serde_json::Value>(&out.stderr)
            .ok()
            .and_then(|v| v["Code"].as_str().map(str::to_string));
        if out.status.code() != Some(1) || code.as_deref() != Some("InvalidParameter") {
            wrong.push(format!(
                "{args:?}: exit {:?}, Code {code:?}",
                out.status.code()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "bad values answered otherwise than docs/cli.md says: {wrong:#?}"
    );
}

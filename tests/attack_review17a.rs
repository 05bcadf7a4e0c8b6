//! An attacker's review (branch attack17a) of the SQLite token store at the file and
//! process level (docs/architecture.md, "The token store"; `src/store/sqlite/`,
//! `src/os/`, `kmshsm copy-token`): each test shows one defect and fails against the code
//! it was written on.
//!
//! Run with `cargo nextest run --test attack_review17a` (one process per test: the tests
//! point the module at their own configuration through the environment).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use rusqlite::Connection;

use common::*;

/// What version 7 changed, taken back (as `tests/store_upgrade.rs` does): a version 6
/// token database, as the build before version 7 wrote it.
const DOWNGRADE_TO_V6: &str = "
BEGIN IMMEDIATE;
ALTER TABLE pins DROP COLUMN reserved;
DROP TABLE pin_flights;
CREATE TABLE pin_attempts (role INTEGER PRIMARY KEY, inflight INTEGER NOT NULL,
                           lease_until INTEGER NOT NULL);
PRAGMA user_version = 6;
COMMIT;
";

fn user_version(db: &std::path::Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A token with one token object, closed; returns its database's path.
fn closed_token(env: &TestEnv) -> std::path::PathBuf {
    let (ctx, _slot, session) = ready_token(env);
    session
        .create_object(&data_template("kept", b"public value", true))
        .expect("C_CreateObject");
    drop(session);
    ctx.finalize().expect("C_Finalize");
    env.token_database()
}

/// `kmshsm copy-token` rewrites its *source* when the source is a token file of an
/// older schema: it upgrades it in place to this build's version.
///
/// `src/token/copy.rs` promises "This module must not change the source", and docs/cli.md
/// and docs/deployment.md present `copy-token --from` as the way to move a token or take
/// a backup out. But `copy_token` opens the source with `Backend::open`, i.e.
/// `SqliteStore::open`, which runs `schema::upgrade` on any version 1 to 6 database, in
/// a write transaction on the source file, before a single record is read. So copying
/// from a backup taken by an earlier build (version 6 here, the build before PIN
/// attempts were numbered) silently converts the backup to version 7: the build it
/// belongs to then refuses it ("a newer version is refused", docs/architecture.md), and a
/// backup that must stay as it was (kept as custody of the keys, docs/deployment.md
/// "Backups") has been rewritten by a tool that claims to only read it. The copy should
/// read the source without changing it (or refuse an older source and say why); either
/// way the source's schema version must still be 6 afterwards. docs/deployment.md makes
/// this worse: "Keep a copy of `token_dir` from before the upgrade if a downgrade may be
/// needed: nothing converts a token back" -- copying a token out of that very copy (to
/// PostgreSQL, say) destroys the downgrade path it was kept for.
#[test]
fn copy_token_upgrades_an_older_source_file_in_place() {
    let env = TestEnv::new();
    let db = closed_token(&env);
    Connection::open(&db)
        .unwrap()
        .execute_batch(DOWNGRADE_TO_V6)
        .unwrap();
    assert_eq!(user_version(&db), 6, "the source is a version 6 token");
    let source_dir = env.token_dir.to_str().unwrap().to_string();
    let dest = env.dir.path().join("copies");
    let run = common::audit::kmshsm_with(
        &env.conf_path,
        &[
            "copy-token",
            "--from",
            &source_dir,
            "--to",
            dest.to_str().unwrap(),
        ],
    );
    eprintln!(
        "copy-token ok={} stdout={} stderr={}",
        run.ok, run.stdout, run.stderr
    );
    assert_eq!(
        user_version(&db),
        6,
        "copy-token changed its source: the version 6 token file was upgraded in place \
         (copy ok: {})",
        run.ok
    );
}

/// The module rewrites a token file that it then skips: a version 6 copy of a token kept
/// in the token directory under another name (say a pre-upgrade backup,
/// docs/deployment.md) is upgraded in place by `C_Initialize` before the module finds
/// that the file is not named after its serial and skips it.
///
/// docs/cli.md: "the module itself skips a token file ... not named after its token's
/// serial, with one warning in its log". `Provider::open_new_files` decides that only
/// after `Token::open`, whose `SqliteStore::open` has already run `schema::upgrade` in a
/// write transaction on the file (same root cause as the copy-token test above: opening a
/// store upgrades it before anyone decided to use it). A file the module refuses to use
/// must come out of `C_Initialize` as it went in; here its schema version goes 6 -> 7 and
/// the build it came from can no longer open it.
#[test]
fn a_skipped_token_file_of_an_older_schema_is_upgraded_in_place() {
    let env = TestEnv::new();
    let db = closed_token(&env);
    let serial = db.file_stem().unwrap().to_str().unwrap().to_string();
    let backup = env.token_dir.join("preupgrade.db");
    std::fs::copy(&db, &backup).unwrap();
    Connection::open(&backup)
        .unwrap()
        .execute_batch(DOWNGRADE_TO_V6)
        .unwrap();
    assert_eq!(user_version(&backup), 6, "the backup is a version 6 token");
    {
        let ctx = env.load();
        let serials: Vec<String> = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .map(|s| ctx.get_token_info(s).unwrap())
            .filter(|info| info.token_initialized())
            .map(|info| info.serial_number().trim().to_string())
            .collect();
        assert_eq!(
            serials,
            vec![serial.clone()],
            "only the live token is in a slot"
        );
        ctx.finalize().expect("C_Finalize");
    }
    assert!(
        env.log().contains("preupgrade.db"),
        "the module said it skipped the file: {}",
        env.log()
    );
    assert_eq!(
        user_version(&backup),
        6,
        "C_Initialize upgraded a token file it then skipped (version 6 -> 7 in place)"
    );
}

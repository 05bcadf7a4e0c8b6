//! An attacker's review (branch attack19c) of the token file against someone who can
//! write it but holds no PIN (docs/security.md: the threat table's "Holder of a copy of
//! the token file" row, "Records at rest"; docs/audit.md). Each test asserts what the
//! project's documents promise and fails against the module as reviewed (a008421); its
//! doc comment says what is wrong and what a correct module answers.
//!
//! Run with `cargo build --lib --bins && cargo nextest run --test attack_review19c`.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]
// test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them
// CK_ULONG is u64 here and u32 on other targets, so the casts stay.
#![allow(clippy::unnecessary_cast)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::duties::{oaep_sha256, separate_duties};
use common::kms::*;
use common::records::{edit_plain, set_attr, uid_of};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki_sys::*;
use kmshsm::object::attr::Value;

const TAMPERED: RvError = RvError::VendorDefined(KMSHSM | 0x07);

/// The environment variable giving a child the token database's path.
const DB_ENV: &str = "ATTACK19C_DB";

/// How long a child may take before it is killed and counted as hung: the module's own
/// longest wait (SQLite's busy timeout, 30 s) and some slack.
const CHILD_DEADLINE: Duration = Duration::from_secs(45);

/// Waits for `child` for at most [`CHILD_DEADLINE`]: its status and standard output, or
/// `None` when it had to be killed.
fn finish(mut child: std::process::Child) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    Some((status, out))
}

/// A token with both PINs set, released again: the path of its database.
fn prepared_token(env: &TestEnv) -> PathBuf {
    let (ctx, _slot, session) = ready_token(env);
    session
        .create_object(&data_template("before", b"v", true))
        .unwrap();
    drop(session);
    ctx.finalize().unwrap();
    env.token_database()
}

/// The side file `suffix` (`-wal`, `-shm`, `-sync`) of the database at `db`.
fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs the child role `role` of [`child_entry`] on the prepared token of `env`.
fn run_child(env: &TestEnv, role: &str) -> Option<(std::process::ExitStatus, String)> {
    let db = prepared_token(env);
    let child = child_command("child_entry", role)
        .env(DB_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    finish(child)
}

/// Not a test: the body of the child processes (see `common::child_command`). With the
/// token open and a user logged in, it does the side file's damage `role` names to the
/// files of the running store, then creates a token object and reports the outcome.
#[test]
#[ignore]
fn child_entry() {
    let Some(role) = child_role() else { return };
    let db = PathBuf::from(std::env::var_os(DB_ENV).unwrap());
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    // One write with everything in place: every side file exists and is mapped.
    session
        .create_object(&data_template("first", b"v", true))
        .unwrap();
    match role.as_str() {
        "truncate-sync" => {
            let sync = std::fs::OpenOptions::new()
                .write(true)
                .open(side_file(&db, "-sync"))
                .unwrap();
            sync.set_len(0).unwrap();
        }
        "fifo-wal" => {
            let fifo = db.with_extension("fifo");
            let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: (test) a NUL-terminated path that lives across the call.
            assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
            std::fs::rename(&fifo, side_file(&db, "-wal")).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    let outcome = match session.create_object(&data_template("second", b"v", true)) {
        Ok(_) => "CKR_OK".to_string(),
        Err(e) => format!("{e}"),
    };
    tell_parent(&format!("answered {outcome}"));
}

/// The `-sync` file (the cross-process sync board, `store/sqlite/board.rs`, mapped by
/// `os/shared_words.rs`) cut to nothing by anyone who can write the token folder while a
/// process has the token open: the next write touches the mapped page past the end of
/// the file and the kernel kills the host process with SIGBUS.
///
/// docs/reliability.md opens with "a crash takes their application down"; its first
/// guarantee is that no outside data crashes the module, and docs/performance.md
/// rejected memory-mapped reads precisely because "a truncated file then kills the host
/// process with SIGBUS instead of failing the call". The board is such a mapping of a
/// file the module does not own alone, and docs/security.md's "Known limits" do not
/// name it. A correct module answers the write (`CKR_OK`: the board is an optimisation,
/// the store syncs alone without it) or fails the call with `CKR_DEVICE_ERROR`; the
/// process lives either way.
#[test]
#[ignore = "known limit, not fixed (docs/security.md, Known limits): a side file mapped by a running process (-sync here; -shm, mapped by SQLite too) cut short by a writer of the token folder kills it with SIGBUS"]
fn a_sync_board_cut_short_under_a_running_process_does_not_kill_it() {
    let env = TestEnv::new();
    let (status, out) = run_child(&env, "truncate-sync").expect("the child hung");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        None,
        "the host process was killed by signal {:?} (7 is SIGBUS) after the -sync file \
         was truncated; output: {out}",
        status.signal()
    );
    assert!(
        child_lines(&out).iter().any(|l| l.starts_with("answered ")),
        "the write did not answer: {out}"
    );
}

/// The `-wal` file renamed over by a FIFO while a process has the token open: the next
/// write of that process hangs for ever, with its store's connection lock held, so every
/// other thread of the host that touches the token hangs behind it. The writers' turn
/// (`SqliteStore::lock_for_write`) opens `<db>-wal` by name, read-only and blocking, at
/// every write; on a FIFO with no writer `open(2)` never returns. SQLite itself keeps its
/// own descriptor of the old WAL and is not disturbed.
///
/// The module's own comment promises the opposite ("a writer that cannot have it (the
/// file cannot be opened or locked ...) goes on without it and meets SQLite's lock as
/// before, whose busy timeout then bounds the rest"), and docs/reliability.md that
/// outside data never hangs the module. A correct module answers the write within
/// SQLite's busy timeout (`CKR_OK`, or `CKR_DEVICE_ERROR`), never later.
#[test]
fn a_wal_file_replaced_by_a_fifo_does_not_hang_a_write() {
    let env = TestEnv::new();
    let finished = run_child(&env, "fifo-wal");
    let (status, out) = finished.unwrap_or_else(|| {
        panic!(
            "the write hung for {CHILD_DEADLINE:?} after the -wal file was replaced by a \
             FIFO (killed)"
        )
    });
    assert!(
        child_lines(&out).iter().any(|l| l.starts_with("answered ")),
        "the write did not answer ({status}): {out}"
    );
}

/// The separation-of-duties marker (`separation_of_duties` in the `meta` table) is a
/// plain, unauthenticated row: deleting it from the file lifts the policy for every later
/// process configured without it, and a key that both wraps and decrypts — the classic
/// extraction the policy exists to refuse — is generated without complaint.
///
/// docs/security.md, "Separation of duties": the policy is "the token's, not the
/// caller's ... every later process of that token keeps the policy whatever its own
/// configuration says ... Only `C_InitToken` by a process configured without it clears
/// the marker"; the threat table gives a holder of the file with write access no edit
/// that goes unnoticed after the next login. The policy restrains the user, and the
/// user owns the token file: the edit needs no PIN and leaves nothing a login checks. A
/// correct module keeps the policy (the marker authenticated under the master key, or
/// its absence refused after a login on a token that had it) and answers the generation
/// below `CKR_TEMPLATE_INCONSISTENT`, as it does with the marker in place.
///
/// Fixed: the policy is sealed into the record-authentication marker
/// (`token::records::record_auth_marker`), so the login below finds it sealed, keeps it
/// and writes the row again.
#[test]
fn a_deleted_separation_of_duties_marker_does_not_lift_the_policy() {
    let env = TestEnv::new();
    separate_duties(&env);
    let (ctx, _slot, session) = ready_token(&env);
    drop(session);
    ctx.finalize().unwrap();
    // Later processes are configured without the policy: the token's marker rules.
    let text = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config(&text.replace("separation_of_duties = true\n", ""));
    let wraps_and_decrypts = [
        Attribute::Token(true),
        Attribute::ValueLen(16.into()),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Decrypt(true),
    ];

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_rv!(
        session.generate_key(&Mechanism::AesKeyGen, &wraps_and_decrypts),
        RvError::TemplateInconsistent,
        "control: the token's marker keeps the policy for a process configured without it"
    );
    drop(session);
    ctx.finalize().unwrap();

    // Offline, no PIN: the marker's row is deleted.
    let db = rusqlite::Connection::open(env.token_database()).unwrap();
    let n = db
        .execute("DELETE FROM meta WHERE name = 'separation_of_duties'", [])
        .unwrap();
    assert_eq!(n, 1, "the marker was stored under this name");
    drop(db);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let got = session.generate_key(&Mechanism::AesKeyGen, &wraps_and_decrypts);
    assert_eq!(
        got.map_err(|e| match e {
            cryptoki::error::Error::Pkcs11(rv, _) => rv,
            other => panic!("{other}"),
        }),
        Err(RvError::TemplateInconsistent),
        "a key that wraps and decrypts was made on a token under the policy once its \
         marker row was deleted offline"
    );
}

/// A public key planted offline under an import wrapping pair's names: a public key the
/// attacker made in a session that was not logged in (an unauthenticated record, as the
/// module writes for such sessions), then given offline the pair's `CKA_LABEL`
/// (`import:<KeyId>`) and `CKA_ID`. After the owner's next login the module hands it out
/// beside the pair's own public half, as a valid object: a tool that selects the pair by
/// its label or id (docs/key-model.md) may take the attacker's modulus and wrap the
/// owner's material to it.
///
/// docs/security.md, "Records at rest": a record without authentication "may only hold
/// what such a session may write anyway"; "One authorisation point": no other object
/// may be given a label in the `import:` namespace, nor a pair's `CKA_ID`, by any
/// caller (`CKR_ATTRIBUTE_VALUE_INVALID`); the threat table: no edit of a record by a
/// holder of the file goes unnoticed after the next login. A correct module refuses the
/// planted record as it refuses every other unauthenticated record claiming more than
/// such a session may write: `CKR_KMSHSM_RECORD_TAMPERED` (or leaves it out of the
/// search), so every public key found under the pair's label or id is the pair's own.
fn plant_under_the_pairs_names(give_label: bool) {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let target = create_external(&session, Spec::Aes256, "byok target");
    let id = key_id(&session, target);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let pair_label = attribute_bytes(&session, params.public, AttributeType::Label);
    let pair_id = attribute_bytes(&session, params.public, AttributeType::Id);
    let genuine = attribute_bytes(&session, params.public, AttributeType::Modulus);
    assert!(
        pair_label.starts_with(b"import:"),
        "the pair's default label"
    );
    assert!(!pair_id.is_empty(), "the pair has an id");
    // The attacker's key pair (its private half stays with the attacker).
    let (theirs, _) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[Attribute::Token(false)],
        )
        .unwrap();
    let forged = attribute_bytes(&session, theirs, AttributeType::Modulus);
    session.logout().unwrap();
    // Without a login, as any caller may: a public token key of the attacker's.
    let planted = session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Label(b"planted".to_vec()),
            Attribute::Modulus(forged.clone()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ])
        .expect("a public key from a session that is not logged in");
    let planted_uid = uid_of(&session, planted);
    drop(session);
    ctx.finalize().unwrap();

    // Offline, no PIN: the planted record takes the pair's names, and the index is
    // made again by the next process (the index version removed).
    let db_path = env.token_database();
    edit_plain(&db_path, &planted_uid, |a| {
        if give_label {
            set_attr(a, CKA_LABEL, Value::Bytes(pair_label.clone()));
        }
        set_attr(a, CKA_ID, Value::Bytes(pair_id.clone()));
    });
    let db = rusqlite::Connection::open(&db_path).unwrap();
    db.execute("DELETE FROM meta WHERE name = 'object_index'", [])
        .unwrap();
    drop(db);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let mut served = Vec::new();
    let mut selectors = vec![Attribute::Id(pair_id.clone())];
    if give_label {
        selectors.push(Attribute::Label(pair_label.clone()));
    }
    for selector in selectors {
        let found = session
            .find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), selector])
            .unwrap();
        assert!(!found.is_empty(), "the pair's own public half is found");
        for h in found {
            match session.get_attributes(h, &[AttributeType::Modulus]) {
                Ok(_) => {
                    let modulus = attribute_bytes(&session, h, AttributeType::Modulus);
                    if modulus != genuine {
                        // What a tool does next: wrap the material to it.
                        let wrapped = session.encrypt(&oaep_sha256(), h, &[0x42; 32]);
                        served.push((h, wrapped.is_ok()));
                    }
                }
                Err(e) => assert_eq!(rv::<()>(Err(e)), TAMPERED),
            }
        }
    }
    assert!(
        served.is_empty(),
        "a public key planted offline under the import pair's label and id is served as \
         valid after login (handle, encrypts): {served:?}"
    );
}

#[test]
fn a_public_key_planted_under_an_import_pairs_names_is_refused_after_login() {
    plant_under_the_pairs_names(true);
}

/// The same, the planted key given the pair's `CKA_ID` alone (tools select a pair by its
/// id as well as by its label): its own label is no pair's, so only the id tells it.
#[test]
fn a_public_key_planted_under_an_import_pairs_id_alone_is_refused_after_login() {
    plant_under_the_pairs_names(false);
}

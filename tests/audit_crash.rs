//! SIGKILL in the middle of the key lifecycle, and the audit trail: after every kill, no
//! change exists without its event and no event without its change (docs/audit.md).
//!
//! Each round a child loops over CreateKey (EXTERNAL AES-256), GetParametersForImport,
//! ImportKeyMaterial, DisableKey, EnableKey, DeleteKeyMaterial and (every other key)
//! C_DestroyObject, and is SIGKILLed at a random moment. Then, for every KeyId the trail
//! or the token knows: the state the key's last successful event leaves it in is the
//! state it has (absent after DestroyKey), every key present has its CreateKey, and
//! there are as many GetParametersForImport events for it as wrapping pairs; and
//! `kmshsm audit verify` passes.
//!
//! The same on a PostgreSQL token (a private server, `tests/common/pg.rs`), with fewer
//! rounds: a client killed mid-transaction leaves the server to roll it back whole.
//!
//! Rounds: `KMSHSM_AUDIT_KILL_ROUNDS` (default 40, a quarter of it on PostgreSQL);
//! `KMSHSM_AUDIT_KILL_SEED` replays a run. Needs `openssl`. Run with `cargo nextest run --test audit_crash`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cryptoki::object::{Attribute, AttributeType, ObjectClass};

use common::kms::*;
use common::*;
use kmshsm::config::{PostgresConfig, StoreUrl};
use kmshsm::kms::audit::{AuditEvent, Operation, Outcome};
use kmshsm::store::postgres::schema::Catalog;
use kmshsm::store::postgres::PgSettings;
use kmshsm::store::{Backend, Store};

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Not a test: the child that gets killed.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let round: u32 = role.strip_prefix("round-").unwrap().parse().unwrap();
    let dir = std::path::PathBuf::from(std::env::var("KMSHSM_WORK_DIR").unwrap());
    let work = Work { dir };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    tell_parent("ready");
    for n in 0..1_000_000usize {
        let key = create_external(&session, Spec::Aes256, &format!("r{round}-{n}"));
        import_with(
            &session,
            &work,
            key,
            WRAP_RSAES_OAEP_SHA_256,
            &[round as u8; 32],
            None,
        )
        .unwrap();
        set_state(&session, key, STATE_DISABLED).unwrap();
        set_state(&session, key, STATE_ENABLED).unwrap();
        set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
        if n % 2 == 0 {
            session.destroy_object(key).unwrap();
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The state (`None`: no key) the last successful event about a key leaves it in.
fn state_after(op: Operation) -> Option<Option<u64>> {
    Some(match op {
        Operation::CreateKey | Operation::DeleteKeyMaterial => Some(STATE_PENDING_IMPORT),
        Operation::ImportKeyMaterial | Operation::EnableKey => Some(STATE_ENABLED),
        Operation::DisableKey => Some(STATE_DISABLED),
        Operation::DestroyKey => None,
        _ => return None,
    })
}

#[derive(Default, Debug)]
struct Key {
    /// From the trail.
    created: bool,
    expected: Option<Option<u64>>,
    parameters: usize,
    /// From the token.
    state: Option<u64>,
    pairs: usize,
}

/// The store of the environment's one token (its SQLite file, or its database rows).
fn open_store(env: &TestEnv) -> Box<dyn Store> {
    let backend = match &env.store_url {
        Some(url) => {
            let settings =
                PgSettings::new(&StoreUrl::new(url), &PostgresConfig::default()).unwrap();
            Backend::Postgres(std::sync::Arc::new(Catalog::new(std::sync::Arc::new(
                settings,
            ))))
        }
        None => Backend::Files(env.token_dir.clone()),
    };
    let serials = backend.serials().unwrap();
    assert_eq!(serials.len(), 1, "{serials:?}");
    backend.open(&serials[0]).unwrap().0
}

/// Compares the trail with the token, which no process holds.
fn check(env: &TestEnv, round: u32) {
    let mut keys: BTreeMap<String, Key> = BTreeMap::new();
    let store = open_store(env);
    for record in store.audit_log().unwrap().events {
        let e = AuditEvent::decode(&record.body).expect("readable event");
        let (Some(id), Outcome::Success) = (e.key_id.clone(), e.outcome) else {
            continue;
        };
        let key = keys.entry(id).or_default();
        match e.event_name {
            Operation::GetParametersForImport => key.parameters += 1,
            op => {
                key.created |= op == Operation::CreateKey;
                if let Some(s) = state_after(op) {
                    key.expected = Some(s);
                }
            }
        }
    }
    drop(store);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    for h in session.find_objects(&[]).unwrap() {
        let class = session
            .get_attributes(h, &[AttributeType::Class])
            .unwrap()
            .into_iter()
            .find_map(|a| match a {
                Attribute::Class(c) => Some(c),
                _ => None,
            });
        if let Some(target) = read_bytes(&session, h, CKA_KMSHSM_IMPORT_TARGET) {
            if class == Some(ObjectClass::PRIVATE_KEY) {
                let key = keys.entry(String::from_utf8(target).unwrap()).or_default();
                key.pairs += 1;
            }
        } else if let Some(id) = read_bytes(&session, h, CKA_KMSHSM_KEY_ID) {
            keys.entry(String::from_utf8(id).unwrap())
                .or_default()
                .state = read_ulong(&session, h, CKA_KMSHSM_KEY_STATE);
        }
    }
    drop(session);
    ctx.finalize().unwrap();

    for (id, key) in &keys {
        let wanted = key.expected.unwrap_or(None);
        assert_eq!(
            key.state, wanted,
            "round {round}, key {id}: the token says {:?}, its last event {:?}: {key:?}",
            key.state, key.expected
        );
        assert!(
            key.created || key.state.is_none(),
            "round {round}, key {id} exists without CreateKey"
        );
        // A destroyed key's pairs stay until their token expires.
        assert_eq!(
            key.parameters, key.pairs,
            "round {round}, key {id}: GetParametersForImport events and wrapping pairs"
        );
    }

    let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
        .args(["audit", "verify"])
        .env("KMSHSM_PIN", USER_PIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "round {round}: audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn after_a_kill_no_change_lacks_its_event_and_no_event_lacks_its_change() {
    if child_role().is_some() {
        return;
    }
    kill_rounds(TestEnv::new(), 1);
}

#[test]
fn after_a_kill_on_postgresql_no_change_lacks_its_event_and_no_event_lacks_its_change() {
    if child_role().is_some() {
        return;
    }
    kill_rounds(TestEnv::postgres(), 4);
}

/// Kills children working on the token of `env` (a new one) at random moments and
/// checks after each kill; the rounds divided by `fewer`.
fn kill_rounds(env: TestEnv, fewer: u32) {
    let rounds: u32 = std::env::var("KMSHSM_AUDIT_KILL_ROUNDS")
        .map(|n| n.parse().expect("KMSHSM_AUDIT_KILL_ROUNDS"))
        .unwrap_or(40)
        / fewer;
    let seed = std::env::var("KMSHSM_AUDIT_KILL_SEED")
        .map(|s| s.parse().expect("KMSHSM_AUDIT_KILL_SEED"))
        .unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("KMSHSM_AUDIT_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let work = Work::new(&env);
    {
        let ctx = env.load();
        init_token(&ctx);
        ctx.finalize().unwrap();
    }
    let mut checked_keys = 0;
    for round in 0..rounds {
        let mut child = child_command(CHILD_ENTRY, &format!("round-{round}"))
            .env("KMSHSM_WORK_DIR", &work.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        // Wait for the child to be logged in, then kill it at a random moment.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(n > 0, "round {round}: the child ended before it was ready");
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 1500));
        child.kill().expect("SIGKILL");
        assert_killed(child.wait().unwrap(), &format!("round {round}"));
        check(&env, round);
        checked_keys = open_store(&env).audit_log().unwrap().events.len();
    }
    assert!(checked_keys > rounds as usize, "the children did work");
}

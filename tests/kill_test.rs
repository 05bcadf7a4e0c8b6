//! SIGKILL in the middle of key creation, KMS import, DeleteKeyMaterial and C_SetPIN
//! (DESIGN.md §3: "a kill -9 at any moment loses no committed key and corrupts nothing").
//! Each round a child loops over: C_GenerateKey (AES token key), CreateKey EXTERNAL +
//! GetParametersForImport + ImportKeyMaterial (AES-256, and EC P-256 through the
//! RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD envelope), DeleteKeyMaterial, C_DestroyObject
//! and C_SetPIN (between two user PINs); it reports each change once it returned CKR_OK and
//! is SIGKILLed at a random moment. After every kill: `PRAGMA integrity_check` says ok,
//! the token opens and the user logs in with the PIN of the last committed C_SetPIN (or the
//! one being set when the kill came), every reported change is there, and no key is half
//! imported: both objects of an EC key agree on the state, an Enabled key works and a
//! PendingImport key refuses to work.
//!
//! Rounds aim the kill: each waits for the child to announce one operation (import,
//! material deletion, PIN change, key generation, destruction) and kills within its
//! typical duration; every sixth round kills at a random moment.
//!
//! Rounds: `KMSHSM_KILL_ROUNDS` (default 200; 40 when `CI` is set); `KMSHSM_KILL_SEED`
//! replays a run. Needs `sqlite3` and `openssl`. Run with `cargo nextest run --test kill_test`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};

use common::kms::*;
use common::*;

const CHILD_ENTRY: &str = "child_process_entry_point";
const PINS: [&str; 2] = [USER_PIN, "user-pin-2222"];

fn rounds() -> u32 {
    match std::env::var("KMSHSM_KILL_ROUNDS") {
        Ok(n) => n.parse().expect("KMSHSM_KILL_ROUNDS"),
        Err(_) if std::env::var_os("CI").is_some() => 40,
        Err(_) => 200,
    }
}

fn login(ctx: &cryptoki::context::Pkcs11, pins: &[String]) -> Option<(Session, String)> {
    let slot = slot_of_token(ctx, TOKEN_LABEL);
    let s = ctx.open_rw_session(slot).unwrap();
    for p in pins {
        if s.login(UserType::User, Some(&pin(p))).is_ok() {
            return Some((s, p.clone()));
        }
    }
    None
}

/// Not a test: the child that gets killed.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let round: u32 = role.strip_prefix("round-").unwrap().parse().unwrap();
    let pin_now = std::env::var("KMSHSM_KILL_PIN").unwrap();
    let dir = PathBuf::from(std::env::var("KMSHSM_WORK_DIR").unwrap());
    let work = Work { dir: dir.clone() };
    let ec_material = std::fs::read(dir.join("ec-p256.pk8")).unwrap();
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let (session, mut current) = login(&ctx, &[pin_now]).expect("child login");
    let start = round as usize % 6;
    for n in 0..1_000_000usize {
        let label = format!("r{round}-{n}");
        match (start + n) % 6 {
            0 => {
                let template = [
                    Attribute::Token(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(label.clone().into()),
                ];
                tell_parent(&format!("generating {label}"));
                session
                    .generate_key(&Mechanism::AesKeyGen, &template)
                    .unwrap();
                tell_parent(&format!("present {label}"));
            }
            1 | 2 => {
                let (spec, alg, material) = if n % 2 == 0 {
                    (
                        Spec::EcP256,
                        WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD,
                        ec_material.clone(),
                    )
                } else {
                    (Spec::Aes256, WRAP_RSAES_OAEP_SHA_256, vec![round as u8; 32])
                };
                let key = create_external(&session, spec, &label);
                tell_parent(&format!("pending {label}"));
                tell_parent(&format!("importing {label}"));
                import_with(&session, &work, key, alg, &material, None).unwrap();
                tell_parent(&format!("enabled {label}"));
                if n % 3 == 0 {
                    tell_parent(&format!("deleting {label}"));
                    set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
                    tell_parent(&format!("pending {label}"));
                }
            }
            3 => {
                let h = session
                    .create_object(&data_template(&label, b"x", true))
                    .unwrap();
                tell_parent(&format!("present {label}"));
                tell_parent(&format!("destroying {label}"));
                session.destroy_object(h).unwrap();
                tell_parent(&format!("absent {label}"));
            }
            _ => {
                let next = if current == PINS[0] { PINS[1] } else { PINS[0] };
                tell_parent(&format!("pin-changing {next}"));
                session.set_pin(&pin(&current), &pin(next)).unwrap();
                current = next.to_owned();
                tell_parent(&format!("pin {next}"));
            }
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

fn integrity_check(db: &std::path::Path) {
    let sqlite3 = require_tool("sqlite3", "sqlite3");
    let out = Command::new(sqlite3)
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.trim() == "ok",
        "integrity_check: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a round's child, kills it after a random delay, returns its protocol lines.
fn run_and_kill(round: u32, pin_now: &str, work: &Work, rng: &mut Rng) -> Vec<String> {
    let mut child = child_command(CHILD_ENTRY, &format!("round-{round}"))
        .env("KMSHSM_KILL_PIN", pin_now)
        .env("KMSHSM_WORK_DIR", &work.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(l) = child_line(&line) {
                let _ = tx.send(l.to_owned());
                lines.push(l.to_owned());
            }
        }
        lines
    });
    // Aim each round at one operation: wait for the line announcing it, then kill within
    // its typical duration; every sixth round kills at a random moment instead.
    let (target, window_ms) = match round % 6 {
        0 => ("importing", 400),
        1 => ("deleting", 4),
        2 => ("pin-changing", 30),
        3 => ("generating", 4),
        4 => ("destroying", 4),
        _ => ("", 800),
    };
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if target.is_empty() || line.starts_with(target) => break,
            Ok(_) if started.elapsed() > Duration::from_secs(30) => break,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                panic!("round {round}: the child reported nothing within 60 s");
            }
        }
    }
    std::thread::sleep(Duration::from_micros(rng.next() % (window_ms * 1000)));
    child.kill().expect("SIGKILL");
    assert_killed(child.wait().unwrap(), &format!("round {round}"));
    reader.join().unwrap()
}

/// Whether `key` works: an Enabled key must, a PendingImport key must not.
fn works(session: &Session, key: ObjectHandle, class: ObjectClass) -> bool {
    if class == ObjectClass::SECRET_KEY {
        session.encrypt(&Mechanism::AesEcb, key, &[0; 16]).is_ok()
    } else {
        session.sign(&Mechanism::EcdsaSha256, key, b"data").is_ok()
    }
}

// The rounds are split over four tests, each on its own token, so that each stays well
// inside nextest's 300 s limit (.config/nextest.toml) and two run at once.
#[test]
fn sigkill_rounds_on_a_first_token_lose_and_corrupt_nothing() {
    kill_series(0);
}

#[test]
fn sigkill_rounds_on_a_second_token_lose_and_corrupt_nothing() {
    kill_series(1);
}

#[test]
fn sigkill_rounds_on_a_third_token_lose_and_corrupt_nothing() {
    kill_series(2);
}

#[test]
fn sigkill_rounds_on_a_fourth_token_lose_and_corrupt_nothing() {
    kill_series(3);
}

/// The first quarter's rounds on a PostgreSQL token (tests/postgres.rs): a client killed
/// in the middle of a commit loses nothing acknowledged and leaves nothing half written
/// (the server's own consistency is not checked here; what the token shows is).
#[test]
fn sigkill_rounds_on_a_postgres_token_lose_and_corrupt_nothing() {
    kill_series_in(0, TestEnv::postgres());
}

/// One quarter of the rounds: rounds `part`, `part + 4`, ... (together the four aim at
/// every operation).
fn kill_series(part: u32) {
    require_tool("sqlite3", "sqlite3");
    kill_series_in(part, TestEnv::new());
}

fn kill_series_in(part: u32, env: TestEnv) {
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();
    let work = Work::new(&env);
    std::fs::write(
        work.dir.join("ec-p256.pk8"),
        &work.material(Spec::EcP256).bytes,
    )
    .unwrap();
    let seed = std::env::var("KMSHSM_KILL_SEED")
        .map(|s| s.parse().expect("KMSHSM_KILL_SEED"))
        .unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
        .wrapping_add(u64::from(part));
    println!("kill-test part {part} seed {seed}");
    let mut rng = Rng(seed);
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut pin_now = USER_PIN.to_owned();
    let (mut kills, mut changes, mut half) = (0, 0, BTreeMap::<String, usize>::new());
    let begun = Instant::now();
    for round in (part..rounds()).step_by(4) {
        let lines = run_and_kill(round, &pin_now, &work, &mut rng);
        kills += 1;
        let mut pin_candidates = vec![pin_now.clone()];
        let mut interrupted = None;
        for line in &lines {
            let (event, arg) = line.split_once(' ').unwrap();
            match event {
                "pin-changing" => pin_candidates.push(arg.to_owned()),
                "pin" => {
                    pin_now = arg.to_owned();
                    pin_candidates = vec![pin_now.clone()];
                    changes += 1;
                }
                "generating" | "importing" | "deleting" | "destroying" => {
                    interrupted = Some((event, arg.to_owned()))
                }
                _ => {
                    expected.insert(arg.to_owned(), event.to_owned());
                    interrupted = None;
                    changes += 1;
                }
            }
        }
        let last = lines.last().map(String::as_str).unwrap_or("");
        *half
            .entry(last.split(' ').next().unwrap_or("").to_owned())
            .or_default() += 1;

        if env.pg.is_none() {
            integrity_check(&env.token_database());
        }
        let ctx = load_module();
        initialize(&ctx)
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): C_Initialize: {e}"));
        let (session, used) = login(&ctx, &pin_candidates).unwrap_or_else(|| {
            panic!("round {round} (seed {seed}): no PIN of {pin_candidates:?} logs in")
        });
        pin_now = used;
        // A change cut off by the kill may or may not have committed; either is fine, but
        // the object must then be whole (checked below for every key).
        if let Some((_, label)) = &interrupted {
            expected.insert(label.clone(), "either".into());
        }
        let mut on_token: BTreeMap<String, Vec<ObjectHandle>> = BTreeMap::new();
        for h in session.find_objects(&[]).unwrap() {
            let label = String::from_utf8(
                read_bytes(&session, h, cryptoki_sys::CKA_LABEL).unwrap_or_default(),
            )
            .unwrap_or_default();
            on_token.entry(label).or_default().push(h);
        }
        for (label, want) in &expected {
            let handles = on_token.get(label).cloned().unwrap_or_default();
            let context = format!("round {round} (seed {seed}): {label} expected {want}");
            if want == "absent" {
                assert!(handles.is_empty(), "{context}: still there");
                continue;
            }
            if want == "either" && handles.is_empty() {
                continue;
            }
            // One object, or the two halves of an EC key; never more.
            assert!(
                !handles.is_empty() && handles.len() <= 2,
                "{context}: {} objects",
                handles.len()
            );
            let key_states: Vec<u64> = handles
                .iter()
                .filter_map(|h| read_ulong(&session, *h, CKA_KMSHSM_KEY_STATE))
                .collect();
            if let Some(first) = key_states.first() {
                assert!(
                    key_states.iter().all(|s| s == first),
                    "{context}: halves disagree on the state {key_states:?}"
                );
                match want.as_str() {
                    "enabled" => assert_eq!(*first, STATE_ENABLED, "{context}"),
                    "pending" => assert_eq!(*first, STATE_PENDING_IMPORT, "{context}"),
                    _ => {}
                }
                // No half-imported key: the state and the usability agree.
                let private = handles
                    .iter()
                    .copied()
                    .find(|h| {
                        read_ulong(&session, *h, cryptoki_sys::CKA_CLASS)
                            != Some(cryptoki_sys::CKO_PUBLIC_KEY)
                    })
                    .expect("a key without its private or secret object");
                let class = if read_ulong(&session, private, cryptoki_sys::CKA_CLASS)
                    == Some(cryptoki_sys::CKO_SECRET_KEY)
                {
                    ObjectClass::SECRET_KEY
                } else {
                    ObjectClass::PRIVATE_KEY
                };
                assert_eq!(
                    works(&session, private, class),
                    *first == STATE_ENABLED,
                    "{context}: state {first} but usable = {}",
                    *first != STATE_ENABLED
                );
            }
        }
        drop(session);
        ctx.finalize().unwrap();
    }
    println!(
        "part {part}: {kills} kills, {changes} committed changes checked, {:?}; \
         last event before each kill: {half:?}",
        begun.elapsed()
    );
}

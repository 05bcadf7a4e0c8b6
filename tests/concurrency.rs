//! Concurrency: many threads on one token at once, on separate sessions and on one shared
//! session — RSA and ECDSA signing (each signature verified), finding, creating and
//! destroying token objects, generating keys, and KMS imports (GetParametersForImport,
//! ImportKeyMaterial, DeleteKeyMaterial, re-import of the same material).
//!
//! Deadlock detector: every worker stamps its progress after each operation; a watchdog
//! fails the test (and exits the process, since deadlocked threads cannot be joined) when
//! any worker has made no progress for 20 s. Afterwards every object a worker kept is on
//! the token exactly once and every object it destroyed is gone.
//!
//! Length: `KMSHSM_CONCURRENCY_SECONDS` (default 5; 2 when `CI` is set); the importer, which
//! runs `openssl`, can be left out with `KMSHSM_CONCURRENCY_NO_IMPORT=1` (helgrind).
//! The lock order the module follows is in docs/architecture.md ("Lock order");
//! scripts/helgrind.sh runs this test under valgrind's helgrind. Run with `cargo nextest run --test concurrency`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki_sys::*;

use common::hostile::{attr, attr_bool, attr_ulong, Api, Frame, Mech};
use common::kms::*;
use common::*;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// How long a worker may make no progress before the watchdog calls it a deadlock:
/// `KMSHSM_WATCHDOG_SECONDS` (default 20; scripts/helgrind.sh raises it, valgrind being slow).
fn stall() -> Duration {
    let s = std::env::var("KMSHSM_WATCHDOG_SECONDS")
        .map_or(20, |s| s.parse().expect("KMSHSM_WATCHDOG_SECONDS"));
    Duration::from_secs(s)
}

fn seconds() -> u64 {
    if let Ok(s) = std::env::var("KMSHSM_CONCURRENCY_SECONDS") {
        return s.parse().expect("KMSHSM_CONCURRENCY_SECONDS");
    }
    if std::env::var_os("CI").is_some() {
        2
    } else {
        5
    }
}

/// Per-worker progress stamps (milliseconds since the start) and operation counts.
struct Progress {
    start: Instant,
    names: Vec<&'static str>,
    stamps: Vec<AtomicU64>,
    ops: Vec<AtomicU64>,
    done: AtomicBool,
}

impl Progress {
    fn tick(&self, worker: usize) {
        let now = self.start.elapsed().as_millis() as u64;
        self.stamps[worker].store(now, Ordering::SeqCst);
        self.ops[worker].fetch_add(1, Ordering::SeqCst);
    }
    fn running(&self, until: Instant) -> bool {
        Instant::now() < until
    }
}

/// The watchdog: exits the process if any worker stalls for `stall()`.
fn watchdog(progress: Arc<Progress>) -> std::thread::JoinHandle<()> {
    let stall = stall();
    std::thread::spawn(move || {
        while !progress.done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(250));
            let now = progress.start.elapsed().as_millis() as u64;
            for (i, stamp) in progress.stamps.iter().enumerate() {
                let last = stamp.load(Ordering::SeqCst);
                if now.saturating_sub(last) > stall.as_millis() as u64
                    && !progress.done.load(Ordering::SeqCst)
                {
                    eprintln!(
                        "DEADLOCK DETECTOR: worker {} ({}) made no progress for {} ms \
                         ({} operations before); aborting",
                        i,
                        progress.names[i],
                        now - last,
                        progress.ops[i].load(Ordering::SeqCst)
                    );
                    std::process::exit(101);
                }
            }
        }
    })
}

/// What the workers leave behind, for the checks afterwards.
#[derive(Default)]
struct Ledger {
    kept: Vec<String>,
    destroyed: Vec<String>,
    imports: usize,
    signatures: usize,
    /// Signatures made in the shared session (a refusal there is allowed, but not all);
    /// each must verify.
    shared_signatures: Vec<Vec<u8>>,
    errors: Vec<String>,
}

fn sign_and_verify(
    session: &Session,
    mech: &Mechanism,
    private: ObjectHandle,
    public: ObjectHandle,
    data: &[u8],
) {
    let signature = session.sign(mech, private, data).expect("C_Sign");
    session
        .verify(mech, public, data, &signature)
        .expect("C_Verify of our own signature");
}

fn token_data(session: &Session, label: &str) -> ObjectHandle {
    session
        .create_object(&data_template(label, label.as_bytes(), true))
        .expect("C_CreateObject")
}

/// A call on the shared session through the C ABI (cryptoki sessions cannot be shared).
fn shared_create(api: &Api, session: u64, label: &str) -> Result<u64, CK_RV> {
    let mut frame = Frame::default();
    let t = frame.template(&[
        attr_ulong(CKA_CLASS, CKO_DATA),
        attr_bool(CKA_TOKEN, true),
        attr_bool(CKA_PRIVATE, false),
        attr(CKA_LABEL, label.as_bytes()),
    ]);
    let out = frame.ulong(0);
    // SAFETY: template and output handle live in `frame`.
    let rv = unsafe { api.call("C_CreateObject", &[session, t, 4, out]) };
    // SAFETY: `out` is owned by `frame`.
    (rv == CKR_OK)
        .then(|| unsafe { *(out as *const CK_ULONG) })
        .ok_or(rv)
}

fn shared_sign(api: &Api, session: u64, key: u64) -> Result<Vec<u8>, CK_RV> {
    let mut frame = Frame::default();
    let m = frame.mech(&Mech::none(CKM_ECDSA_SHA256));
    // SAFETY: mechanism in `frame`.
    let rv = unsafe { api.call("C_SignInit", &[session, m, key]) };
    if rv != CKR_OK {
        return Err(rv);
    }
    let data = frame.buf(SHARED_SIGNED.to_vec());
    let sig = frame.zeroed(256);
    let len = frame.ulong(256);
    let data_len = SHARED_SIGNED.len() as u64;
    // SAFETY: buffers in `frame`, 256 bytes of room for a 64-byte signature.
    let rv = unsafe { api.call("C_Sign", &[session, data, data_len, sig, len]) };
    if rv != CKR_OK {
        return Err(rv);
    }
    // SAFETY: `len` and `sig` are owned by `frame`; the module wrote at most 256 bytes.
    let written = unsafe { *(len as *const CK_ULONG) } as usize;
    assert!(
        written <= 256,
        "C_Sign reports {written} bytes in a 256-byte buffer"
    );
    // SAFETY: as above, `written` bytes of `sig` are inside the buffer.
    Ok(unsafe { std::slice::from_raw_parts(sig as *const u8, written) }.to_vec())
}

/// What the shared session signs.
const SHARED_SIGNED: &[u8] = b"shared";

fn labels_on_token(session: &Session, prefix: &str) -> Vec<String> {
    session
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap()
        .into_iter()
        .map(|h| String::from_utf8(attribute_bytes(session, h, AttributeType::Label)).unwrap())
        .filter(|l| l.starts_with(prefix))
        .collect()
}

#[test]
fn many_threads_on_shared_and_separate_sessions_neither_deadlock_nor_lose_changes() {
    let env = TestEnv::new();
    let (ctx, slot, setup) = ready_token(&env);
    let work = Arc::new(Work::new(&env));
    let (rsa_pub, rsa_priv) = setup
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    let (ec_pub, ec_priv) = setup
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::Token(true), Attribute::EcParams(P256.to_vec())],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    let api = Arc::new(Api::load());
    let shared = ctx.open_rw_session(slot).unwrap();
    let shared_handle = shared.handle();

    let names: Vec<&'static str> = vec![
        "rsa-signer",
        "ec-signer",
        "finder",
        "creator-0",
        "creator-1",
        "keygen",
        "importer",
        "shared-0",
        "shared-1",
        "shared-2",
    ];
    let progress = Arc::new(Progress {
        start: Instant::now(),
        stamps: names.iter().map(|_| AtomicU64::new(0)).collect(),
        ops: names.iter().map(|_| AtomicU64::new(0)).collect(),
        names: names.clone(),
        done: AtomicBool::new(false),
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let dog = watchdog(progress.clone());
    let until = Instant::now() + Duration::from_secs(seconds());

    let mut workers = Vec::new();
    for (i, name) in names.iter().copied().enumerate() {
        let (ctx, progress, ledger, api, work) = (
            ctx.clone(),
            progress.clone(),
            ledger.clone(),
            api.clone(),
            work.clone(),
        );
        workers.push(std::thread::spawn(move || {
            worker(
                name,
                i,
                &ctx,
                slot,
                &api,
                shared_handle,
                &work,
                &progress,
                &ledger,
                until,
                [rsa_pub, rsa_priv, ec_pub, ec_priv],
            )
        }));
    }
    for w in workers {
        w.join().expect("a worker panicked");
    }
    progress.done.store(true, Ordering::SeqCst);
    dog.join().unwrap();

    let ledger = ledger.lock().unwrap();
    let ops: Vec<String> = names
        .iter()
        .zip(&progress.ops)
        .map(|(n, c)| format!("{n}={}", c.load(Ordering::SeqCst)))
        .collect();
    println!(
        "operations: {}; kept {}, destroyed {}, imports {}, signatures {} (shared session {})",
        ops.join(" "),
        ledger.kept.len(),
        ledger.destroyed.len(),
        ledger.imports,
        ledger.signatures,
        ledger.shared_signatures.len()
    );
    assert!(
        ledger.errors.is_empty(),
        "unexpected results:\n{}",
        ledger.errors.join("\n")
    );
    let imports_expected = std::env::var_os("KMSHSM_CONCURRENCY_NO_IMPORT").is_none();
    assert!(ledger.signatures > 0, "no signature was made");
    assert!(
        !ledger.shared_signatures.is_empty(),
        "no signature was made in the shared session (every attempt was refused)"
    );
    // Every signature the shared session returned is a valid one of its data: one
    // operation's output was not mixed with another's in the colliding calls.
    let verifier = ctx.open_ro_session(slot).unwrap();
    for (i, signature) in ledger.shared_signatures.iter().enumerate() {
        verifier
            .verify(&Mechanism::EcdsaSha256, ec_pub, SHARED_SIGNED, signature)
            .unwrap_or_else(|e| {
                panic!(
                    "shared-session signature {i} of {} does not verify: {e}",
                    ledger.shared_signatures.len()
                )
            });
    }
    drop(verifier);
    assert!(
        ledger.imports > 0 || !imports_expected,
        "no import was made"
    );
    // Every kept object is there exactly once, every destroyed one is gone, and a fresh
    // process-level view (a new session) agrees.
    let check = ctx.open_ro_session(slot).unwrap();
    let present = labels_on_token(&check, "c-");
    for label in &ledger.kept {
        let n = present.iter().filter(|l| *l == label).count();
        assert_eq!(n, 1, "kept object {label} is on the token {n} times");
    }
    for label in &ledger.destroyed {
        assert!(
            !present.contains(label),
            "destroyed object {label} is still on the token"
        );
    }
    assert_eq!(
        present.len(),
        ledger.kept.len(),
        "objects nobody kept are on the token"
    );
}

#[allow(clippy::too_many_arguments)]
fn worker(
    name: &str,
    me: usize,
    ctx: &Pkcs11,
    slot: Slot,
    api: &Api,
    shared: u64,
    work: &Work,
    progress: &Progress,
    ledger: &Mutex<Ledger>,
    until: Instant,
    keys: [ObjectHandle; 4],
) {
    let [rsa_pub, rsa_priv, ec_pub, ec_priv] = keys;
    let session = ctx.open_rw_session(slot).unwrap();
    let mut n = 0u64;
    progress.tick(me);
    while progress.running(until) {
        n += 1;
        match name {
            "rsa-signer" => {
                sign_and_verify(
                    &session,
                    &Mechanism::Sha256RsaPkcs,
                    rsa_priv,
                    rsa_pub,
                    &n.to_le_bytes(),
                );
                ledger.lock().unwrap().signatures += 1;
            }
            "ec-signer" => {
                sign_and_verify(
                    &session,
                    &Mechanism::EcdsaSha256,
                    ec_priv,
                    ec_pub,
                    &n.to_le_bytes(),
                );
                ledger.lock().unwrap().signatures += 1;
            }
            "finder" => {
                let all = session.find_objects(&[]).unwrap();
                assert!(all.len() >= 4, "the four signing keys vanished from a find");
                let _ = session
                    .find_objects(&[Attribute::Class(ObjectClass::DATA)])
                    .unwrap();
            }
            "creator-0" | "creator-1" => {
                let label = format!("c-{name}-{n}");
                let h = token_data(&session, &label);
                if n % 2 == 0 {
                    session.destroy_object(h).expect("C_DestroyObject");
                    ledger.lock().unwrap().destroyed.push(label);
                } else {
                    ledger.lock().unwrap().kept.push(label);
                }
            }
            "keygen" => {
                let key = session
                    .generate_key(
                        &Mechanism::AesKeyGen,
                        &[
                            Attribute::Token(true),
                            Attribute::ValueLen(32.into()),
                            Attribute::Label(b"k-gen".to_vec()),
                        ],
                    )
                    .expect("C_GenerateKey");
                session
                    .destroy_object(key)
                    .expect("C_DestroyObject of a generated key");
            }
            "importer" if std::env::var_os("KMSHSM_CONCURRENCY_NO_IMPORT").is_some() => {
                std::thread::sleep(Duration::from_millis(10));
            }
            "importer" => import_round(&session, work, n, ledger),
            _ => {
                // The shared session: creates, attribute reads and signing collide here;
                // a second operation in the same session may be refused as active.
                let label = format!("c-{name}-{n}");
                match shared_create(api, shared, &label) {
                    Ok(_) => ledger.lock().unwrap().kept.push(label),
                    Err(rv) => ledger
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("{name}: create {rv:#x}")),
                }
                match shared_sign(api, shared, ec_priv.handle()) {
                    Ok(signature) => ledger.lock().unwrap().shared_signatures.push(signature),
                    Err(rv)
                        if [CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED].contains(&rv) => {}
                    Err(rv) => {
                        ledger
                            .lock()
                            .unwrap()
                            .errors
                            .push(format!("{name}: sign {rv:#x}"));
                    }
                }
            }
        }
        progress.tick(me);
    }
}

/// CreateKey(EXTERNAL) + GetParametersForImport + ImportKeyMaterial, then
/// DeleteKeyMaterial and the re-import of the same material every other round.
fn import_round(session: &Session, work: &Work, n: u64, ledger: &Mutex<Ledger>) {
    let key = create_external(session, Spec::Aes256, &format!("x-{n}"));
    let material = vec![(n % 251) as u8; 32];
    import_with(session, work, key, WRAP_RSAES_OAEP_SHA_256, &material, None).expect("import");
    assert_eq!(state(session, key), STATE_ENABLED);
    if n % 2 == 0 {
        set_state(session, key, STATE_PENDING_IMPORT).expect("DeleteKeyMaterial");
        assert_eq!(state(session, key), STATE_PENDING_IMPORT);
        import_with(session, work, key, WRAP_RSAES_OAEP_SHA_256, &material, None)
            .expect("re-import");
    }
    ledger.lock().unwrap().imports += 1;
}

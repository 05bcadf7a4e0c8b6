//! Side-by-side benchmark of libkmshsm.so against SoftHSMv2.
//!
//! Both modules are loaded into this one process and driven by the same `cryptoki` client
//! code; within every round the two are measured one after the other, in alternating
//! order, and the reported figure is the median over the rounds. A third column calls the
//! raw primitive (aws-lc-rs, no PKCS#11) so the module's own overhead is visible.
//!
//! Usage: `kmshsm-bench [--quick] [--rounds N] [--budget-ms MS] [--counts 1000,10000,100000]
//!         [--open-runs N] [--phases crypto,find,open] [--kmshsm PATH] [--softhsm PATH] [--out FILE]`
//! Internal: `kmshsm-bench --child-open MODULE_PATH` (the fresh-process token-open probe).
//!
//! Token directories with many keys are prepared once and cached under
//! `bench/target/token-cache/<module>-<count>/`; every measurement works on a copy.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

const SO_PIN: &str = "bench-so-pin-0000";
const USER_PIN: &str = "bench-user-pin-1111";
const TOKEN_LABEL: &str = "bench";
/// DER of the P-256 curve OID, the CKA_EC_PARAMS of every EC key.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const MSG: [u8; 64] = [0x5a; 64];

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------------------------------
// configuration and paths

#[derive(Clone)]
struct Cfg {
    rounds: usize,
    budget: Duration,
    counts: Vec<usize>,
    open_runs: usize,
    kms_so: PathBuf,
    soft_so: PathBuf,
    target: PathBuf,
    out: PathBuf,
    phases: Vec<String>,
    only: Option<String>,
}

impl Cfg {
    fn from_args() -> Res<Cfg> {
        let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = bench_dir.parent().unwrap().to_path_buf();
        let target = bench_dir.join("target");
        let mut cfg = Cfg {
            rounds: 5,
            budget: Duration::from_millis(400),
            counts: vec![1_000, 10_000, 100_000],
            open_runs: 5,
            kms_so: root.join("target/release/libkmshsm.so"),
            soft_so: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            out: target.join("results.md"),
            only: None,
            phases: vec!["crypto".into(), "find".into(), "open".into()],
            target,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = || args.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {
                    cfg.rounds = 3;
                    cfg.budget = Duration::from_millis(150);
                    cfg.counts = vec![1_000, 10_000];
                    cfg.open_runs = 3;
                }
                "--rounds" => cfg.rounds = val()?.parse().map_err(err("--rounds"))?,
                "--budget-ms" => {
                    cfg.budget = Duration::from_millis(val()?.parse().map_err(err("--budget-ms"))?)
                }
                "--counts" => {
                    cfg.counts = val()?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>().map_err(err("--counts")))
                        .collect::<Res<_>>()?
                }
                "--open-runs" => cfg.open_runs = val()?.parse().map_err(err("--open-runs"))?,
                "--kmshsm" => cfg.kms_so = PathBuf::from(val()?),
                "--softhsm" => cfg.soft_so = PathBuf::from(val()?),
                "--out" => cfg.out = PathBuf::from(val()?),
                "--only" => cfg.only = Some(val()?),
                "--phases" => cfg.phases = val()?.split(',').map(str::to_string).collect(),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(cfg)
    }
    fn cache(&self) -> PathBuf {
        self.target.join("token-cache")
    }
    fn work(&self) -> PathBuf {
        self.target.join("work")
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Kms,
    Soft,
}

impl Which {
    fn tag(self) -> &'static str {
        match self {
            Which::Kms => "kmshsm",
            Which::Soft => "softhsm",
        }
    }
}

/// Writes both modules' configuration files into `dir` and points the environment at them.
/// kmshsm keeps its DEFAULT KDF settings (Argon2id, what users get).
fn configure(dir: &Path, kms_tokens: &Path, soft_tokens: &Path) -> Res<()> {
    std::fs::create_dir_all(dir).map_err(err("mkdir"))?;
    std::fs::create_dir_all(kms_tokens).map_err(err("mkdir"))?;
    std::fs::create_dir_all(soft_tokens).map_err(err("mkdir"))?;
    let kconf = dir.join("kmshsm.toml");
    let sconf = dir.join("softhsm2.conf");
    std::fs::write(
        &kconf,
        format!(
            "token_dir = {:?}\nlog_level = \"error\"\nlog_file = {:?}\n",
            kms_tokens.to_str().unwrap(),
            dir.join("kmshsm.log").to_str().unwrap()
        ),
    )
    .map_err(err("write kmshsm.toml"))?;
    std::fs::write(
        &sconf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            soft_tokens.display()
        ),
    )
    .map_err(err("write softhsm2.conf"))?;
    std::env::set_var("KMSHSM_CONF", &kconf);
    std::env::set_var("SOFTHSM2_CONF", &sconf);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// PKCS#11 helpers (the same code for both modules)

fn load(path: &Path) -> Res<Pkcs11> {
    let ctx = Pkcs11::new(path).map_err(err("load module"))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(err("C_Initialize"))?;
    Ok(ctx)
}

fn find_token(ctx: &Pkcs11) -> Res<Option<Slot>> {
    for slot in ctx
        .get_slots_with_initialized_token()
        .map_err(err("C_GetSlotList"))?
    {
        let info = ctx.get_token_info(slot).map_err(err("C_GetTokenInfo"))?;
        if info.label().trim_end() == TOKEN_LABEL {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Initialises a token labelled [`TOKEN_LABEL`] on the free slot and sets the user PIN.
fn init_token(ctx: &Pkcs11) -> Res<Slot> {
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(err("C_GetSlotList"))? {
        if !ctx
            .get_token_info(slot)
            .map_err(err("C_GetTokenInfo"))?
            .token_initialized()
        {
            free = Some(slot);
            break;
        }
    }
    let free = free.ok_or("no free slot")?;
    ctx.init_token(free, &AuthPin::new(SO_PIN.into()), TOKEN_LABEL)
        .map_err(err("C_InitToken"))?;
    let slot = find_token(ctx)?.ok_or("token vanished after C_InitToken")?;
    let s = ctx.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .map_err(err("C_Login(SO)"))?;
    s.init_pin(&AuthPin::new(USER_PIN.into()))
        .map_err(err("C_InitPIN"))?;
    s.logout().map_err(err("C_Logout"))?;
    Ok(slot)
}

fn user_session(ctx: &Pkcs11, slot: Slot) -> Res<Session> {
    let s = ctx.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    match s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Ok(()) => {}
        // A second session of an application that is already logged in.
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(format!("C_Login: {e}")),
    }
    Ok(s)
}

fn rsa_pair(s: &Session, label: &str, unwrap: bool) -> Res<(ObjectHandle, ObjectHandle)> {
    let mut pubt = vec![
        Attribute::Token(true),
        Attribute::ModulusBits(2048.into()),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let mut privt = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if unwrap {
        pubt.extend([Attribute::Encrypt(true), Attribute::Wrap(true)]);
        privt.extend([Attribute::Decrypt(true), Attribute::Unwrap(true)]);
    } else {
        pubt.push(Attribute::Verify(true));
        privt.push(Attribute::Sign(true));
    }
    s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &pubt, &privt)
        .map_err(err("C_GenerateKeyPair(RSA)"))
}

fn ec_pair(s: &Session, label: &str) -> Res<(ObjectHandle, ObjectHandle)> {
    let pubt = [
        Attribute::Token(true),
        Attribute::EcParams(P256_OID.to_vec()),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let privt = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    s.generate_key_pair(&Mechanism::EccKeyPairGen, &pubt, &privt)
        .map_err(err("C_GenerateKeyPair(EC)"))
}

fn aes_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

fn aes_key(s: &Session, label: &str) -> Res<ObjectHandle> {
    let mut t = aes_template(label);
    t.push(Attribute::ValueLen(32.into()));
    s.generate_key(&Mechanism::AesKeyGen, &t)
        .map_err(err("C_GenerateKey(AES)"))
}

fn pss() -> Mechanism<'static> {
    Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    })
}

fn oaep(sha256: bool) -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(if sha256 {
        PkcsOaepParams::new(
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
            PkcsOaepSource::empty(),
        )
    } else {
        PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )
    })
}

/// The PKCS#11 return code of a cryptoki error, or its text.
fn short(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, f) => format!("{f}: {rv:?}"),
        other => other.to_string(),
    }
}

fn id_bytes(i: usize) -> Vec<u8> {
    (i as u32).to_be_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------
// timing

/// Runs `op` for about `budget` (and at least `min` times); returns operations per second.
fn rate(budget: Duration, min: usize, mut op: impl FnMut() -> Res<()>) -> Res<f64> {
    let start = Instant::now();
    let mut n = 0usize;
    while n < min || start.elapsed() < budget {
        op()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Like [`rate`], but `op` returns the duration of its measured part (untimed clean-up, e.g.
/// destroying the object just created, stays out of the figure).
fn rate_timed(budget: Duration, min: usize, mut op: impl FnMut() -> Res<Duration>) -> Res<f64> {
    let start = Instant::now();
    let mut n = 0usize;
    let mut timed = Duration::ZERO;
    while n < min || start.elapsed() < budget {
        timed += op()?;
        n += 1;
    }
    Ok(n as f64 / timed.as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Clone, Debug)]
enum Cell {
    Val(f64, Vec<f64>),
    Na(String),
}

impl Cell {
    fn val(&self) -> Option<f64> {
        match self {
            Cell::Val(v, _) => Some(*v),
            Cell::Na(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Row {
    op: String,
    kms: Cell,
    soft: Cell,
    raw: Cell,
}

type Runner<'a> = Box<dyn FnMut(Duration) -> Res<f64> + 'a>;

fn boxed<'a>(f: impl FnMut(Duration) -> Res<f64> + 'a) -> Runner<'a> {
    Box::new(f)
}

/// Measures one line: a warm-up, then `rounds` rounds; in each round kmshsm and SoftHSMv2
/// are measured back to back (order alternating between rounds), then the raw primitive.
fn line<'a>(
    cfg: &Cfg,
    op: &str,
    budget_factor: u32,
    mut kms: Option<Runner<'a>>,
    mut soft: Option<Runner<'a>>,
    mut raw: Option<Runner<'a>>,
) -> Row {
    let budget = cfg.budget * budget_factor;
    if cfg.only.as_ref().is_some_and(|o| !op.contains(o.as_str())) {
        kms = None;
        soft = None;
        raw = None;
    }
    eprint!("  {op:<62}");
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut errors: [Option<String>; 3] = Default::default();
    for round in 0..=cfg.rounds {
        let warm = round == 0;
        let b = if warm { budget / 4 } else { budget };
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
        for col in order {
            let r = match col {
                0 => kms.as_mut(),
                1 => soft.as_mut(),
                _ => raw.as_mut(),
            };
            let Some(r) = r else { continue };
            if errors[col].is_some() {
                continue;
            }
            match r(b) {
                Ok(v) if !warm => samples[col].push(v),
                Ok(_) => {}
                Err(e) => errors[col] = Some(e),
            }
        }
    }
    let cell = |col: usize, present: bool| -> Cell {
        if let Some(e) = &errors[col] {
            Cell::Na(e.clone())
        } else if !present || samples[col].is_empty() {
            Cell::Na(String::new())
        } else {
            Cell::Val(median(&samples[col]), samples[col].clone())
        }
    };
    let row = Row {
        op: op.to_string(),
        kms: cell(0, kms.is_some()),
        soft: cell(1, soft.is_some()),
        raw: cell(2, raw.is_some()),
    };
    eprintln!(
        "{:>12} {:>12} {:>12}",
        fmt_cell(&row.kms),
        fmt_cell(&row.soft),
        fmt_cell(&row.raw)
    );
    row
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_cell(c: &Cell) -> String {
    match c {
        Cell::Val(v, _) => fmt_rate(*v),
        Cell::Na(e) if e.is_empty() => "—".into(),
        Cell::Na(_) => "error".into(),
    }
}

// ---------------------------------------------------------------------------------------
// phase 1: cryptographic operations on a small token

struct Loaded {
    which: Which,
    ctx: Pkcs11,
    slot: Slot,
    s: Session,
}

fn start(which: Which, path: &Path, fresh: bool) -> Res<Loaded> {
    let ctx = load(path).map_err(|e| format!("{}: {e}", which.tag()))?;
    let slot = if fresh {
        init_token(&ctx)?
    } else {
        find_token(&ctx)?.ok_or("token not found")?
    };
    let s = user_session(&ctx, slot)?;
    Ok(Loaded {
        which,
        ctx,
        slot,
        s,
    })
}

fn stop(m: Loaded) {
    let Loaded { ctx, s, .. } = m;
    drop(s);
    let _ = ctx.finalize();
}

/// Per-module state of the crypto phase.
struct CryptoKeys {
    sig_priv: ObjectHandle,
    sig_pub: ObjectHandle,
    ec_priv: ObjectHandle,
    ec_pub: ObjectHandle,
    aes: ObjectHandle,
    wrap_priv: ObjectHandle,
    wrapped_sha1: Vec<u8>,
    wrapped_sha256: Res<Vec<u8>>,
    sig_pkcs: Vec<u8>,
    sig_pss: Vec<u8>,
    sig_ec: Option<Vec<u8>>,
    sig_ec_digest: Vec<u8>,
}

fn crypto_keys(m: &Loaded) -> Res<CryptoKeys> {
    let s = &m.s;
    let (sig_pub, sig_priv) = rsa_pair(s, "sig", false)?;
    let (ec_pub, ec_priv) = ec_pair(s, "ec")?;
    let aes = aes_key(s, "aes")?;
    let (wrap_pub, wrap_priv) = rsa_pair(s, "wrap", true)?;
    let material = [0x42u8; 32];
    let wrapped_sha1 = s
        .encrypt(&oaep(false), wrap_pub, &material)
        .map_err(err("C_Encrypt(OAEP-SHA1)"))?;
    let wrapped_sha256 = s
        .encrypt(&oaep(true), wrap_pub, &material)
        .map_err(|e| format!("OAEP with SHA-256 refused: {}", short(&e)));
    let sig_pkcs = s
        .sign(&Mechanism::Sha256RsaPkcs, sig_priv, &MSG)
        .map_err(err("C_Sign"))?;
    let sig_pss = s.sign(&pss(), sig_priv, &MSG).map_err(err("C_Sign(PSS)"))?;
    // None where the module lacks CKM_ECDSA_SHA256 (SoftHSMv2 2.6.1).
    let sig_ec = s.sign(&Mechanism::EcdsaSha256, ec_priv, &MSG).ok();
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &MSG);
    let sig_ec_digest = s
        .sign(&Mechanism::Ecdsa, ec_priv, d.as_ref())
        .map_err(err("C_Sign(ECDSA)"))?;
    Ok(CryptoKeys {
        sig_priv,
        sig_pub,
        ec_priv,
        ec_pub,
        aes,
        wrap_priv,
        wrapped_sha1,
        wrapped_sha256,
        sig_pkcs,
        sig_pss,
        sig_ec,
        sig_ec_digest,
    })
}

fn sign_mech(kind: usize, keys: &CryptoKeys) -> (Mechanism<'static>, ObjectHandle) {
    match kind {
        0 => (Mechanism::Sha256RsaPkcs, keys.sig_priv),
        1 => (pss(), keys.sig_priv),
        2 => (Mechanism::EcdsaSha256, keys.ec_priv),
        _ => (Mechanism::Ecdsa, keys.ec_priv),
    }
}

fn verify_mech(kind: usize, keys: &CryptoKeys) -> (Mechanism<'static>, ObjectHandle) {
    match kind {
        0 => (Mechanism::Sha256RsaPkcs, keys.sig_pub),
        1 => (pss(), keys.sig_pub),
        2 => (Mechanism::EcdsaSha256, keys.ec_pub),
        _ => (Mechanism::Ecdsa, keys.ec_pub),
    }
}

fn unwrap_template() -> Vec<Attribute> {
    aes_template("unwrapped")
}

fn destroy(s: &Session, h: ObjectHandle) -> Res<()> {
    s.destroy_object(h).map_err(err("C_DestroyObject"))
}

struct Raw {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    rsa_pub: ParsedPublicKey,
    rsa_pss_pub: ParsedPublicKey,
    ec_pub: ParsedPublicKey,
    sig_pkcs: Vec<u8>,
    sig_pss: Vec<u8>,
    sig_ec: Vec<u8>,
    oaep: OaepPrivateDecryptingKey,
    ct_sha1: Vec<u8>,
    ct_sha256: Vec<u8>,
    gcm: LessSafeKey,
    rng: SystemRandom,
}

fn raw_setup() -> Res<Raw> {
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(err("rsa gen"))?;
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(err("ec gen"))?;
    let mut sig_pkcs = vec![0; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, &MSG, &mut sig_pkcs)
        .map_err(err("sign"))?;
    let mut sig_pss = vec![0; rsa.public_modulus_len()];
    rsa.sign(&RSA_PSS_SHA256, &rng, &MSG, &mut sig_pss)
        .map_err(err("sign"))?;
    let sig_ec = ec.sign(&rng, &MSG).map_err(err("sign"))?.as_ref().to_vec();
    let rsa_pub = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa.public_key().as_ref())
        .map_err(err("parse"))?;
    let rsa_pss_pub = ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, rsa.public_key().as_ref())
        .map_err(err("parse"))?;
    let ec_pub = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ec.public_key().as_ref())
        .map_err(err("parse"))?;
    let dk = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(err("rsa gen"))?;
    let pk = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(dk.public_key()).map_err(err("oaep"))?;
    let mut ct_sha1 = vec![0; pk.ciphertext_size()];
    pk.encrypt(&OAEP_SHA1_MGF1SHA1, &[0x42; 32], &mut ct_sha1, None)
        .map_err(err("oaep enc"))?;
    let mut ct_sha256 = vec![0; pk.ciphertext_size()];
    pk.encrypt(&OAEP_SHA256_MGF1SHA256, &[0x42; 32], &mut ct_sha256, None)
        .map_err(err("oaep enc"))?;
    let oaep = OaepPrivateDecryptingKey::new(dk).map_err(err("oaep"))?;
    let gcm = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).map_err(err("gcm"))?);
    Ok(Raw {
        rsa,
        ec,
        rsa_pub,
        rsa_pss_pub,
        ec_pub,
        sig_pkcs,
        sig_pss,
        sig_ec,
        oaep,
        ct_sha1,
        ct_sha256,
        gcm,
        rng,
    })
}

fn gcm_encrypt(s: &Session, key: ObjectHandle, data: &[u8], counter: &mut u64) -> Res<()> {
    *counter += 1;
    let mut iv = [0u8; 12];
    iv[4..].copy_from_slice(&counter.to_be_bytes());
    let params = GcmParams::new(&mut iv, &[], 128.into()).map_err(err("GcmParams"))?;
    let out = s
        .encrypt(&Mechanism::AesGcm(params), key, data)
        .map_err(err("C_Encrypt"))?;
    if out.len() != data.len() + 16 {
        return Err("wrong GCM output length".into());
    }
    Ok(())
}

/// Two threads, each with its own session, signing for `budget`; total signatures per second.
fn two_thread_sign(m: &Loaded, key: ObjectHandle, budget: Duration) -> Res<f64> {
    let workers = [user_session(&m.ctx, m.slot)?, user_session(&m.ctx, m.slot)?].map(|s| {
        move || -> Res<()> {
            s.sign(&Mechanism::Sha256RsaPkcs, key, &MSG)
                .map_err(err("C_Sign"))?;
            Ok(())
        }
    });
    threads_rate(workers, budget)
}

/// The raw primitive's two-thread line: aws-lc-rs RSA-2048 PKCS#1 v1.5 signing.
fn raw_two_thread_sign(raw: &Raw, budget: Duration) -> Res<f64> {
    let workers = [0, 1].map(|_| {
        let mut sig = vec![0; raw.rsa.public_modulus_len()];
        move || -> Res<()> {
            raw.rsa
                .sign(&RSA_PKCS1_SHA256, &raw.rng, &MSG, &mut sig)
                .map_err(err("sign"))
        }
    });
    threads_rate(workers, budget)
}

/// Runs each worker in its own thread, all released together, each repeating its operation
/// for `budget`; returns the total operations per second over the wall-clock time.
fn threads_rate<W>(workers: impl IntoIterator<Item = W>, budget: Duration) -> Res<f64>
where
    W: FnMut() -> Res<()> + Send,
{
    let workers: Vec<W> = workers.into_iter().collect();
    let barrier = Barrier::new(workers.len() + 1);
    let (total, elapsed) = std::thread::scope(|sc| -> Res<(usize, f64)> {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut work| {
                let barrier = &barrier;
                sc.spawn(move || -> Res<usize> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0;
                    while start.elapsed() < budget {
                        work()?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| "thread panicked".to_string())??;
        }
        Ok((total, start.elapsed().as_secs_f64()))
    })?;
    Ok(total as f64 / elapsed)
}

fn crypto_phase(cfg: &Cfg, rows: &mut Vec<Row>) -> Res<()> {
    eprintln!("== cryptographic operations (fresh tokens)");
    let dir = cfg.work().join("crypto");
    let _ = std::fs::remove_dir_all(&dir);
    configure(
        &dir,
        &dir.join("kmshsm-tokens"),
        &dir.join("softhsm-tokens"),
    )?;
    let k = start(Which::Kms, &cfg.kms_so, true)?;
    let s = start(Which::Soft, &cfg.soft_so, true)?;
    let kk = crypto_keys(&k).map_err(|e| format!("kmshsm: {e}"))?;
    let sk = crypto_keys(&s).map_err(|e| format!("softhsm: {e}"))?;
    let raw = raw_setup()?;
    let mods = [(&k, &kk), (&s, &sk)];

    // C_UnwrapKey into a token object (destroyed again, untimed, after every call).
    for sha256 in [false, true] {
        let name = if sha256 {
            "C_UnwrapKey AES-256 ← RSA-2048 OAEP SHA-256 (token obj)"
        } else {
            "C_UnwrapKey AES-256 ← RSA-2048 OAEP SHA-1 (token obj)"
        };
        let mk = |i: usize| {
            let (m, keys) = mods[i];
            boxed(move |b| {
                let wrapped = if sha256 {
                    keys.wrapped_sha256.as_ref().map_err(|e| e.clone())?
                } else {
                    &keys.wrapped_sha1
                };
                let mech = oaep(sha256);
                let t = unwrap_template();
                rate_timed(b, 3, || {
                    let st = Instant::now();
                    let h =
                        m.s.unwrap_key(&mech, keys.wrap_priv, wrapped, &t)
                            .map_err(err("C_UnwrapKey"))?;
                    let d = st.elapsed();
                    destroy(&m.s, h)?;
                    Ok(d)
                })
            })
        };
        let raw_r: Runner = Box::new(|b| {
            let mut out = [0u8; 256];
            rate(b, 3, || {
                let (alg, ct) = if sha256 {
                    (&OAEP_SHA256_MGF1SHA256, &raw.ct_sha256)
                } else {
                    (&OAEP_SHA1_MGF1SHA1, &raw.ct_sha1)
                };
                let p = raw
                    .oaep
                    .decrypt(alg, ct, &mut out, None)
                    .map_err(err("oaep"))?;
                if p.len() != 32 {
                    return Err("bad plaintext".into());
                }
                Ok(())
            })
        });
        rows.push(line(cfg, name, 1, Some(mk(0)), Some(mk(1)), Some(raw_r)));
    }

    // C_Sign, 64-byte messages. SoftHSMv2 2.6.1 has no CKM_ECDSA_SHA256 (only CKM_ECDSA), so
    // a second ECDSA line has the client hash the message (SHA-256, aws-lc-rs) and both
    // modules sign the digest with CKM_ECDSA.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &MSG)
        .as_ref()
        .to_vec();
    let digest = &digest;
    for kind in 0..4usize {
        let name = [
            "C_Sign RSA-2048 CKM_SHA256_RSA_PKCS, 64 B",
            "C_Sign RSA-2048 CKM_SHA256_RSA_PKCS_PSS, 64 B",
            "C_Sign P-256 CKM_ECDSA_SHA256, 64 B",
            "C_Sign P-256 CKM_ECDSA of SHA-256(64 B) hashed by the client",
        ][kind];
        let mk = |i: usize| {
            let (m, keys) = mods[i];
            boxed(move |b| {
                let (mech, key) = sign_mech(kind, keys);
                if kind == 2 && keys.sig_ec.is_none() {
                    return Err("CKM_ECDSA_SHA256 not supported (CKR_MECHANISM_INVALID)".into());
                }
                rate(b, 3, || {
                    if kind == 3 {
                        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &MSG);
                        m.s.sign(&mech, key, d.as_ref()).map_err(err("C_Sign"))?;
                    } else {
                        m.s.sign(&mech, key, &MSG).map_err(err("C_Sign"))?;
                    }
                    Ok(())
                })
            })
        };
        let raw_ref = &raw;
        let raw_r: Runner = Box::new(move |b| {
            let mut sig = vec![0; raw_ref.rsa.public_modulus_len()];
            rate(b, 3, || {
                match kind {
                    0 => raw_ref
                        .rsa
                        .sign(&RSA_PKCS1_SHA256, &raw_ref.rng, &MSG, &mut sig)
                        .map_err(err("sign"))?,
                    1 => raw_ref
                        .rsa
                        .sign(&RSA_PSS_SHA256, &raw_ref.rng, &MSG, &mut sig)
                        .map_err(err("sign"))?,
                    _ => {
                        raw_ref.ec.sign(&raw_ref.rng, &MSG).map_err(err("sign"))?;
                    }
                }
                Ok(())
            })
        });
        rows.push(line(cfg, name, 1, Some(mk(0)), Some(mk(1)), Some(raw_r)));
    }

    // C_Verify of the same.
    for kind in 0..4usize {
        let name = [
            "C_Verify RSA-2048 CKM_SHA256_RSA_PKCS, 64 B",
            "C_Verify RSA-2048 CKM_SHA256_RSA_PKCS_PSS, 64 B",
            "C_Verify P-256 CKM_ECDSA_SHA256, 64 B",
            "C_Verify P-256 CKM_ECDSA of SHA-256(64 B) hashed by the client",
        ][kind];
        let mk = |i: usize| {
            let (m, keys) = mods[i];
            boxed(move |b| {
                let (mech, key) = verify_mech(kind, keys);
                let sig = match kind {
                    0 => Some(&keys.sig_pkcs),
                    1 => Some(&keys.sig_pss),
                    2 => keys.sig_ec.as_ref(),
                    _ => Some(&keys.sig_ec_digest),
                }
                .ok_or("CKM_ECDSA_SHA256 not supported (CKR_MECHANISM_INVALID)")?;
                rate(b, 3, || {
                    if kind == 3 {
                        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &MSG);
                        m.s.verify(&mech, key, d.as_ref(), sig)
                            .map_err(err("C_Verify"))
                    } else {
                        m.s.verify(&mech, key, &MSG, sig).map_err(err("C_Verify"))
                    }
                })
            })
        };
        let raw_ref = &raw;
        let raw_r: Runner = Box::new(move |b| {
            let (pk, sig) = match kind {
                0 => (&raw_ref.rsa_pub, &raw_ref.sig_pkcs),
                1 => (&raw_ref.rsa_pss_pub, &raw_ref.sig_pss),
                _ => (&raw_ref.ec_pub, &raw_ref.sig_ec),
            };
            rate(b, 3, || pk.verify_sig(&MSG, sig).map_err(err("verify")))
        });
        rows.push(line(cfg, name, 1, Some(mk(0)), Some(mk(1)), Some(raw_r)));
    }
    let _ = digest;

    // C_Encrypt AES-256-GCM.
    for (name, size) in [
        ("C_Encrypt AES-256-GCM, 4 KiB", 4096usize),
        ("C_Encrypt AES-256-GCM, 1 MiB", 1 << 20),
    ] {
        let data = vec![0xa5u8; size];
        let mk = |i: usize| {
            let (m, keys) = mods[i];
            let data = data.clone();
            let mut counter = 0u64;
            boxed(move |b| rate(b, 3, || gcm_encrypt(&m.s, keys.aes, &data, &mut counter)))
        };
        let raw_ref = &raw;
        let raw_data = data.clone();
        let raw_r: Runner = Box::new(move |b| {
            let mut buf = raw_data.clone();
            let mut counter = 0u64;
            rate(b, 3, || {
                counter += 1;
                let mut iv = [0u8; 12];
                iv[4..].copy_from_slice(&counter.to_be_bytes());
                buf.copy_from_slice(&raw_data);
                let _tag = raw_ref
                    .gcm
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::empty(),
                        &mut buf,
                    )
                    .map_err(err("seal"))?;
                Ok(())
            })
        });
        rows.push(line(cfg, name, 1, Some(mk(0)), Some(mk(1)), Some(raw_r)));
    }

    // Key generation into token objects (destroyed again, untimed).
    type Gen = fn(&Session) -> Res<Vec<ObjectHandle>>;
    let gens: [(&str, Gen, u32); 3] = [
        (
            "C_GenerateKeyPair RSA-2048 (token objects)",
            |s| rsa_pair(s, "gen", false).map(|(a, b)| vec![a, b]),
            4,
        ),
        (
            "C_GenerateKeyPair P-256 (token objects)",
            |s| ec_pair(s, "gen").map(|(a, b)| vec![a, b]),
            1,
        ),
        (
            "C_GenerateKey AES-256 (token object)",
            |s| aes_key(s, "gen").map(|h| vec![h]),
            1,
        ),
    ];
    for (i, (name, gen, factor)) in gens.into_iter().enumerate() {
        let mk = |i: usize| {
            let (m, _) = mods[i];
            boxed(move |b| {
                rate_timed(b, 3, || {
                    let st = Instant::now();
                    let hs = gen(&m.s)?;
                    let d = st.elapsed();
                    for h in hs {
                        destroy(&m.s, h)?;
                    }
                    Ok(d)
                })
            })
        };
        let raw_ref = &raw;
        let raw_r: Runner = Box::new(move |b| {
            rate(b, 3, || {
                match i {
                    0 => {
                        RsaKeyPair::generate(KeySize::Rsa2048).map_err(err("gen"))?;
                    }
                    1 => {
                        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                            .map_err(err("gen"))?;
                    }
                    _ => {
                        let mut k = [0u8; 32];
                        raw_ref.rng.fill(&mut k).map_err(err("rng"))?;
                    }
                }
                Ok(())
            })
        });
        rows.push(line(
            cfg,
            name,
            factor,
            Some(mk(0)),
            Some(mk(1)),
            Some(raw_r),
        ));
    }

    // Two threads, each with its own session.
    {
        let mk = |i: usize| {
            let (m, keys) = mods[i];
            boxed(move |b| two_thread_sign(m, keys.sig_priv, b))
        };
        let raw_ref = &raw;
        let raw_r: Runner = Box::new(move |b| raw_two_thread_sign(raw_ref, b));
        rows.push(line(
            cfg,
            "C_Sign RSA-2048 CKM_SHA256_RSA_PKCS, 2 threads × own session (total)",
            2,
            Some(mk(0)),
            Some(mk(1)),
            Some(raw_r),
        ));
    }
    stop(k);
    stop(s);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// large tokens: preparation (cached), C_FindObjects, token open

/// kmshsm's cached tokens are named after its store schema, so a cache written by an
/// earlier build (which the module would upgrade on the first, measured, open of every
/// copy) is not reused.
const KMSHSM_STORE_SCHEMA: &str = "schema2";

fn cache_dir(cfg: &Cfg, which: Which, n: usize) -> PathBuf {
    match which {
        Which::Kms => cfg
            .cache()
            .join(format!("{}-{KMSHSM_STORE_SCHEMA}-{n}", which.tag())),
        Which::Soft => cfg.cache().join(format!("{}-{n}", which.tag())),
    }
}

fn fill_token(m: &Loaded, n: usize) -> Res<()> {
    let start = Instant::now();
    for i in 0..n {
        let mut t = aes_template(&format!("k{i}"));
        t.push(Attribute::Id(id_bytes(i)));
        let mut v = [0u8; 32];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        v[8] = 0xbe;
        t.push(Attribute::Value(v.to_vec()));
        m.s.create_object(&t).map_err(err("C_CreateObject"))?;
        if (i + 1) % 10_000 == 0 {
            eprintln!(
                "    {}: {} keys, {:.0} keys/s",
                m.which.tag(),
                i + 1,
                (i + 1) as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "    {}: {n} keys created in {:.1} s",
        m.which.tag(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Makes sure `token-cache/<module>-<n>` exists for both modules (building the missing ones
/// in parallel, one thread per module). Returns the build times (seconds) of those built.
fn prepare(cfg: &Cfg, n: usize) -> Res<Vec<(Which, f64)>> {
    let need: Vec<Which> = [Which::Kms, Which::Soft]
        .into_iter()
        .filter(|w| !cache_dir(cfg, *w, n).exists())
        .collect();
    if need.is_empty() {
        return Ok(vec![]);
    }
    eprintln!("== preparing tokens with {n} keys (cached for later runs)");
    // Built on tmpfs when there is one: SoftHSMv2 rewrites (ftruncate + write) an object's
    // file once per attribute, which costs ~100 ms per object on this ext4 disk, and kmshsm
    // commits (fsync) every C_CreateObject. The finished directories are copied to the cache
    // on disk; what is measured later always runs on a copy on disk.
    let stage = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!("/dev/shm/kmshsm-bench-prep-{}", std::process::id()))
    } else {
        cfg.work().join("stage")
    };
    let _ = std::fs::remove_dir_all(&stage);
    let tmp = |w: Which| stage.join(format!("{}-{n}", w.tag()));
    let kdir = if need.contains(&Which::Kms) {
        tmp(Which::Kms)
    } else {
        stage.join("unused-k")
    };
    let sdir = if need.contains(&Which::Soft) {
        tmp(Which::Soft)
    } else {
        stage.join("unused-s")
    };
    configure(&stage.join("conf"), &kdir, &sdir)?;
    let mut mods = vec![];
    for w in &need {
        let path = if *w == Which::Kms {
            &cfg.kms_so
        } else {
            &cfg.soft_so
        };
        mods.push(start(*w, path, true)?);
    }
    let hs: Vec<_> = mods
        .into_iter()
        .map(|m| {
            std::thread::spawn(move || -> Res<(Which, f64)> {
                let st = Instant::now();
                fill_token(&m, n)?;
                let t = (m.which, st.elapsed().as_secs_f64());
                stop(m);
                Ok(t)
            })
        })
        .collect();
    let times = hs
        .into_iter()
        .map(|h| h.join().map_err(|_| "fill thread panicked".to_string())?)
        .collect::<Res<Vec<_>>>()?;
    for w in &need {
        let part = cfg.cache().join(format!("{}-{n}.part", w.tag()));
        copy_dir(&tmp(*w), &part)?;
        std::fs::rename(&part, cache_dir(cfg, *w, n)).map_err(err("rename"))?;
        std::fs::write(
            cfg.cache().join(format!("{}-{n}.build-seconds", w.tag())),
            format!("{:.1}\n", times.iter().find(|t| t.0 == *w).unwrap().1),
        )
        .map_err(err("write"))?;
    }
    let _ = std::fs::remove_dir_all(&stage);
    Ok(times)
}

fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.parent().unwrap()).map_err(err("mkdir"))?;
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(err("cp"))?;
    if !st.success() {
        return Err(format!("cp -a {} {} failed", from.display(), to.display()));
    }
    Ok(())
}

/// Deterministic pseudo-random key index sequence.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn find_phase(cfg: &Cfg, n: usize, rows: &mut Vec<Row>) -> Res<()> {
    eprintln!("== C_FindObjects on tokens with {n} keys");
    let dir = cfg.work().join(format!("find-{n}"));
    let kdir = dir.join("kmshsm-tokens");
    let sdir = dir.join("softhsm-tokens");
    copy_dir(&cache_dir(cfg, Which::Kms, n), &kdir)?;
    copy_dir(&cache_dir(cfg, Which::Soft, n), &sdir)?;
    configure(&dir, &kdir, &sdir)?;
    let k = start(Which::Kms, &cfg.kms_so, false)?;
    let s = start(Which::Soft, &cfg.soft_so, false)?;
    for by_id in [false, true] {
        let name = if by_id {
            format!("C_FindObjects by CKA_ID, {n} keys")
        } else {
            format!("C_FindObjects by CKA_LABEL, {n} keys")
        };
        let both = [&k, &s];
        let mk = |i: usize| {
            let m = both[i];
            let mut lcg = Lcg(12345);
            boxed(move |b| {
                // At least one call per sample: SoftHSMv2 needs seconds per call at 10,000+ keys.
                rate(b, 1, || {
                    let j = lcg.next(n);
                    let t = if by_id {
                        [Attribute::Id(id_bytes(j))]
                    } else {
                        [Attribute::Label(format!("k{j}").into_bytes())]
                    };
                    let found = m.s.find_objects(&t).map_err(err("C_FindObjects"))?;
                    if found.len() != 1 {
                        return Err(format!("found {} objects for key {j}", found.len()));
                    }
                    Ok(())
                })
            })
        };
        rows.push(line(cfg, &name, 1, Some(mk(0)), Some(mk(1)), None));
    }
    stop(k);
    stop(s);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What the child prints: microseconds of C_Initialize, slot lookup + C_OpenSession,
/// C_Login, and (after the timed window) the first C_FindObjects by label, which shows
/// whether loading the objects was only put off to the first search.
#[derive(Clone, Copy, Debug, Default)]
struct OpenTimes {
    init: f64,
    open: f64,
    login: f64,
    first_find: f64,
    process: f64,
}

fn child_open(module: &Path) -> Res<()> {
    let ctx = Pkcs11::new(module).map_err(err("load module"))?;
    let t0 = Instant::now();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(err("C_Initialize"))?;
    let t1 = Instant::now();
    let slot = find_token(&ctx)?.ok_or("token not found")?;
    let s = ctx.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    let t2 = Instant::now();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .map_err(err("C_Login"))?;
    let t3 = Instant::now();
    let found = s
        .find_objects(&[Attribute::Label(b"k0".to_vec())])
        .map_err(err("C_FindObjects"))?;
    let t4 = Instant::now();
    if found.len() != 1 {
        return Err(format!(
            "first find: {} objects labelled k0, expected 1",
            found.len()
        ));
    }
    println!(
        "OPEN {} {} {} {}",
        (t1 - t0).as_secs_f64() * 1e6,
        (t2 - t1).as_secs_f64() * 1e6,
        (t3 - t2).as_secs_f64() * 1e6,
        (t4 - t3).as_secs_f64() * 1e6
    );
    drop(s);
    let _ = ctx.finalize();
    Ok(())
}

fn run_child(module: &Path) -> Res<OpenTimes> {
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    let st = Instant::now();
    let out = Command::new(exe)
        .arg("--child-open")
        .arg(module)
        .output()
        .map_err(err("spawn child"))?;
    let process = st.elapsed().as_secs_f64() * 1e6;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("OPEN "))
        .ok_or_else(|| {
            format!(
                "child failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let v: Vec<f64> = line[5..]
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    if v.len() != 4 {
        return Err(format!("child printed {line:?}"));
    }
    Ok(OpenTimes {
        init: v[0],
        open: v[1],
        login: v[2],
        first_find: v[3],
        process,
    })
}

fn open_phase(cfg: &Cfg, n: usize, rows: &mut Vec<Row>, details: &mut String) -> Res<()> {
    eprintln!("== token open in a fresh process, {n} keys");
    let dir = cfg.work().join(format!("open-{n}"));
    let kdir = dir.join("kmshsm-tokens");
    let sdir = dir.join("softhsm-tokens");
    copy_dir(&cache_dir(cfg, Which::Kms, n), &kdir)?;
    copy_dir(&cache_dir(cfg, Which::Soft, n), &sdir)?;
    configure(&dir, &kdir, &sdir)?;
    let mut samples: [Vec<OpenTimes>; 2] = Default::default();
    // One warm-up run each (page cache), then alternating runs.
    run_child(&cfg.kms_so)?;
    run_child(&cfg.soft_so)?;
    for r in 0..cfg.open_runs {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for col in order {
            let path = if col == 0 { &cfg.kms_so } else { &cfg.soft_so };
            samples[col].push(run_child(path)?);
        }
    }
    let med =
        |v: &[OpenTimes], f: fn(&OpenTimes) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let cell = |v: &[OpenTimes]| {
        let totals: Vec<f64> = v
            .iter()
            .map(|t| 1e6 / (t.init + t.open + t.login))
            .collect();
        Cell::Val(median(&totals), totals)
    };
    let name = format!("token open: C_Initialize+C_OpenSession+C_Login, {n} keys (fresh process)");
    let row = Row {
        op: name,
        kms: cell(&samples[0]),
        soft: cell(&samples[1]),
        raw: Cell::Na(String::new()),
    };
    eprintln!(
        "  {:<62}{:>12} {:>12}",
        row.op,
        fmt_cell(&row.kms),
        fmt_cell(&row.soft)
    );
    rows.push(row);
    for (col, w) in [(0, "kmshsm"), (1, "SoftHSMv2")] {
        let v = &samples[col];
        let _ = writeln!(
            details,
            "| {n} | {w} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            med(v, |t| t.init) / 1e3,
            med(v, |t| t.open) / 1e3,
            med(v, |t| t.login) / 1e3,
            med(v, |t| t.init + t.open + t.login) / 1e3,
            med(v, |t| t.first_find) / 1e3,
            med(v, |t| t.process) / 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// report

fn machine() -> String {
    let sh = |c: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(c)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "- CPU: {} ({} logical CPUs)\n- memory: {}\n- kernel: {}\n- OS: {}\n- SoftHSMv2: {}\n- rustc: {}\n- load average at the end of the run: {}\n",
        sh("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        sh("nproc"),
        sh("free -h | awk '/^Mem:/{print $2}'"),
        sh("uname -sr"),
        sh(". /etc/os-release && echo $PRETTY_NAME"),
        sh("dpkg-query -W -f='${Version}' softhsm2 2>/dev/null"),
        sh("rustc --version"),
        sh("cut -d' ' -f1-3 /proc/loadavg"),
    )
}

fn report(cfg: &Cfg, rows: &[Row], details: &str, builds: &str, total: Duration) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Machine\n\n{}", machine());
    let _ = writeln!(
        o,
        "Settings: {} rounds (after one warm-up), {} ms per module per round (×4 for RSA key \
         generation, ×2 for the two-thread line), modules alternated within each round; medians \
         reported. Token open: {} fresh processes per module (after one warm-up each). \
         Whole run: {:.0} s.\n",
        cfg.rounds,
        cfg.budget.as_millis(),
        cfg.open_runs,
        total.as_secs_f64()
    );
    let _ = writeln!(
        o,
        "| operation | kmshsm ops/s | SoftHSMv2 ops/s | ratio | raw primitive ops/s | kmshsm / raw |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    let measured = |r: &&Row| {
        [&r.kms, &r.soft, &r.raw]
            .iter()
            .any(|c| !matches!(c, Cell::Na(e) if e.is_empty()))
    };
    for r in rows.iter().filter(measured) {
        let ratio = match (r.kms.val(), r.soft.val()) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".into(),
        };
        let vs_raw = match (r.kms.val(), r.raw.val()) {
            (Some(a), Some(b)) => format!("{:.0}%", 100.0 * a / b),
            _ => "—".into(),
        };
        let na = |c: &Cell| match c {
            Cell::Na(e) if !e.is_empty() => format!("n/a ({})", e.replace('|', "/")),
            c => fmt_cell(c),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            r.op,
            na(&r.kms),
            na(&r.soft),
            ratio,
            na(&r.raw),
            vs_raw
        );
    }
    // Derived figures.
    let get = |p: &str| rows.iter().find(|r| r.op.starts_with(p));
    let _ = writeln!(o, "\n### Derived\n");
    if let (Some(one), Some(two)) = (
        get("C_Sign RSA-2048 CKM_SHA256_RSA_PKCS, 64 B"),
        get("C_Sign RSA-2048 CKM_SHA256_RSA_PKCS, 2 threads"),
    ) {
        for (name, a, b) in [
            ("kmshsm", one.kms.val(), two.kms.val()),
            ("SoftHSMv2", one.soft.val(), two.soft.val()),
            ("raw aws-lc-rs", one.raw.val(), two.raw.val()),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                let _ = writeln!(
                    o,
                    "- two-thread RSA-2048 signing, {name}: {} ops/s against {} single-thread = {:.2}×",
                    fmt_rate(b),
                    fmt_rate(a),
                    b / a
                );
            }
        }
    }
    let counts = &cfg.counts;
    if counts.len() >= 2 {
        let (lo, hi) = (counts[0], counts[counts.len() - 1]);
        let allowed = (hi as f64).ln() / (lo as f64).ln();
        for p in [
            "C_FindObjects by CKA_LABEL",
            "C_FindObjects by CKA_ID",
            "token open",
        ] {
            let at = |n: usize| {
                rows.iter()
                    .find(|r| r.op.starts_with(p) && r.op.contains(&format!(" {n} keys")))
            };
            if let (Some(a), Some(b)) = (at(lo), at(hi)) {
                for (name, x, y) in [
                    ("kmshsm", a.kms.val(), b.kms.val()),
                    ("SoftHSMv2", a.soft.val(), b.soft.val()),
                ] {
                    if let (Some(x), Some(y)) = (x, y) {
                        let _ = writeln!(
                            o,
                            "- {p}, {name}: cost per call at {hi} keys is {:.2}× the cost at {lo} keys \
                             (logarithmic growth would be ≤ {:.2}×, linear {:.0}×)",
                            x / y,
                            allowed,
                            hi as f64 / lo as f64
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(
        o,
        "\n### Token open, breakdown (medians, milliseconds)\n\n\
         | keys | module | C_Initialize | slot lookup + C_OpenSession | C_Login | sum | then first C_FindObjects by label (not in the sum) | whole child process |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n{details}"
    );
    if !builds.is_empty() {
        let _ = writeln!(
            o,
            "\n### Token preparation (C_CreateObject of every key, one-time, cached)\n\n{builds}"
        );
    }
    let _ = writeln!(
        o,
        "\n### Raw samples (ops/s per round: kmshsm / SoftHSMv2 / raw)\n"
    );
    for r in rows.iter().filter(measured) {
        let s = |c: &Cell| match c {
            Cell::Val(_, v) => v.iter().map(|x| fmt_rate(*x)).collect::<Vec<_>>().join(" "),
            _ => "—".into(),
        };
        let _ = writeln!(
            o,
            "- {}: [{}] / [{}] / [{}]",
            r.op,
            s(&r.kms),
            s(&r.soft),
            s(&r.raw)
        );
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--child-open" {
        if let Err(e) = child_open(Path::new(&args[2])) {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let cfg = match Cfg::from_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kmshsm-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&cfg) {
        eprintln!("kmshsm-bench: {e}");
        std::process::exit(1);
    }
}

fn run(cfg: &Cfg) -> Res<()> {
    let t0 = Instant::now();
    for p in [&cfg.kms_so, &cfg.soft_so] {
        if !p.exists() {
            return Err(format!("{} does not exist", p.display()));
        }
    }
    std::fs::create_dir_all(cfg.cache()).map_err(err("mkdir"))?;
    let _ = std::fs::remove_dir_all(cfg.work());
    let mut rows = vec![];
    let on = |p: &str| cfg.phases.iter().any(|x| x == p);
    if on("crypto") {
        crypto_phase(cfg, &mut rows)?;
    }
    let mut builds = String::new();
    for &n in &cfg.counts {
        if !on("find") && !on("open") {
            break;
        }
        prepare(cfg, n)?;
        for w in [Which::Kms, Which::Soft] {
            if let Ok(s) =
                std::fs::read_to_string(cfg.cache().join(format!("{}-{n}.build-seconds", w.tag())))
            {
                let _ = writeln!(builds, "- {} keys, {}: {} s", n, w.tag(), s.trim());
            }
        }
    }
    for &n in &cfg.counts {
        if on("find") {
            find_phase(cfg, n, &mut rows)?;
        }
    }
    let mut details = String::new();
    for &n in &cfg.counts {
        if on("open") {
            open_phase(cfg, n, &mut rows, &mut details)?;
        }
    }
    let _ = std::fs::remove_dir_all(cfg.work());
    let text = report(cfg, &rows, &details, &builds, t0.elapsed());
    println!("{text}");
    std::fs::write(&cfg.out, &text).map_err(err("write results"))?;
    eprintln!("results written to {}", cfg.out.display());
    Ok(())
}

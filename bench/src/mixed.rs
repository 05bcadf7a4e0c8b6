//! Preparation of the mixed tokens of phase `million` (issue 18): `n` objects, each labelled
//! `k<i>` with CKA_ID `i`, built once per module and size through the module's own PKCS#11
//! interface (one call per key, as a client would make them) and kept in the token cache.
//!
//! The mix, by object index `i`: `i % 10` = 4 and 5 are the private and public half of one
//! EC P-256 pair (C_GenerateKeyPair); 6 and 7 are RSA-2048 public keys (C_CreateObject; the
//! moduli come from a pool of real keys); `i % 100` = 99 is, on kmshsm, an EXTERNAL AES-256
//! key whose material was imported with an expiry (`external`: CreateKey,
//! GetParametersForImport, ImportKeyMaterial), on SoftHSMv2 an AES-256 key with CKA_END_DATE
//! (it has no import); everything else is an AES-256 key made with C_CreateObject and a
//! value. SoftHSMv2's preparation stops at a time budget; what it managed is recorded.
//!
//! Nothing here is measured for the table (only the one-time build time is recorded), and it
//! must not write anywhere but its staging directory and the cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::Session;
use cryptoki::types::Date;

use crate::external::{import, prepare_external, FAR_EXPIRY};
use crate::keys::{aes_template, id_bytes};
use crate::token::KMSHSM_STORE_SCHEMA;
use crate::token::{configure, copy_dir, start, stop, Loaded, Which};
use crate::{err, Cfg, Res};

/// DER of the P-256 curve OID.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Distinct RSA moduli in the pool the RSA public keys are made from.
const RSA_POOL: usize = 8;

pub(crate) fn mixed_dir(cfg: &Cfg, which: Which, n: usize) -> PathBuf {
    match which {
        Which::Kms => cfg
            .cache()
            .join(format!("kmshsm-mixed-{KMSHSM_STORE_SCHEMA}-{n}")),
        Which::Soft => cfg.cache().join(format!("softhsm-mixed-{n}")),
    }
}

/// Where SoftHSMv2's preparation of size `n` records that it gave up (objects made, seconds).
pub(crate) fn gave_up_file(cfg: &Cfg, n: usize) -> PathBuf {
    cfg.cache().join(format!("softhsm-mixed-{n}.gave-up"))
}

pub(crate) fn build_seconds_file(cfg: &Cfg, which: Which, n: usize) -> PathBuf {
    cfg.cache()
        .join(format!("{}-mixed-{n}.build-seconds", which.tag()))
}

/// What kind of object index `i` is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Aes,
    EcPair,
    EcPublic,
    RsaPublic,
    Imported,
}

pub(crate) fn kind(i: usize, n: usize) -> Kind {
    match (i % 100, i % 10) {
        (99, _) => Kind::Imported,
        (_, 4) if i + 1 < n => Kind::EcPair,
        (_, 5) => Kind::EcPublic,
        (_, 6 | 7) => Kind::RsaPublic,
        _ => Kind::Aes,
    }
}

fn rsa_pool() -> Res<Vec<Vec<u8>>> {
    (0..RSA_POOL)
        .map(|_| {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(err("rsa gen"))?;
            modulus_of(kp.public_key().as_ref())
        })
        .collect()
}

/// The modulus of a DER RSAPublicKey (SEQUENCE { INTEGER n, INTEGER e }).
fn modulus_of(der: &[u8]) -> Res<Vec<u8>> {
    // (tag, content) at `at`, with a definite length in short or long form.
    let tlv = |at: usize| -> Option<(u8, usize, usize)> {
        let (&tag, &l0) = (der.get(at)?, der.get(at + 1)?);
        if l0 < 0x80 {
            return Some((tag, at + 2, l0 as usize));
        }
        let k = (l0 & 0x7f) as usize;
        let len = der
            .get(at + 2..at + 2 + k)?
            .iter()
            .fold(0usize, |a, b| (a << 8) | *b as usize);
        Some((tag, at + 2 + k, len))
    };
    let (_, body, _) = tlv(0).ok_or("RSAPublicKey")?;
    let (tag, start, len) = tlv(body).ok_or("RSAPublicKey modulus")?;
    let n = der.get(start..start + len).ok_or("RSAPublicKey modulus")?;
    if tag != 0x02 {
        return Err("RSAPublicKey: no INTEGER".into());
    }
    Ok(n.iter().skip_while(|b| **b == 0).copied().collect())
}

fn label(i: usize) -> Attribute {
    Attribute::Label(format!("k{i}").into_bytes())
}

/// Makes object `i` (and `i + 1` for an EC pair).
fn make(m: &Loaded, s: &Session, i: usize, n: usize, moduli: &[Vec<u8>]) -> Res<()> {
    let k = kind(i, n);
    match k {
        Kind::EcPublic => Ok(()),
        Kind::Imported if m.which == Which::Kms => {
            let p = prepare_external(s, i)?;
            import(s, p, FAR_EXPIRY, true).map(|_| ())
        }
        Kind::Aes | Kind::Imported => {
            let mut t = aes_template(&format!("k{i}"));
            t.push(Attribute::Id(id_bytes(i)));
            let mut v = [0u8; 32];
            v[..8].copy_from_slice(&(i as u64).to_le_bytes());
            v[8] = 0xbe;
            t.push(Attribute::Value(v.to_vec()));
            if k == Kind::Imported {
                // SoftHSMv2's stand-in for an imported key with an expiry.
                let end = Date::new_from_str_slice("2099", "12", "31").map_err(err("date"))?;
                t.push(Attribute::EndDate(end));
            }
            s.create_object(&t)
                .map(|_| ())
                .map_err(err("C_CreateObject(AES)"))
        }
        Kind::EcPair => {
            let pubt = [
                Attribute::Token(true),
                Attribute::EcParams(P256_OID.to_vec()),
                Attribute::Verify(true),
                label(i + 1),
                Attribute::Id(id_bytes(i + 1)),
            ];
            let privt = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Sign(true),
                label(i),
                Attribute::Id(id_bytes(i)),
            ];
            s.generate_key_pair(&Mechanism::EccKeyPairGen, &pubt, &privt)
                .map(|_| ())
                .map_err(err("C_GenerateKeyPair(EC)"))
        }
        Kind::RsaPublic => s
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::Modulus(moduli[i % moduli.len()].clone()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                label(i),
                Attribute::Id(id_bytes(i)),
            ])
            .map(|_| ())
            .map_err(err("C_CreateObject(RSA public)")),
    }
}

/// Fills the token; `Ok(None)` when done, `Ok(Some(made))` when the budget ran out.
fn fill(m: &Loaded, n: usize, moduli: &[Vec<u8>], budget: Duration) -> Res<Option<usize>> {
    let start = Instant::now();
    let mut last = Instant::now();
    for i in 0..n {
        make(m, &m.s, i, n, moduli)?;
        if last.elapsed() > Duration::from_secs(15) {
            last = Instant::now();
            eprintln!(
                "    {}: {} objects, {:.0} objects/s",
                m.which.tag(),
                i + 1,
                (i + 1) as f64 / start.elapsed().as_secs_f64()
            );
        }
        if start.elapsed() > budget {
            return Ok(Some(i + 1));
        }
    }
    Ok(None)
}

/// Makes sure the mixed tokens of size `n` exist for kmshsm, and for SoftHSMv2 unless an
/// earlier attempt at this size (or a smaller one) gave up. Both are built on tmpfs in
/// parallel, one thread per module, then copied to the cache on disk.
pub(crate) fn prepare_mixed(cfg: &Cfg, n: usize) -> Res<()> {
    let soft_hopeless = cfg
        .counts_million
        .iter()
        .any(|&m| m <= n && gave_up_file(cfg, m).exists());
    let need: Vec<Which> = [Which::Kms, Which::Soft]
        .into_iter()
        .filter(|w| !mixed_dir(cfg, *w, n).exists())
        .filter(|w| *w == Which::Kms || !soft_hopeless)
        .collect();
    if need.is_empty() {
        return Ok(());
    }
    eprintln!("== preparing mixed tokens with {n} objects (cached for later runs)");
    let stage = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!(
            "/dev/shm/kmshsm-bench-mixed-{}",
            std::process::id()
        ))
    } else {
        cfg.work().join("stage-mixed")
    };
    let _ = std::fs::remove_dir_all(&stage);
    let tmp = |w: Which| stage.join(format!("{}-{n}", w.tag()));
    configure(&stage.join("conf"), &tmp(Which::Kms), &tmp(Which::Soft))?;
    let moduli = rsa_pool()?;
    let mut mods = vec![];
    for w in &need {
        let path = if *w == Which::Kms {
            &cfg.kms_so
        } else {
            &cfg.soft_so
        };
        mods.push(start(*w, path, true)?);
    }
    let soft_budget = cfg.soft_prep_budget;
    let results = std::thread::scope(|sc| {
        let hs: Vec<_> = mods
            .into_iter()
            .map(|m| {
                let moduli = &moduli;
                sc.spawn(move || -> Res<(Which, f64, Option<usize>)> {
                    let st = Instant::now();
                    let which = m.which;
                    let budget = if which == Which::Soft {
                        soft_budget
                    } else {
                        Duration::MAX
                    };
                    let gave_up = fill(&m, n, moduli, budget);
                    stop(m);
                    let gave_up = gave_up?;
                    let t = st.elapsed().as_secs_f64();
                    eprintln!(
                        "    {}: {} of {n} objects in {t:.1} s{}",
                        which.tag(),
                        gave_up.unwrap_or(n),
                        if gave_up.is_some() {
                            " (time budget spent: gave up)"
                        } else {
                            ""
                        }
                    );
                    Ok((which, t, gave_up))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().map_err(|_| "fill thread panicked".to_string())?)
            .collect::<Res<Vec<_>>>()
    })?;
    for (w, t, gave_up) in results {
        if let Some(made) = gave_up {
            std::fs::write(gave_up_file(cfg, n), format!("{made} {t:.1}\n"))
                .map_err(err("write"))?;
            continue;
        }
        let part = cfg.cache().join(format!("{}-mixed-{n}.part", w.tag()));
        copy_dir(&tmp(w), &part)?;
        std::fs::rename(&part, mixed_dir(cfg, w, n)).map_err(err("rename"))?;
        std::fs::write(build_seconds_file(cfg, w, n), format!("{t:.1}\n")).map_err(err("write"))?;
    }
    let _ = std::fs::remove_dir_all(&stage);
    Ok(())
}

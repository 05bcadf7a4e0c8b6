//! Phase `crypto`: the cryptographic operations (unwrap, sign, verify, AES-GCM and SM4-GCM
//! encryption and decryption (in `crypto_aead`), key generation, two-thread signing) on
//! fresh tokens, one table line each, with the raw primitive alongside.
//!
//! The report finds some lines by the start of their names (derived figures), so the names
//! must not change without `report`.

use std::time::Instant;

use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256};
use aws_lc_rs::signature::{
    EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

use crate::crypto_keys::{crypto_keys, sign_mech, unwrap_template, verify_mech};
use crate::keys::{aes_key, destroy, ec_pair, oaep, rsa_pair, MSG};
use crate::raw::raw_setup;
use crate::threads::{raw_two_thread_sign, two_thread_sign};
use crate::timing::{boxed, line, rate, rate_timed, Row, Runner};
use crate::token::{configure, start, stop, Which};
use crate::{err, Cfg, Res};

pub(crate) fn crypto_phase(cfg: &Cfg, rows: &mut Vec<Row>) -> Res<()> {
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

    // C_Encrypt and C_Decrypt, AES-256-GCM and SM4-GCM (with percall.csv).
    crate::crypto_aead::aead_lines(cfg, mods, &raw, rows)?;

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

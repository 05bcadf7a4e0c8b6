//! The crypto phase's AEAD lines (issue 18, per-call cost): AES-256-GCM `C_Encrypt` and
//! `C_Decrypt` (each with its `Init`) at 64 B, 4 KiB and 1 MiB, and SM4-GCM (kmshsm's
//! vendor mechanism; SoftHSMv2 has no SM4) at 64 B and 4 KiB, each beside the raw
//! primitive with its key prepared once. Also writes `percall.csv` beside the results: the
//! cost of one call against the payload size, with the raw primitive as the floor.
//!
//! It must not change the names of the lines that existed before (the report finds lines
//! by name).

use std::path::Path;

use aes_gcm::aead::AeadInOut;
use aes_gcm::AesGcm;
use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use sm4::cipher::consts::U12;
use sm4::cipher::{Array, KeyInit};
use sm4::Sm4;

use crate::crypto_keys::CryptoKeys;
use crate::raw::Raw;
use crate::timing::{boxed, line, rate, Cell, Row, Runner};
use crate::token::Loaded;
use crate::{err, Cfg, Res};

/// kmshsm's vendor mechanisms and key type for SM4 (include/kmshsm.h).
const CKM_KMSHSM_SM4_KEY_GEN: u64 = 0x8000_0000 | 0x4B4D_0000 | 0x0005;
const CKM_KMSHSM_SM4_GCM: u64 = 0x8000_0000 | 0x4B4D_0000 | 0x0009;
const CKK_KMSHSM_SM4: u64 = 0x8000_0000 | 0x4B4D_0000 | 0x0002;

/// The AES-GCM and SM4-GCM line names with their payload sizes, in table order.
const GCM_LINES: [(&str, usize, bool); 6] = [
    ("C_Encrypt AES-256-GCM, 64 B", 64, true),
    ("C_Encrypt AES-256-GCM, 4 KiB", 4096, true),
    ("C_Encrypt AES-256-GCM, 1 MiB", 1 << 20, true),
    ("C_Decrypt AES-256-GCM, 64 B", 64, false),
    ("C_Decrypt AES-256-GCM, 4 KiB", 4096, false),
    ("C_Decrypt AES-256-GCM, 1 MiB", 1 << 20, false),
];

const SM4_LINES: [(&str, usize, bool); 4] = [
    (
        "C_Encrypt SM4-GCM (kmshsm vendor mechanism), 64 B",
        64,
        true,
    ),
    (
        "C_Encrypt SM4-GCM (kmshsm vendor mechanism), 4 KiB",
        4096,
        true,
    ),
    (
        "C_Decrypt SM4-GCM (kmshsm vendor mechanism), 64 B",
        64,
        false,
    ),
    (
        "C_Decrypt SM4-GCM (kmshsm vendor mechanism), 4 KiB",
        4096,
        false,
    ),
];

fn iv_of(counter: u64) -> [u8; NONCE_LEN] {
    let mut iv = [0u8; NONCE_LEN];
    iv[4..].copy_from_slice(&counter.to_be_bytes());
    iv
}

/// One `C_EncryptInit` + `C_Encrypt` (or the decryption of `input`) with a GCM mechanism:
/// `sm4` picks kmshsm's SM4-GCM, otherwise AES-GCM. Checks the output length.
fn gcm_call(
    s: &Session,
    key: ObjectHandle,
    sm4: bool,
    encrypt: bool,
    input: &[u8],
    iv: &mut [u8; NONCE_LEN],
) -> Res<()> {
    let params = GcmParams::new(iv, &[], 128.into()).map_err(err("GcmParams"))?;
    let mech = if sm4 {
        Mechanism::VendorDefined(VendorDefinedMechanism::new(
            MechanismType::new_vendor_defined(CKM_KMSHSM_SM4_GCM).map_err(err("mechanism"))?,
            Some(&params),
        ))
    } else {
        Mechanism::AesGcm(params)
    };
    let out = if encrypt {
        s.encrypt(&mech, key, input).map_err(err("C_Encrypt"))?
    } else {
        s.decrypt(&mech, key, input).map_err(err("C_Decrypt"))?
    };
    let expected = if encrypt {
        input.len() + 16
    } else {
        input.len() - 16
    };
    if out.len() != expected {
        return Err("wrong GCM output length".into());
    }
    Ok(())
}

/// A session SM4 key on kmshsm (vendor key generation).
fn sm4_key(s: &Session) -> Res<ObjectHandle> {
    let mech = Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        MechanismType::new_vendor_defined(CKM_KMSHSM_SM4_KEY_GEN).map_err(err("mechanism"))?,
        None,
    ));
    let t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::new_vendor_defined(CKK_KMSHSM_SM4).map_err(err("key type"))?),
        Attribute::Token(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ];
    s.generate_key(&mech, &t).map_err(err("C_GenerateKey(SM4)"))
}

/// The ciphertext (with tag) of `data` under IV 0, made once through the module, for the
/// decryption lines.
fn sealed(s: &Session, key: ObjectHandle, sm4: bool, data: &[u8]) -> Res<Vec<u8>> {
    let mut iv = iv_of(0);
    let params = GcmParams::new(&mut iv, &[], 128.into()).map_err(err("GcmParams"))?;
    let mech = if sm4 {
        Mechanism::VendorDefined(VendorDefinedMechanism::new(
            MechanismType::new_vendor_defined(CKM_KMSHSM_SM4_GCM).map_err(err("mechanism"))?,
            Some(&params),
        ))
    } else {
        Mechanism::AesGcm(params)
    };
    s.encrypt(&mech, key, data).map_err(err("C_Encrypt"))
}

/// A module's runner for one line.
fn module_runner<'a>(
    s: &'a Session,
    key: Res<ObjectHandle>,
    sm4: bool,
    encrypt: bool,
    size: usize,
) -> Runner<'a> {
    let data = vec![0xa5u8; size];
    let mut counter = 0u64;
    let mut input: Option<Vec<u8>> = None;
    boxed(move |b| {
        let key = key.clone()?;
        if input.is_none() {
            input = Some(if encrypt {
                data.clone()
            } else {
                sealed(s, key, sm4, &data)?
            });
        }
        let input = input.as_deref().ok_or("no input")?;
        rate(b, 3, || {
            let mut iv = if encrypt {
                counter += 1;
                iv_of(counter)
            } else {
                iv_of(0)
            };
            gcm_call(s, key, sm4, encrypt, input, &mut iv)
        })
    })
}

/// The raw AES-256-GCM primitive (aws-lc-rs, key prepared once) for one line.
fn raw_aes<'a>(raw: &'a Raw, encrypt: bool, size: usize) -> Runner<'a> {
    let data = vec![0xa5u8; size];
    Box::new(move |b| {
        let mut buf = data.clone();
        let tag = raw
            .gcm
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv_of(0)),
                Aad::empty(),
                &mut buf,
            )
            .map_err(err("seal"))?;
        let sealed = [buf.as_slice(), tag.as_ref()].concat();
        let mut counter = 0u64;
        let mut work = sealed.clone();
        rate(b, 3, || {
            if encrypt {
                counter += 1;
                buf.copy_from_slice(&data);
                let _tag = raw
                    .gcm
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv_of(counter)),
                        Aad::empty(),
                        &mut buf,
                    )
                    .map_err(err("seal"))?;
            } else {
                work.copy_from_slice(&sealed);
                let plain = raw
                    .gcm
                    .open_in_place(
                        Nonce::assume_unique_for_key(iv_of(0)),
                        Aad::empty(),
                        &mut work,
                    )
                    .map_err(err("open"))?;
                if plain.len() != size {
                    return Err("wrong plaintext length".into());
                }
            }
            Ok(())
        })
    })
}

/// The raw SM4-GCM primitive (the `sm4` and `aes-gcm` crates kmshsm uses, key schedule
/// prepared once) for one line.
fn raw_sm4(encrypt: bool, size: usize) -> Runner<'static> {
    let data = vec![0xa5u8; size];
    Box::new(move |b| {
        let cipher = Sm4::new_from_slice(&[7u8; 16]).map_err(err("sm4 key"))?;
        let gcm = AesGcm::<Sm4, U12>::from(cipher);
        let nonce0 = Array::from(iv_of(0));
        let mut sealed = data.clone();
        let tag = gcm
            .encrypt_inout_detached(&nonce0, &[], sealed.as_mut_slice().into())
            .map_err(err("sm4 seal"))?;
        let mut buf = data.clone();
        let mut counter = 0u64;
        rate(b, 3, || {
            if encrypt {
                counter += 1;
                buf.copy_from_slice(&data);
                gcm.encrypt_inout_detached(
                    &Array::from(iv_of(counter)),
                    &[],
                    buf.as_mut_slice().into(),
                )
                .map_err(err("sm4 seal"))?;
            } else {
                buf.copy_from_slice(&sealed);
                gcm.decrypt_inout_detached(&nonce0, &[], buf.as_mut_slice().into(), &tag)
                    .map_err(err("sm4 open"))?;
            }
            Ok(())
        })
    })
}

/// The AES-GCM and SM4-GCM lines; `mods` are kmshsm's and SoftHSMv2's sessions with their
/// keys.
pub(crate) fn aead_lines(
    cfg: &Cfg,
    mods: [(&Loaded, &CryptoKeys); 2],
    raw: &Raw,
    rows: &mut Vec<Row>,
) -> Res<()> {
    for (name, size, encrypt) in GCM_LINES {
        let mk = |i: usize| {
            let (m, keys) = mods[i];
            module_runner(&m.s, Ok(keys.aes), false, encrypt, size)
        };
        rows.push(line(
            cfg,
            name,
            1,
            Some(mk(0)),
            Some(mk(1)),
            Some(raw_aes(raw, encrypt, size)),
        ));
    }
    let (kms, _) = mods[0];
    let sm4 = sm4_key(&kms.s).map_err(|e| format!("kmshsm: {e}"));
    for (name, size, encrypt) in SM4_LINES {
        let soft: Runner = boxed(|_| Err("SoftHSMv2 has no SM4".into()));
        rows.push(line(
            cfg,
            name,
            1,
            Some(module_runner(&kms.s, sm4.clone(), true, encrypt, size)),
            Some(soft),
            Some(raw_sm4(encrypt, size)),
        ));
    }
    write_percall_csv(&cfg.out, rows)
}

/// `percall.csv` beside `results` (docs/performance.md describes the format): for each
/// AEAD line and the ECDSA signing lines, the payload size and the median cost of one call
/// in microseconds for kmshsm, the raw primitive and SoftHSMv2 (empty where not measured).
fn write_percall_csv(results: &Path, rows: &[Row]) -> Res<()> {
    let us = |c: &Cell| c.val().map_or(String::new(), |v| format!("{:.3}", 1e6 / v));
    let mut out =
        String::from("line,payload_bytes,us_per_call_kmshsm,us_per_call_raw,us_per_call_softhsm\n");
    let sizes = GCM_LINES
        .iter()
        .chain(SM4_LINES.iter())
        .map(|(n, size, _)| (*n, *size))
        .chain([
            ("C_Sign P-256 CKM_ECDSA_SHA256, 64 B", 64),
            (
                "C_Sign P-256 CKM_ECDSA of SHA-256(64 B) hashed by the client",
                32,
            ),
        ]);
    for (name, size) in sizes {
        let Some(row) = rows.iter().find(|r| r.op == name) else {
            continue;
        };
        out.push_str(&format!(
            "\"{}\",{size},{},{},{}\n",
            name,
            us(&row.kms),
            us(&row.raw),
            us(&row.soft)
        ));
    }
    let path = results.with_file_name("percall.csv");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("per-call costs written to {}", path.display());
    Ok(())
}

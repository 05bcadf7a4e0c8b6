//! The crypto phase's per-module key set: the keys generated on a fresh token, the signatures
//! and wrapped keys made once before timing, and the mechanism and key of each sign and
//! verify line.
//!
//! Set-up only: nothing here is timed; the lines themselves are in `crypto`.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};

use crate::keys::{aes_key, aes_template, ec_pair, oaep, pss, rsa_pair, short, MSG};
use crate::token::Loaded;
use crate::{err, Res};

/// Per-module state of the crypto phase.
pub(crate) struct CryptoKeys {
    pub(crate) sig_priv: ObjectHandle,
    sig_pub: ObjectHandle,
    ec_priv: ObjectHandle,
    ec_pub: ObjectHandle,
    pub(crate) aes: ObjectHandle,
    pub(crate) wrap_priv: ObjectHandle,
    pub(crate) wrapped_sha1: Vec<u8>,
    pub(crate) wrapped_sha256: Res<Vec<u8>>,
    pub(crate) sig_pkcs: Vec<u8>,
    pub(crate) sig_pss: Vec<u8>,
    pub(crate) sig_ec: Option<Vec<u8>>,
    pub(crate) sig_ec_digest: Vec<u8>,
}

pub(crate) fn crypto_keys(m: &Loaded) -> Res<CryptoKeys> {
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

pub(crate) fn sign_mech(kind: usize, keys: &CryptoKeys) -> (Mechanism<'static>, ObjectHandle) {
    match kind {
        0 => (Mechanism::Sha256RsaPkcs, keys.sig_priv),
        1 => (pss(), keys.sig_priv),
        2 => (Mechanism::EcdsaSha256, keys.ec_priv),
        _ => (Mechanism::Ecdsa, keys.ec_priv),
    }
}

pub(crate) fn verify_mech(kind: usize, keys: &CryptoKeys) -> (Mechanism<'static>, ObjectHandle) {
    match kind {
        0 => (Mechanism::Sha256RsaPkcs, keys.sig_pub),
        1 => (pss(), keys.sig_pub),
        2 => (Mechanism::EcdsaSha256, keys.ec_pub),
        _ => (Mechanism::Ecdsa, keys.ec_pub),
    }
}

pub(crate) fn unwrap_template() -> Vec<Attribute> {
    aes_template("unwrapped")
}

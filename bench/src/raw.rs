//! The raw-primitive column: aws-lc-rs keys, signatures and ciphertexts made once, so that
//! the crypto phase can time the same operations without PKCS#11.
//!
//! It must not touch either PKCS#11 module.

use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair as RsaKeyPair, KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};

use crate::keys::MSG;
use crate::{err, Res};

pub(crate) struct Raw {
    pub(crate) rsa: RsaKeyPair,
    pub(crate) ec: EcdsaKeyPair,
    pub(crate) rsa_pub: ParsedPublicKey,
    pub(crate) rsa_pss_pub: ParsedPublicKey,
    pub(crate) ec_pub: ParsedPublicKey,
    pub(crate) sig_pkcs: Vec<u8>,
    pub(crate) sig_pss: Vec<u8>,
    pub(crate) sig_ec: Vec<u8>,
    pub(crate) oaep: OaepPrivateDecryptingKey,
    pub(crate) ct_sha1: Vec<u8>,
    pub(crate) ct_sha256: Vec<u8>,
    pub(crate) gcm: LessSafeKey,
    pub(crate) rng: SystemRandom,
}

pub(crate) fn raw_setup() -> Res<Raw> {
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

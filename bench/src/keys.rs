//! PKCS#11 key objects and mechanisms shared by the phases: the key templates, the OAEP and
//! PSS parameter sets, the signed message, and small helpers around cryptoki calls.
//!
//! Identical for both modules: nothing here may depend on which module it talks to, and
//! nothing here is timed.

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::{err, Res};

/// DER of the P-256 curve OID, the CKA_EC_PARAMS of every EC key.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const MSG: [u8; 64] = [0x5a; 64];

pub(crate) fn rsa_pair(
    s: &Session,
    label: &str,
    unwrap: bool,
) -> Res<(ObjectHandle, ObjectHandle)> {
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

pub(crate) fn ec_pair(s: &Session, label: &str) -> Res<(ObjectHandle, ObjectHandle)> {
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

pub(crate) fn aes_template(label: &str) -> Vec<Attribute> {
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

pub(crate) fn aes_key(s: &Session, label: &str) -> Res<ObjectHandle> {
    let mut t = aes_template(label);
    t.push(Attribute::ValueLen(32.into()));
    s.generate_key(&Mechanism::AesKeyGen, &t)
        .map_err(err("C_GenerateKey(AES)"))
}

pub(crate) fn pss() -> Mechanism<'static> {
    Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    })
}

pub(crate) fn oaep(sha256: bool) -> Mechanism<'static> {
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
pub(crate) fn short(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, f) => format!("{f}: {rv:?}"),
        other => other.to_string(),
    }
}

pub(crate) fn id_bytes(i: usize) -> Vec<u8> {
    (i as u32).to_be_bytes().to_vec()
}

pub(crate) fn destroy(s: &Session, h: ObjectHandle) -> Res<()> {
    s.destroy_object(h).map_err(err("C_DestroyObject"))
}

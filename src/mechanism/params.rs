//! Mechanism parameters as safe values, and which C structure each mechanism takes.
//!
//! `ffi::raw` reads the caller's `CK_MECHANISM` according to `layout`, checking the
//! parameter's size, and hands back a `Param`. Mechanisms then validate values (hash
//! pairs, IV lengths, tag lengths). This module must not touch raw pointers.

use cryptoki_sys::*;

use crate::vendor;

/// The C structure a mechanism's parameter must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No parameter: `pParameter` NULL and length 0.
    None,
    /// A byte string (IVs, the SM2 distinguishing identifier, ...).
    Bytes,
    /// A byte string or nothing.
    OptionalBytes,
    Gcm,
    Ctr,
    Oaep,
    Pss,
    Ecdh1,
    RsaAesKeyWrap,
    /// `CK_EDDSA_PARAMS` or nothing (pure Ed25519).
    OptionalEddsa,
}

/// RSA-OAEP parameters (`CK_RSA_PKCS_OAEP_PARAMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaepParams {
    pub hash: CK_MECHANISM_TYPE,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub source: CK_RSA_PKCS_OAEP_SOURCE_TYPE,
    pub label: Vec<u8>,
}

/// RSA-PSS parameters (`CK_RSA_PKCS_PSS_PARAMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssParams {
    pub hash: CK_MECHANISM_TYPE,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub salt_len: u64,
}

/// AES-GCM parameters (`CK_GCM_PARAMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcmParams {
    pub iv: Vec<u8>,
    pub aad: Vec<u8>,
    pub tag_bits: u64,
}

/// ECDH parameters (`CK_ECDH1_DERIVE_PARAMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ecdh1Params {
    pub kdf: CK_EC_KDF_TYPE,
    pub shared_data: Vec<u8>,
    pub public_data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    None,
    Bytes(Vec<u8>),
    Gcm(GcmParams),
    Ctr {
        counter_bits: u64,
        block: [u8; 16],
    },
    Oaep(OaepParams),
    Pss(PssParams),
    Ecdh1(Ecdh1Params),
    RsaAesKeyWrap {
        aes_key_bits: u64,
        oaep: OaepParams,
    },
    /// `CK_EDDSA_PARAMS`: pre-hash flag and context data.
    Eddsa {
        prehash: bool,
        context: Vec<u8>,
    },
}

/// A mechanism as the caller passed it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub kind: CK_MECHANISM_TYPE,
    pub param: Param,
}

const fn v(x: u64) -> CK_MECHANISM_TYPE {
    x as CK_MECHANISM_TYPE
}

/// Which parameter structure `kind` takes; `None` for mechanisms the module lacks.
pub fn layout(kind: CK_MECHANISM_TYPE) -> Option<Layout> {
    use Layout::*;
    const SM2_SM3: CK_MECHANISM_TYPE = v(vendor::CKM_KMSHSM_SM2_SM3);
    const SM4_CBC: CK_MECHANISM_TYPE = v(vendor::CKM_KMSHSM_SM4_CBC);
    const SM4_CBC_PAD: CK_MECHANISM_TYPE = v(vendor::CKM_KMSHSM_SM4_CBC_PAD);
    const SM4_GCM: CK_MECHANISM_TYPE = v(vendor::CKM_KMSHSM_SM4_GCM);
    Some(match kind {
        CKM_AES_CBC | CKM_AES_CBC_PAD | SM4_CBC | SM4_CBC_PAD => Bytes,
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD | CKM_AES_KEY_WRAP_KWP => OptionalBytes,
        SM2_SM3 => OptionalBytes,
        CKM_AES_GCM | SM4_GCM => Gcm,
        CKM_AES_CTR => Ctr,
        CKM_RSA_PKCS_OAEP => Oaep,
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => Pss,
        CKM_ECDH1_DERIVE => Ecdh1,
        CKM_RSA_AES_KEY_WRAP => RsaAesKeyWrap,
        CKM_EDDSA => OptionalEddsa,
        CKM_DES_CBC | CKM_DES_CBC_PAD | CKM_DES3_CBC | CKM_DES3_CBC_PAD
            if crate::mechanism::registry::find(kind).is_some() =>
        {
            Bytes
        }
        _ if crate::mechanism::registry::find(kind).is_some() => None,
        _ => return Option::None,
    })
}

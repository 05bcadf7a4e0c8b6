//! Mechanism parameters as safe values, and which C structure each mechanism takes.
//!
//! `ffi::raw` reads the caller's `CK_MECHANISM` according to `layout`, checking the
//! parameter's size, and hands back a `Param`. Mechanisms then validate values (hash
//! pairs, IV lengths, tag lengths). This module must not touch raw pointers.

use crate::ck::*;

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
    /// `CK_KEY_DERIVATION_STRING_DATA` (concatenation, XOR, AES-ECB encrypt-data).
    StringData,
    /// A `CK_OBJECT_HANDLE` (`CKM_CONCATENATE_BASE_AND_KEY`).
    ObjectHandle,
    /// A `CK_ULONG` (`CK_EXTRACT_PARAMS`).
    Ulong,
    /// `CK_AES_CBC_ENCRYPT_DATA_PARAMS`.
    AesCbcEncryptData,
    /// `CK_SP800_108_KDF_PARAMS` (counter and double-pipeline modes).
    Sp800_108,
    /// `CK_SP800_108_FEEDBACK_KDF_PARAMS`.
    Sp800_108Feedback,
    /// `CK_HKDF_PARAMS`.
    Hkdf,
}

/// The encoding of a counter or a length in SP 800-108 PRF input
/// (`CK_SP800_108_COUNTER_FORMAT`, and the width and order of a DKM length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntFormat {
    pub little_endian: bool,
    pub width_bits: u64,
}

/// One `CK_PRF_DATA_PARAM`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrfData {
    /// `CK_SP800_108_ITERATION_VARIABLE`: with a counter format (counter mode) or
    /// without (feedback and double-pipeline modes).
    Iteration(Option<IntFormat>),
    /// `CK_SP800_108_COUNTER`.
    Counter(IntFormat),
    /// `CK_SP800_108_DKM_LENGTH`: the method and the encoding.
    DkmLength { method: u64, format: IntFormat },
    /// `CK_SP800_108_BYTE_ARRAY`.
    Bytes(Vec<u8>),
}

/// SP 800-108 parameters (`CK_SP800_108_KDF_PARAMS`, `CK_SP800_108_FEEDBACK_KDF_PARAMS`).
/// The additional derived keys' templates are read by the token, not kept here; only
/// their number is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbkdfParams {
    pub prf: MechType,
    pub data: Vec<PrfData>,
    /// The feedback mode's IV (empty when none).
    pub iv: Vec<u8>,
    pub additional_keys: usize,
}

/// Where an HKDF extraction takes its salt from (`ulSaltType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HkdfSalt {
    Null,
    Data(Vec<u8>),
    /// A key object, by handle: the token resolves and authorises it.
    Key(crate::ids::ObjectHandle),
}

/// `CK_HKDF_PARAMS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HkdfParams {
    pub extract: bool,
    pub expand: bool,
    pub hash: MechType,
    pub salt: HkdfSalt,
    pub info: Vec<u8>,
}

/// RSA-OAEP parameters (`CK_RSA_PKCS_OAEP_PARAMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaepParams {
    pub hash: MechType,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub source: CK_RSA_PKCS_OAEP_SOURCE_TYPE,
    pub label: Vec<u8>,
}

/// RSA-PSS parameters (`CK_RSA_PKCS_PSS_PARAMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssParams {
    pub hash: MechType,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub salt_len: u64,
}

/// Up to this many bytes, an [`Iv`] is kept inline.
const IV_INLINE: usize = 16;

/// An IV: inline up to 16 bytes (GCM's usual 12 among them), on the heap beyond. It is
/// copied from the caller and into the operation at every init, the cost of a one-shot
/// encryption of a few bytes (docs/performance.md, "Eighth pass"), so without an
/// allocation for the sizes applications use. Made only by [`Iv::new`], so the inline
/// length is always within its array.
#[derive(Clone, PartialEq, Eq)]
pub struct Iv(IvBytes);

#[derive(Clone, PartialEq, Eq)]
enum IvBytes {
    Inline { len: u8, bytes: [u8; IV_INLINE] },
    Heap(Vec<u8>),
}

impl Iv {
    pub fn new(bytes: &[u8]) -> Iv {
        Iv(match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= IV_INLINE => {
                let mut inline = [0u8; IV_INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                IvBytes::Inline { len, bytes: inline }
            }
            _ => IvBytes::Heap(bytes.to_vec()),
        })
    }
}

impl std::ops::Deref for Iv {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            // `new` keeps `len` within the array.
            IvBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            IvBytes::Heap(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for Iv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Iv").field(&&**self).finish()
    }
}

/// AES-GCM parameters (`CK_GCM_PARAMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcmParams {
    pub iv: Iv,
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
    /// An object handle inside a parameter (another key of the derivation).
    ObjectHandle(crate::ids::ObjectHandle),
    Ulong(u64),
    AesCbcEncryptData {
        iv: [u8; 16],
        data: Vec<u8>,
    },
    Kbkdf(KbkdfParams),
    Hkdf(HkdfParams),
}

impl Param {
    /// The handle of a key the parameter names besides the base key, which the token
    /// must resolve and authorise (`CKM_CONCATENATE_BASE_AND_KEY`, an HKDF salt key).
    pub(crate) fn other_key(&self) -> Option<crate::ids::ObjectHandle> {
        match self {
            Param::ObjectHandle(h) => Some(*h),
            Param::Hkdf(HkdfParams {
                salt: HkdfSalt::Key(h),
                ..
            }) => Some(*h),
            _ => None,
        }
    }
}

/// A mechanism as the caller passed it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub kind: MechType,
    pub param: Param,
}

/// Which parameter structure `kind` takes, if the module has it: mechanisms not listed take
/// none. Whether the module has `kind` at all is the registry's to say
/// (`registry::parameter_layout`), so that this file stays below the families that use it.
pub fn layout(kind: MechType) -> Layout {
    use Layout::*;
    const SM2_SM3: MechType = vendor::CKM_KMSHSM_SM2_SM3;
    const SM4_CBC: MechType = vendor::CKM_KMSHSM_SM4_CBC;
    const SM4_CBC_PAD: MechType = vendor::CKM_KMSHSM_SM4_CBC_PAD;
    const SM4_GCM: MechType = vendor::CKM_KMSHSM_SM4_GCM;
    match kind {
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
        CKM_CONCATENATE_BASE_AND_DATA
        | CKM_CONCATENATE_DATA_AND_BASE
        | CKM_XOR_BASE_AND_DATA
        | CKM_AES_ECB_ENCRYPT_DATA => StringData,
        CKM_CONCATENATE_BASE_AND_KEY => ObjectHandle,
        CKM_EXTRACT_KEY_FROM_KEY => Ulong,
        CKM_AES_CBC_ENCRYPT_DATA => AesCbcEncryptData,
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_DOUBLE_PIPELINE_KDF => Sp800_108,
        CKM_SP800_108_FEEDBACK_KDF => Sp800_108Feedback,
        CKM_HKDF_DERIVE | CKM_HKDF_DATA => Hkdf,
        CKM_DES_CBC | CKM_DES_CBC_PAD | CKM_DES3_CBC | CKM_DES3_CBC_PAD => Bytes,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Iv;

    #[test]
    fn an_iv_is_inline_up_to_sixteen_bytes_and_reads_back_the_same_either_way() {
        for len in [1usize, 12, 16, 17, 128] {
            let given: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let iv = Iv::new(&given);
            assert_eq!(&*iv, &given[..], "length {len}");
            assert_eq!(
                matches!(iv.0, super::IvBytes::Inline { .. }),
                len <= 16,
                "length {len}"
            );
        }
        assert!(Iv::new(&[]).is_empty());
    }
}

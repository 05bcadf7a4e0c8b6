//! The mechanism parameters of the C ABI (PKCS#11 3.0 §2 and the mechanism chapters):
//! `CK_MECHANISM` and the parameter structure its mechanism takes, read into
//! `MechanismArg`, and the SP 800-108 additional derived keys. Part of `ffi::raw`, under
//! its rules: every pointer is read through `param_struct`, `param_bytes` or
//! `param_array` with the length the caller gave, and each function's `# Safety` says
//! what its caller must guarantee. It must not judge the parameters beyond their shape;
//! the mechanisms do.

use std::ptr;

use cryptoki_sys::*;

use super::{param_bytes, param_iv, param_struct, read_struct, read_template_within};
use crate::error::{Error, Result};
use crate::ids::{MechType, ObjectHandle};
use crate::mechanism::params::{
    Ecdh1Params, GcmParams, HkdfParams, HkdfSalt, IntFormat, KbkdfParams, Layout, OaepParams,
    Param, PrfData, PssParams,
};
use crate::mechanism::{registry, MechanismArg};
use crate::object::attr::RawAttribute;

/// Most `CK_PRF_DATA_PARAM`s and additional derived keys one SP 800-108 parameter may
/// hold, so that a lying count cannot make the module allocate without bound.
const MAX_KDF_ITEMS: usize = 64;

/// `n` structures at `ptr` inside a mechanism parameter (at most `MAX_KDF_ITEMS`); a NULL
/// pointer with a non-zero count, or too many, is `CKR_MECHANISM_PARAM_INVALID`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `n` `T`s (any alignment) holding valid values.
unsafe fn param_array<T: Copy>(ptr: *const T, n: CK_ULONG) -> Result<Vec<T>> {
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_KDF_ITEMS)
        .ok_or(Error::MechanismParamInvalid)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Error::MechanismParamInvalid);
    }
    // SAFETY: not NULL, so readable for `n` valid structures (this function's
    // contract); each is read unaligned.
    Ok((0..n)
        .map(|i| unsafe { ptr::read_unaligned(ptr.add(i)) })
        .collect())
}

fn counter_format(f: CK_SP800_108_COUNTER_FORMAT) -> IntFormat {
    IntFormat {
        // CK_BBOOL: any non-zero value is true.
        little_endian: f.bLittleEndian != 0,
        width_bits: f.ulWidthInBits as u64,
    }
}

/// One `CK_PRF_DATA_PARAM`: each type's value must be exactly its structure (PKCS#11 3.0
/// §2.42.2); an iteration variable without a value is the feedback/pipeline form.
///
/// # Safety
/// `d.pValue` is NULL or valid for reads of `d.ulValueLen` bytes during the call.
unsafe fn prf_data(d: CK_PRF_DATA_PARAM) -> Result<PrfData> {
    let (p, len) = (d.pValue.cast_const(), d.ulValueLen);
    // SAFETY: every `param_*` call below reads `p`/`len`, valid by this function's
    // contract; the structures read are integer-only CK_SP800_108 formats.
    Ok(unsafe {
        match d.type_ {
            CK_SP800_108_ITERATION_VARIABLE if p.is_null() && len == 0 => PrfData::Iteration(None),
            CK_SP800_108_ITERATION_VARIABLE => {
                PrfData::Iteration(Some(counter_format(param_struct(p, len)?)))
            }
            CK_SP800_108_COUNTER => PrfData::Counter(counter_format(param_struct(p, len)?)),
            CK_SP800_108_DKM_LENGTH => {
                let f: CK_SP800_108_DKM_LENGTH_FORMAT = param_struct(p, len)?;
                PrfData::DkmLength {
                    method: f.dkmLengthMethod as u64,
                    format: IntFormat {
                        little_endian: f.bLittleEndian != 0,
                        width_bits: f.ulWidthInBits as u64,
                    },
                }
            }
            CK_SP800_108_BYTE_ARRAY if len > 0 => PrfData::Bytes(param_bytes(p, len)?),
            // An empty byte array, key handles (3.2) and unknown types.
            _ => return Err(Error::MechanismParamInvalid),
        }
    })
}

/// # Safety
/// `data` and `keys` are NULL or valid arrays of their counts, and every pointer inside
/// the `CK_PRF_DATA_PARAM`s is NULL or valid for its length, during the call.
unsafe fn kbkdf(
    prf: CK_MECHANISM_TYPE,
    data: (*const CK_PRF_DATA_PARAM, CK_ULONG),
    iv: Vec<u8>,
    keys: (*const CK_DERIVED_KEY, CK_ULONG),
) -> Result<KbkdfParams> {
    // SAFETY: the arrays and the values they point to are valid (this function's
    // contract).
    let data = unsafe { param_array(data.0, data.1) }?
        .into_iter()
        // SAFETY: as above: each pValue is NULL or valid for its length.
        .map(|d| unsafe { prf_data(d) })
        .collect::<Result<Vec<_>>>()?;
    // SAFETY: `keys` is NULL or an array of its count (this function's contract).
    let additional_keys = unsafe { param_array(keys.0, keys.1) }?.len();
    Ok(KbkdfParams {
        prf: MechType::from_raw(prf),
        data,
        iv,
        additional_keys,
    })
}

/// The additional keys of an SP 800-108 derivation (`CK_DERIVED_KEY`): each template, and
/// where its handle goes. Empty for every other mechanism. Every `phKey` must be writable.
///
/// # Safety
/// As `read_mechanism`; also, for the SP 800-108 mechanisms, each `CK_DERIVED_KEY`'s
/// template is valid as `read_template` requires. The returned `phKey` pointers are the
/// caller's: writing them needs the caller's own guarantee (`write`).
pub(in crate::ffi) unsafe fn read_derived_keys(
    ptr: *const CK_MECHANISM,
    budget: &mut super::TemplateBudget,
) -> Result<Vec<(Vec<RawAttribute>, *mut CK_OBJECT_HANDLE)>> {
    // SAFETY: NULL or a readable CK_MECHANISM (this function's contract).
    let m = unsafe { read_struct(ptr) }.ok_or(Error::ArgumentsBad("NULL pMechanism"))?;
    let (p, len) = (m.pParameter.cast_const(), m.ulParameterLen);
    let (keys, n) = match m.mechanism {
        CKM_SP800_108_COUNTER_KDF | CKM_SP800_108_DOUBLE_PIPELINE_KDF => {
            // SAFETY: the parameter is NULL or readable for its length (this function's
            // contract); the structure holds integers and pointers only.
            let k: CK_SP800_108_KDF_PARAMS = unsafe { param_struct(p, len) }?;
            (
                k.pAdditionalDerivedKeys.cast_const(),
                k.ulAdditionalDerivedKeys,
            )
        }
        CKM_SP800_108_FEEDBACK_KDF => {
            // SAFETY: as above.
            let k: CK_SP800_108_FEEDBACK_KDF_PARAMS = unsafe { param_struct(p, len) }?;
            (
                k.pAdditionalDerivedKeys.cast_const(),
                k.ulAdditionalDerivedKeys,
            )
        }
        _ => return Ok(Vec::new()),
    };
    // Every additional key's template counts against the call's one budget.
    // SAFETY: the additional keys are NULL or an array of their count (this function's
    // contract).
    unsafe { param_array(keys, n) }?
        .into_iter()
        .map(|k| {
            if k.phKey.is_null() {
                return Err(Error::MechanismParamInvalid);
            }
            // SAFETY: each additional key's template is valid as read_template requires
            // (this function's contract).
            let template = unsafe {
                read_template_within(k.pTemplate.cast_const(), k.ulAttributeCount, budget)
            }
            .map_err(|e| match e {
                Error::ArgumentsBad(_) => Error::MechanismParamInvalid,
                e => e,
            })?;
            Ok((template, k.phKey))
        })
        .collect()
}

/// # Safety
/// `p.pSourceData` is NULL or valid for reads of `p.ulSourceDataLen` bytes.
unsafe fn oaep(p: CK_RSA_PKCS_OAEP_PARAMS) -> Result<OaepParams> {
    Ok(OaepParams {
        hash: MechType::from_raw(p.hashAlg),
        mgf: p.mgf,
        source: p.source,
        // SAFETY: this function's contract.
        label: unsafe { param_bytes(p.pSourceData, p.ulSourceDataLen) }?,
    })
}

/// The caller's `CK_MECHANISM`, its parameter decoded by the layout the mechanism takes
/// (`mechanism::registry::parameter_layout`). Unknown mechanisms are `CKR_MECHANISM_INVALID`; a
/// parameter of the wrong size or with bad pointers is `CKR_MECHANISM_PARAM_INVALID`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of a `CK_MECHANISM`, whose `pParameter` is NULL or
/// valid for reads of `ulParameterLen` bytes; every pointer inside the parameter
/// structure the mechanism takes (PKCS#11 3.0 §2) is NULL or valid for reads of the
/// length beside it; none of it is written by anyone else during the call.
pub(in crate::ffi) unsafe fn read_mechanism(ptr: *const CK_MECHANISM) -> Result<MechanismArg> {
    // `let ... else`, not `ok_or`: an `Error` made and dropped on every call costs its
    // drop glue on the per-call path.
    // SAFETY: NULL or a readable CK_MECHANISM (this function's contract).
    let Some(m) = (unsafe { read_struct(ptr) }) else {
        return Err(Error::ArgumentsBad("NULL pMechanism"));
    };
    let kind = MechType::from_raw(m.mechanism);
    let Some(layout) = registry::parameter_layout(kind) else {
        return Err(Error::MechanismInvalid);
    };
    let (p, len) = (m.pParameter.cast_const(), m.ulParameterLen);
    // SAFETY: every decoder called in this match reads the parameter or a buffer it
    // points to, each NULL or valid for its stated length (this function's contract);
    // the structures read hold integers and pointers only, and everything is copied out
    // before the call ends.
    let param = unsafe {
        match layout {
            Layout::None if len == 0 => Param::None,
            Layout::None => return Err(Error::MechanismParamInvalid),
            Layout::OptionalBytes if len == 0 => Param::None,
            Layout::Bytes | Layout::OptionalBytes => Param::Bytes(param_bytes(p, len)?),
            Layout::Gcm => {
                let g: CK_GCM_PARAMS = param_struct(p, len)?;
                Param::Gcm(GcmParams {
                    iv: param_iv(g.pIv.cast(), g.ulIvLen)?,
                    aad: param_bytes(g.pAAD.cast(), g.ulAADLen)?,
                    tag_bits: g.ulTagBits as u64,
                })
            }
            Layout::Ctr => {
                let c: CK_AES_CTR_PARAMS = param_struct(p, len)?;
                Param::Ctr {
                    counter_bits: c.ulCounterBits as u64,
                    block: c.cb,
                }
            }
            Layout::Oaep => Param::Oaep(oaep(param_struct(p, len)?)?),
            Layout::Pss => {
                let s: CK_RSA_PKCS_PSS_PARAMS = param_struct(p, len)?;
                Param::Pss(PssParams {
                    hash: MechType::from_raw(s.hashAlg),
                    mgf: s.mgf,
                    salt_len: s.sLen as u64,
                })
            }
            Layout::Ecdh1 => {
                let e: CK_ECDH1_DERIVE_PARAMS = param_struct(p, len)?;
                Param::Ecdh1(Ecdh1Params {
                    kdf: e.kdf,
                    shared_data: param_bytes(e.pSharedData.cast(), e.ulSharedDataLen)?,
                    public_data: param_bytes(e.pPublicData.cast(), e.ulPublicDataLen)?,
                })
            }
            Layout::OptionalEddsa if len == 0 => Param::None,
            Layout::OptionalEddsa => {
                let e: CK_EDDSA_PARAMS = param_struct(p, len)?;
                // RFC 8032 contexts are at most 255 bytes: a longer length is refused
                // before anything is read.
                if e.ulContextDataLen > 255 {
                    return Err(Error::MechanismParamInvalid);
                }
                Param::Eddsa {
                    // CK_BBOOL: any non-zero value is true.
                    prehash: e.phFlag != 0,
                    context: param_bytes(e.pContextData.cast(), e.ulContextDataLen)?,
                }
            }
            Layout::StringData => {
                let d: CK_KEY_DERIVATION_STRING_DATA = param_struct(p, len)?;
                Param::Bytes(param_bytes(d.pData.cast(), d.ulLen)?)
            }
            Layout::ObjectHandle => {
                let h: CK_OBJECT_HANDLE = param_struct(p, len)?;
                Param::ObjectHandle(ObjectHandle::from_raw(h))
            }
            Layout::Ulong => {
                let n: CK_ULONG = param_struct(p, len)?;
                Param::Ulong(n as u64)
            }
            Layout::AesCbcEncryptData => {
                let c: CK_AES_CBC_ENCRYPT_DATA_PARAMS = param_struct(p, len)?;
                Param::AesCbcEncryptData {
                    iv: c.iv,
                    data: param_bytes(c.pData.cast(), c.length)?,
                }
            }
            Layout::Sp800_108 => {
                let k: CK_SP800_108_KDF_PARAMS = param_struct(p, len)?;
                Param::Kbkdf(kbkdf(
                    k.prfType,
                    (k.pDataParams.cast_const(), k.ulNumberOfDataParams),
                    Vec::new(),
                    (
                        k.pAdditionalDerivedKeys.cast_const(),
                        k.ulAdditionalDerivedKeys,
                    ),
                )?)
            }
            Layout::Sp800_108Feedback => {
                let k: CK_SP800_108_FEEDBACK_KDF_PARAMS = param_struct(p, len)?;
                Param::Kbkdf(kbkdf(
                    k.prfType,
                    (k.pDataParams.cast_const(), k.ulNumberOfDataParams),
                    param_bytes(k.pIV.cast(), k.ulIVLen)?,
                    (
                        k.pAdditionalDerivedKeys.cast_const(),
                        k.ulAdditionalDerivedKeys,
                    ),
                )?)
            }
            Layout::Hkdf => {
                let h: CK_HKDF_PARAMS = param_struct(p, len)?;
                let salt = match h.ulSaltType {
                    // The salt belongs to the extract step: without it the salt fields are not
                    // read (pkcs11-provider's TLS 1.3 expand-label sends ulSaltType 0).
                    _ if h.bExtract == 0 => HkdfSalt::Null,
                    CKF_HKDF_SALT_NULL => HkdfSalt::Null,
                    // An empty salt is RFC 5869's default (HMAC pads it to zeros anyway).
                    CKF_HKDF_SALT_DATA => HkdfSalt::Data(param_bytes(h.pSalt.cast(), h.ulSaltLen)?),
                    CKF_HKDF_SALT_KEY => HkdfSalt::Key(ObjectHandle::from_raw(h.hSaltKey)),
                    _ => return Err(Error::MechanismParamInvalid),
                };
                Param::Hkdf(HkdfParams {
                    extract: h.bExtract != 0,
                    expand: h.bExpand != 0,
                    hash: MechType::from_raw(h.prfHashMechanism),
                    salt,
                    info: param_bytes(h.pInfo.cast(), h.ulInfoLen)?,
                })
            }
            Layout::RsaAesKeyWrap => {
                let w: CK_RSA_AES_KEY_WRAP_PARAMS = param_struct(p, len)?;
                let inner =
                    read_struct(w.pOAEPParams.cast_const()).ok_or(Error::MechanismParamInvalid)?;
                Param::RsaAesKeyWrap {
                    aes_key_bits: w.ulAESKeyBits as u64,
                    oaep: oaep(inner)?,
                }
            }
        }
    };
    Ok(MechanismArg { kind, param })
}

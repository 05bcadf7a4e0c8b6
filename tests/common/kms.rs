//! Helpers for the KMS "bring your own key" tests (tests/kms_*.rs): the vendor constants of
//! `include/kmshsm.h`, templates for EXTERNAL keys and import parameters, the raw
//! `C_UnwrapKey` that ImportKeyMaterial is (cryptoki 0.12 cannot express
//! `CKM_RSA_AES_KEY_WRAP`), and the user's side of the import done with the `openssl`
//! command line only, independently of the module: key material generation, the wrapping
//! of every kms-docs algorithm (including the asymmetric envelope
//! Cipher(ESK) || Cipher(TAKpriv) of kms-docs 004), and the checks that imported keys
//! compute what `openssl` computes with the original material.
//!
//! Policy (what must be refused, with which code) lives in the test files, not here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use cryptoki::context::Function;
use cryptoki::error::{Error, Rv, RvError};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

// ---------------------------------------------------------------------------------------
// Vendor constants (include/kmshsm.h)

/// CKx_VENDOR_DEFINED | KMSHSM_VENDOR_TAG.
pub const KMSHSM: CK_ULONG = 0x8000_0000 | 0x4B4D_0000;

pub const CKA_KMSHSM_KEY_ID: CK_ATTRIBUTE_TYPE = KMSHSM | 0x01;
pub const CKA_KMSHSM_ORIGIN: CK_ATTRIBUTE_TYPE = KMSHSM | 0x02;
pub const CKA_KMSHSM_KEY_STATE: CK_ATTRIBUTE_TYPE = KMSHSM | 0x03;
pub const CKA_KMSHSM_KEY_SPEC: CK_ATTRIBUTE_TYPE = KMSHSM | 0x04;
pub const CKA_KMSHSM_KEY_USAGE: CK_ATTRIBUTE_TYPE = KMSHSM | 0x05;
pub const CKA_KMSHSM_MATERIAL_EXPIRY: CK_ATTRIBUTE_TYPE = KMSHSM | 0x06;
pub const CKA_KMSHSM_IMPORT_TARGET: CK_ATTRIBUTE_TYPE = KMSHSM | 0x07;
pub const CKA_KMSHSM_WRAPPING_ALGORITHM: CK_ATTRIBUTE_TYPE = KMSHSM | 0x08;
pub const CKA_KMSHSM_IMPORT_TOKEN: CK_ATTRIBUTE_TYPE = KMSHSM | 0x09;
pub const CKA_KMSHSM_TOKEN_EXPIRY: CK_ATTRIBUTE_TYPE = KMSHSM | 0x0A;

pub const ORIGIN_KMS: u64 = 1;
pub const ORIGIN_EXTERNAL: u64 = 2;

pub const STATE_ENABLED: u64 = 1;
pub const STATE_DISABLED: u64 = 2;
pub const STATE_PENDING_IMPORT: u64 = 3;
pub const STATE_PENDING_DELETION: u64 = 4;

pub const USAGE_ENCRYPT_DECRYPT: u64 = 1;
pub const USAGE_SIGN_VERIFY: u64 = 2;

pub const WRAP_RSAES_PKCS1_V1_5: u64 = 1;
pub const WRAP_RSAES_OAEP_SHA_1: u64 = 2;
pub const WRAP_RSAES_OAEP_SHA_256: u64 = 3;
pub const WRAP_RSA_AES_KEY_WRAP_SHA_1: u64 = 4;
pub const WRAP_RSA_AES_KEY_WRAP_SHA_256: u64 = 5;
pub const WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD: u64 = 6;
pub const WRAP_SM2PKE: u64 = 7;
pub const WRAP_SM2PKE_SM4_ECB: u64 = 8;
pub const ALL_WRAPPING_ALGORITHMS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

pub const CKK_KMSHSM_SM2: CK_KEY_TYPE = KMSHSM | 0x01;
pub const CKK_KMSHSM_SM4: CK_KEY_TYPE = KMSHSM | 0x02;

pub const CKM_KMSHSM_SM2_KEY_PAIR_GEN: CK_MECHANISM_TYPE = KMSHSM | 0x01;
pub const CKM_KMSHSM_SM2_SM3: CK_MECHANISM_TYPE = KMSHSM | 0x02;
pub const CKM_KMSHSM_SM2_ENCRYPT: CK_MECHANISM_TYPE = KMSHSM | 0x03;
pub const CKM_KMSHSM_SM4_KEY_GEN: CK_MECHANISM_TYPE = KMSHSM | 0x05;
pub const CKM_KMSHSM_SM4_CBC_PAD: CK_MECHANISM_TYPE = KMSHSM | 0x08;
pub const CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD: CK_MECHANISM_TYPE = KMSHSM | 0x10;
pub const CKM_KMSHSM_SM2PKE_SM4_ECB: CK_MECHANISM_TYPE = KMSHSM | 0x11;

pub const CKR_KMSHSM_INVALID_KEY_MATERIAL: RvError = RvError::VendorDefined(KMSHSM | 0x01);
pub const CKR_KMSHSM_INVALID_IMPORT_TOKEN: RvError = RvError::VendorDefined(KMSHSM | 0x02);
pub const CKR_KMSHSM_EXPIRED_IMPORT_TOKEN: RvError = RvError::VendorDefined(KMSHSM | 0x03);
pub const CKR_KMSHSM_UNSUPPORTED_ORIGIN: RvError = RvError::VendorDefined(KMSHSM | 0x04);
pub const CKR_KMSHSM_KEY_NOT_FOUND: RvError = RvError::VendorDefined(KMSHSM | 0x05);
pub const CKR_KMSHSM_INCORRECT_KEY_STATE: RvError = RvError::VendorDefined(KMSHSM | 0x06);

/// Environment variable shifting the module's clock (debug builds), in seconds.
pub const CLOCK_OFFSET_ENV: &str = "KMSHSM_TEST_CLOCK_OFFSET";
/// Lifetime of import parameters (kms-docs: 24 hours).
pub const TOKEN_LIFETIME: u64 = 86_400;

/// DER OIDs of CKA_EC_PARAMS.
pub const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
pub const OID_SM2: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];

/// The SM2 distinguishing identifier the module signs with by default.
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

// ---------------------------------------------------------------------------------------
// Clock

/// Seconds since the epoch by the system clock (the module adds the offset to the same).
pub fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Moves the module's clock `seconds` ahead of the system clock (read at every clock read).
pub fn set_clock_offset(seconds: i64) {
    std::env::set_var(CLOCK_OFFSET_ENV, seconds.to_string());
}

// ---------------------------------------------------------------------------------------
// Key specs

/// The KMS key specs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    Aes256,
    Sm4,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP256K,
    EcSm2,
}

impl Spec {
    pub const ALL: [Spec; 8] = [
        Spec::Aes256,
        Spec::Sm4,
        Spec::Rsa2048,
        Spec::Rsa3072,
        Spec::Rsa4096,
        Spec::EcP256,
        Spec::EcP256K,
        Spec::EcSm2,
    ];

    pub fn code(self) -> u64 {
        Spec::ALL.iter().position(|s| *s == self).unwrap() as u64 + 1
    }

    pub fn symmetric(self) -> bool {
        matches!(self, Spec::Aes256 | Spec::Sm4)
    }

    pub fn class(self) -> ObjectClass {
        if self.symmetric() {
            ObjectClass::SECRET_KEY
        } else {
            ObjectClass::PRIVATE_KEY
        }
    }

    pub fn key_type(self) -> KeyType {
        match self {
            Spec::Aes256 => KeyType::AES,
            Spec::Sm4 => KeyType::new_vendor_defined(CKK_KMSHSM_SM4).unwrap(),
            Spec::Rsa2048 | Spec::Rsa3072 | Spec::Rsa4096 => KeyType::RSA,
            Spec::EcP256 | Spec::EcP256K => KeyType::EC,
            Spec::EcSm2 => KeyType::new_vendor_defined(CKK_KMSHSM_SM2).unwrap(),
        }
    }

    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            Spec::Rsa2048 => Some(2048),
            Spec::Rsa3072 => Some(3072),
            Spec::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The DER OID of the curve of an EC/SM2 spec.
    pub fn ec_params(self) -> Option<&'static [u8]> {
        match self {
            Spec::EcP256 => Some(OID_P256),
            Spec::EcP256K => Some(OID_SECP256K1),
            Spec::EcSm2 => Some(OID_SM2),
            _ => None,
        }
    }

    /// Whether the contract lets `alg` import material of this spec.
    pub fn accepts(self, alg: u64) -> bool {
        match self {
            Spec::Aes256 | Spec::Sm4 => matches!(alg, 1..=5 | 7),
            Spec::EcSm2 => alg == 8,
            _ => matches!(alg, 4..=6),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Attributes

pub fn vendor_bytes(ty: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Attribute {
    Attribute::VendorDefined((AttributeType::VendorDefined(ty), value.to_vec()))
}

pub fn vendor_ulong(ty: CK_ATTRIBUTE_TYPE, value: u64) -> Attribute {
    vendor_bytes(ty, &(value as CK_ULONG).to_ne_bytes())
}

/// One attribute's raw bytes, or `None` when the module does not give it (absent,
/// sensitive or invalid for the object). Read through the C ABI, so that values cryptoki
/// cannot parse (vendor mechanisms in CKA_ALLOWED_MECHANISMS) come back as they are.
pub fn read_bytes(
    session: &Session,
    object: ObjectHandle,
    ty: CK_ATTRIBUTE_TYPE,
) -> Option<Vec<u8>> {
    let raw = super::raw::Raw::load();
    let (rv, lens) = raw.get_attributes(session.handle(), object.handle(), &[ty], 0);
    match rv {
        Ok(()) => {}
        Err(RvError::AttributeSensitive | RvError::AttributeTypeInvalid) => return None,
        Err(e) => panic!("C_GetAttributeValue({ty:#x}) length query: {e:?}"),
    }
    let len = lens[0].0;
    if len == CK_UNAVAILABLE_INFORMATION {
        return None;
    }
    let (rv, values) = raw.get_attributes(session.handle(), object.handle(), &[ty], len as usize);
    rv.unwrap_or_else(|e| panic!("C_GetAttributeValue({ty:#x}): {e:?}"));
    Some(values.into_iter().next().unwrap().1)
}

pub fn read_ulong(session: &Session, object: ObjectHandle, ty: CK_ATTRIBUTE_TYPE) -> Option<u64> {
    let bytes = read_bytes(session, object, ty)?;
    assert_eq!(
        bytes.len(),
        8,
        "attribute {ty:#x} is not a CK_ULONG: {bytes:?}"
    );
    Some(u64::from_ne_bytes(bytes.try_into().unwrap()))
}

pub fn read_bool(session: &Session, object: ObjectHandle, ty: CK_ATTRIBUTE_TYPE) -> Option<bool> {
    let bytes = read_bytes(session, object, ty)?;
    assert_eq!(bytes.len(), 1, "attribute {ty:#x} is not a CK_BBOOL");
    Some(bytes[0] != 0)
}

/// A vendor CK_ULONG attribute that must be present.
pub fn vendor_value(session: &Session, object: ObjectHandle, ty: CK_ATTRIBUTE_TYPE) -> u64 {
    read_ulong(session, object, ty).unwrap_or_else(|| panic!("attribute {ty:#x} missing"))
}

pub fn key_id(session: &Session, object: ObjectHandle) -> String {
    let bytes = read_bytes(session, object, CKA_KMSHSM_KEY_ID).expect("CKA_KMSHSM_KEY_ID missing");
    String::from_utf8(bytes).expect("KeyId is UTF-8")
}

pub fn state(session: &Session, object: ObjectHandle) -> u64 {
    vendor_value(session, object, CKA_KMSHSM_KEY_STATE)
}

pub fn origin(session: &Session, object: ObjectHandle) -> u64 {
    vendor_value(session, object, CKA_KMSHSM_ORIGIN)
}

pub fn set_state(
    session: &Session,
    object: ObjectHandle,
    state: u64,
) -> cryptoki::error::Result<()> {
    session.update_attributes(object, &[vendor_ulong(CKA_KMSHSM_KEY_STATE, state)])
}

/// Whether `text` is a KeyId: `^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$`.
pub fn is_key_id(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        })
}

/// The key objects (not import wrapping keys) whose KeyId is `id`.
pub fn objects_of_key(session: &Session, id: &str) -> Vec<ObjectHandle> {
    session
        .find_objects(&[vendor_bytes(CKA_KMSHSM_KEY_ID, id.as_bytes())])
        .expect("C_FindObjects")
        .into_iter()
        .filter(|h| read_bytes(session, *h, CKA_KMSHSM_IMPORT_TARGET).is_none())
        .collect()
}

/// The public object of the asymmetric key `id`.
pub fn public_half(session: &Session, id: &str) -> ObjectHandle {
    let found: Vec<ObjectHandle> = objects_of_key(session, id)
        .into_iter()
        .filter(|h| read_ulong(session, *h, CKA_CLASS) == Some(CKO_PUBLIC_KEY))
        .collect();
    assert_eq!(found.len(), 1, "public objects of key {id}: {found:?}");
    found[0]
}

/// The private and the public object of the asymmetric key `id`.
pub fn halves(session: &Session, id: &str) -> (ObjectHandle, ObjectHandle) {
    let private = objects_of_key(session, id)
        .into_iter()
        .find(|h| read_ulong(session, *h, CKA_CLASS) == Some(CKO_PRIVATE_KEY))
        .expect("the private half");
    (private, public_half(session, id))
}

// ---------------------------------------------------------------------------------------
// EXTERNAL keys (CreateKey with Origin EXTERNAL)

/// Template of an EXTERNAL key without material: class, key type, origin, spec, usage
/// flags fitting the spec, a token object.
pub fn external_template(spec: Spec, label: &str) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(spec.class()),
        Attribute::KeyType(spec.key_type()),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_EXTERNAL),
        vendor_ulong(CKA_KMSHSM_KEY_SPEC, spec.code()),
    ];
    if spec.symmetric() {
        t.extend([Attribute::Encrypt(true), Attribute::Decrypt(true)]);
    } else {
        t.push(Attribute::Sign(true));
    }
    t
}

/// CreateKey(Origin EXTERNAL): a PendingImport key of `spec`.
pub fn create_external(session: &Session, spec: Spec, label: &str) -> ObjectHandle {
    session
        .create_object(&external_template(spec, label))
        .unwrap_or_else(|e| panic!("C_CreateObject of an EXTERNAL {spec:?} key: {e}"))
}

// ---------------------------------------------------------------------------------------
// GetParametersForImport

/// Import parameters as the module hands them out.
#[derive(Debug, Clone)]
pub struct ImportParams {
    pub public: ObjectHandle,
    pub private: ObjectHandle,
    pub alg: u64,
    pub token: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the wrapping public key.
    pub spki: Vec<u8>,
}

/// The key-pair generation mechanism of the wrapping key of `alg`.
pub fn wrapping_keygen(alg: u64) -> Mechanism<'static> {
    if matches!(alg, WRAP_SM2PKE | WRAP_SM2PKE_SM4_ECB) {
        vendor_mechanism(CKM_KMSHSM_SM2_KEY_PAIR_GEN)
    } else {
        Mechanism::RsaPkcsKeyPairGen
    }
}

/// Public and private templates of GetParametersForImport(target, alg).
pub fn params_templates(target: &str, alg: u64) -> (Vec<Attribute>, Vec<Attribute>) {
    let mut public = vec![Attribute::Token(true)];
    if !matches!(alg, WRAP_SM2PKE | WRAP_SM2PKE_SM4_ECB) {
        public.push(Attribute::ModulusBits(2048.into()));
    }
    let private = vec![
        Attribute::Token(true),
        vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, target.as_bytes()),
        vendor_ulong(CKA_KMSHSM_WRAPPING_ALGORITHM, alg),
    ];
    (public, private)
}

pub fn try_get_params(
    session: &Session,
    target: &str,
    alg: u64,
) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    let (public, private) = params_templates(target, alg);
    session.generate_key_pair(&wrapping_keygen(alg), &public, &private)
}

/// GetParametersForImport(target, alg), reading the token and the public key back.
pub fn get_params(session: &Session, target: &str, alg: u64) -> ImportParams {
    let (public, private) = try_get_params(session, target, alg)
        .unwrap_or_else(|e| panic!("GetParametersForImport({target}, alg {alg}): {e}"));
    ImportParams {
        public,
        private,
        alg,
        token: read_bytes(session, private, CKA_KMSHSM_IMPORT_TOKEN)
            .expect("no CKA_KMSHSM_IMPORT_TOKEN on the wrapping private key"),
        spki: read_bytes(session, public, CKA_PUBLIC_KEY_INFO)
            .expect("no CKA_PUBLIC_KEY_INFO on the wrapping public key"),
    }
}

// ---------------------------------------------------------------------------------------
// ImportKeyMaterial (C_UnwrapKey)

/// The mechanism of an import, as plain values so tests can alter it.
#[derive(Clone, Copy, Debug)]
pub struct UnwrapMech {
    pub ty: CK_MECHANISM_TYPE,
    /// OAEP hash (and MGF1 with the same hash), for OAEP and RSA-AES key wrap.
    pub oaep_hash: Option<CK_MECHANISM_TYPE>,
    /// ulAESKeyBits of CK_RSA_AES_KEY_WRAP_PARAMS (RSA-AES key wrap only).
    pub aes_bits: Option<CK_ULONG>,
}

/// The mechanism the contract assigns to wrapping algorithm `alg`.
pub fn mechanism_of(alg: u64) -> UnwrapMech {
    let m = |ty, oaep_hash, aes_bits| UnwrapMech {
        ty,
        oaep_hash,
        aes_bits,
    };
    match alg {
        WRAP_RSAES_PKCS1_V1_5 => m(CKM_RSA_PKCS, None, None),
        WRAP_RSAES_OAEP_SHA_1 => m(CKM_RSA_PKCS_OAEP, Some(CKM_SHA_1), None),
        WRAP_RSAES_OAEP_SHA_256 => m(CKM_RSA_PKCS_OAEP, Some(CKM_SHA256), None),
        WRAP_RSA_AES_KEY_WRAP_SHA_1 => m(CKM_RSA_AES_KEY_WRAP, Some(CKM_SHA_1), Some(256)),
        WRAP_RSA_AES_KEY_WRAP_SHA_256 => m(CKM_RSA_AES_KEY_WRAP, Some(CKM_SHA256), Some(256)),
        WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD => m(
            CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD,
            None,
            None,
        ),
        WRAP_SM2PKE => m(CKM_KMSHSM_SM2_ENCRYPT, None, None),
        WRAP_SM2PKE_SM4_ECB => m(CKM_KMSHSM_SM2PKE_SM4_ECB, None, None),
        other => panic!("no wrapping algorithm {other}"),
    }
}

fn mgf_of(hash: CK_MECHANISM_TYPE) -> CK_RSA_PKCS_MGF_TYPE {
    match hash {
        CKM_SHA_1 => CKG_MGF1_SHA1,
        CKM_SHA224 => CKG_MGF1_SHA224,
        CKM_SHA256 => CKG_MGF1_SHA256,
        CKM_SHA384 => CKG_MGF1_SHA384,
        CKM_SHA512 => CKG_MGF1_SHA512,
        other => panic!("no MGF1 for hash {other:#x}"),
    }
}

/// C_UnwrapKey through the C ABI (the mechanism parameters cryptoki cannot express).
pub fn unwrap_raw(
    session: &Session,
    mech: &UnwrapMech,
    unwrapping: ObjectHandle,
    wrapped: &[u8],
    template: &[Attribute],
) -> cryptoki::error::Result<ObjectHandle> {
    let mut oaep = mech.oaep_hash.map(|hash| CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: hash,
        mgf: mgf_of(hash),
        source: CKZ_DATA_SPECIFIED,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    });
    let mut kw = CK_RSA_AES_KEY_WRAP_PARAMS {
        ulAESKeyBits: mech.aes_bits.unwrap_or(0),
        pOAEPParams: oaep
            .as_mut()
            .map_or(std::ptr::null_mut(), |p| p as *mut CK_RSA_PKCS_OAEP_PARAMS),
    };
    let (param, len): (*mut std::ffi::c_void, usize) = match (mech.aes_bits, oaep.as_mut()) {
        (Some(_), _) => (
            &mut kw as *mut _ as *mut _,
            std::mem::size_of::<CK_RSA_AES_KEY_WRAP_PARAMS>(),
        ),
        (None, Some(p)) => (
            p as *mut _ as *mut _,
            std::mem::size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
        ),
        (None, None) => (std::ptr::null_mut(), 0),
    };
    let mut ck = CK_MECHANISM {
        mechanism: mech.ty,
        pParameter: param,
        ulParameterLen: len as CK_ULONG,
    };
    let mut attrs: Vec<CK_ATTRIBUTE> = template.iter().map(|a| a.into()).collect();
    let path = super::module_path();
    // SAFETY: the module under test, already loaded by cryptoki (the same library).
    let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }.expect("load module");
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: one output pointer.
    assert_eq!(unsafe { library.C_GetFunctionList(&mut list) }, CKR_OK);
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: every pointer (mechanism, parameters, data, template) is alive for the call.
    let rv = unsafe {
        (*list).C_UnwrapKey.unwrap()(
            session.handle(),
            &mut ck,
            unwrapping.handle(),
            wrapped.as_ptr() as *mut _,
            wrapped.len() as CK_ULONG,
            attrs.as_mut_ptr(),
            attrs.len() as CK_ULONG,
            &mut handle,
        )
    };
    match Rv::from(rv) {
        // SAFETY: the handle came from the module in this process.
        Rv::Ok => Ok(unsafe { ObjectHandle::new_from_raw(handle) }),
        Rv::Error(e) => Err(Error::Pkcs11(e, Function::UnwrapKey)),
    }
}

/// The unwrap template of ImportKeyMaterial.
pub fn import_template(token: &[u8], expiry: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![vendor_bytes(CKA_KMSHSM_IMPORT_TOKEN, token)];
    if let Some(e) = expiry {
        t.push(vendor_ulong(CKA_KMSHSM_MATERIAL_EXPIRY, e));
    }
    t
}

/// ImportKeyMaterial with the parameters' own algorithm and token.
pub fn import(
    session: &Session,
    params: &ImportParams,
    wrapped: &[u8],
    expiry: Option<u64>,
) -> cryptoki::error::Result<ObjectHandle> {
    unwrap_raw(
        session,
        &mechanism_of(params.alg),
        params.private,
        wrapped,
        &import_template(&params.token, expiry),
    )
}

/// The whole BYOK round: fresh import parameters for `key`, the material wrapped with
/// `openssl` under their public key, and the import.
pub fn import_with(
    session: &Session,
    work: &Work,
    key: ObjectHandle,
    alg: u64,
    material: &[u8],
    expiry: Option<u64>,
) -> cryptoki::error::Result<ObjectHandle> {
    let params = get_params(session, &key_id(session, key), alg);
    let wrapped = work.wrap(alg, &params.spki, material);
    import(session, &params, &wrapped, expiry)
}

// ---------------------------------------------------------------------------------------
// Mechanisms

pub fn vendor_mechanism(ty: CK_MECHANISM_TYPE) -> Mechanism<'static> {
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<u8>(
        MechanismType::new_vendor_defined(ty).unwrap(),
        None,
    ))
}

// ---------------------------------------------------------------------------------------
// The user's side, with the openssl command line

/// Key material as the user holds it.
#[derive(Clone, Debug)]
pub struct Material {
    pub spec: Spec,
    /// What is imported: raw key bytes (AES, SM4), PKCS#8 DER (RSA, EC), the 32-byte
    /// scalar d (SM2).
    pub bytes: Vec<u8>,
    /// PEM private key file (asymmetric specs).
    pub private_pem: Option<PathBuf>,
    /// PEM public key file (asymmetric specs).
    pub public_pem: Option<PathBuf>,
}

/// A scratch directory for the files handed to `openssl`.
pub struct Work {
    pub dir: PathBuf,
}

static FILE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `openssl`, failing the test with an install hint when it is missing, and with
/// its stderr when it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let program = super::require_tool("openssl", "openssl");
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Like [`openssl`], returning whether it succeeded and its combined output.
pub fn openssl_status(args: &[&str]) -> (bool, String) {
    let program = super::require_tool("openssl", "openssl");
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("run openssl");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

impl Work {
    pub fn new(env: &super::TestEnv) -> Work {
        let dir = env.dir.path().join("byok");
        std::fs::create_dir_all(&dir).unwrap();
        Work { dir }
    }

    /// A fresh file path in the scratch directory.
    pub fn path(&self, name: &str) -> String {
        let n = FILE_COUNTER.fetch_add(1, Ordering::SeqCst);
        // Processes may share the directory (many_processes.rs): the pid keeps their
        // files apart.
        self.dir
            .join(format!("{}-{n:04}-{name}", std::process::id()))
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn read(&self, path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    /// `n` random bytes from `openssl rand`.
    pub fn random(&self, n: usize) -> Vec<u8> {
        let out = openssl(&["rand", &n.to_string()]);
        assert_eq!(out.len(), n);
        out
    }

    /// Fresh key material of `spec`, generated by openssl.
    pub fn material(&self, spec: Spec) -> Material {
        let plain = |bytes| Material {
            spec,
            bytes,
            private_pem: None,
            public_pem: None,
        };
        let genpkey: Vec<String> = match spec {
            Spec::Aes256 => return plain(self.random(32)),
            Spec::Sm4 => return plain(self.random(16)),
            Spec::Rsa2048 | Spec::Rsa3072 | Spec::Rsa4096 => vec![
                "-algorithm".into(),
                "RSA".into(),
                "-pkeyopt".into(),
                format!("rsa_keygen_bits:{}", spec.rsa_bits().unwrap()),
            ],
            Spec::EcP256 | Spec::EcP256K => vec![
                "-algorithm".into(),
                "EC".into(),
                "-pkeyopt".into(),
                format!(
                    "ec_paramgen_curve:{}",
                    if spec == Spec::EcP256 {
                        "P-256"
                    } else {
                        "secp256k1"
                    }
                ),
                "-pkeyopt".into(),
                "ec_param_enc:named_curve".into(),
            ],
            Spec::EcSm2 => vec!["-algorithm".into(), "SM2".into()],
        };
        let private_pem = self.path("private.pem");
        let mut args: Vec<&str> = vec!["genpkey"];
        args.extend(genpkey.iter().map(String::as_str));
        args.extend(["-out", &private_pem]);
        openssl(&args);
        let public_pem = self.path("public.pem");
        openssl(&["pkey", "-in", &private_pem, "-pubout", "-out", &public_pem]);
        let bytes = if spec == Spec::EcSm2 {
            let text = openssl(&["pkey", "-in", &private_pem, "-noout", "-text"]);
            let d = text_field(&String::from_utf8(text).unwrap(), "priv");
            left_pad(&d, 32)
        } else {
            // RFC 3447 / RFC 5915 keys as PKCS#8 (RFC 5208), as kms-docs 004 asks.
            openssl(&[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                &private_pem,
                "-outform",
                "DER",
            ])
        };
        Material {
            spec,
            bytes,
            private_pem: Some(private_pem.into()),
            public_pem: Some(public_pem.into()),
        }
    }

    /// RSA encryption of `data` under the DER public key `spki` with `openssl pkeyutl`;
    /// `oaep_md` None is PKCS#1 v1.5.
    pub fn rsa_encrypt(&self, spki: &[u8], oaep_md: Option<&str>, data: &[u8]) -> Vec<u8> {
        let key = self.file("wrapping.der", spki);
        let input = self.file("plain.bin", data);
        let output = self.path("cipher.bin");
        let mut args = vec![
            "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", &key, "-in", &input,
            "-out", &output,
        ];
        let (md, mgf);
        match oaep_md {
            None => args.extend(["-pkeyopt", "rsa_padding_mode:pkcs1"]),
            Some(m) => {
                md = format!("rsa_oaep_md:{m}");
                mgf = format!("rsa_mgf1_md:{m}");
                args.extend(["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", &md]);
                args.extend(["-pkeyopt", &mgf]);
            }
        }
        openssl(&args);
        self.read(&output)
    }

    /// SM2 public-key encryption with `openssl pkeyutl`, converted from the DER
    /// (GM/T 0009) form openssl writes to C1 || C3 || C2.
    pub fn sm2_encrypt(&self, spki: &[u8], data: &[u8]) -> Vec<u8> {
        let key = self.file("wrapping.der", spki);
        let input = self.file("plain.bin", data);
        let output = self.path("cipher.der");
        openssl(&[
            "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", &key, "-in", &input,
            "-out", &output,
        ]);
        sm2_der_to_c1c3c2(&self.read(&output))
    }

    /// `openssl enc -<cipher> -K <key> [-iv <iv>] [-nopad]` of `data`.
    pub fn enc(
        &self,
        cipher: &str,
        key: &[u8],
        iv: Option<&[u8]>,
        pad: bool,
        data: &[u8],
    ) -> Vec<u8> {
        self.enc_dir(cipher, key, iv, pad, data, false)
    }

    /// `openssl enc -d ...`.
    pub fn dec(
        &self,
        cipher: &str,
        key: &[u8],
        iv: Option<&[u8]>,
        pad: bool,
        data: &[u8],
    ) -> Vec<u8> {
        self.enc_dir(cipher, key, iv, pad, data, true)
    }

    fn enc_dir(
        &self,
        cipher: &str,
        key: &[u8],
        iv: Option<&[u8]>,
        pad: bool,
        data: &[u8],
        decrypt: bool,
    ) -> Vec<u8> {
        let input = self.file("enc-in.bin", data);
        let output = self.path("enc-out.bin");
        let cipher = format!("-{cipher}");
        let key_hex = super::to_hex(key);
        let iv_hex = iv.map(super::to_hex);
        let mut args = vec![
            "enc",
            cipher.as_str(),
            "-K",
            &key_hex,
            "-in",
            &input,
            "-out",
            &output,
        ];
        if let Some(iv) = &iv_hex {
            args.extend(["-iv", iv]);
        }
        if !pad {
            args.push("-nopad");
        }
        if decrypt {
            args.push("-d");
        }
        openssl(&args);
        self.read(&output)
    }

    /// The encrypted key material of wrapping algorithm `alg` under the wrapping public key
    /// `spki`, made with openssl alone, in the formats of the kms-docs.
    pub fn wrap(&self, alg: u64, spki: &[u8], material: &[u8]) -> Vec<u8> {
        match alg {
            WRAP_RSAES_PKCS1_V1_5 => self.rsa_encrypt(spki, None, material),
            WRAP_RSAES_OAEP_SHA_1 => self.rsa_encrypt(spki, Some("sha1"), material),
            WRAP_RSAES_OAEP_SHA_256 => self.rsa_encrypt(spki, Some("sha256"), material),
            WRAP_RSA_AES_KEY_WRAP_SHA_1 | WRAP_RSA_AES_KEY_WRAP_SHA_256 => {
                // PKCS#11 CKM_RSA_AES_KEY_WRAP: OAEP(temporary AES-256 key) || KWP (RFC 5649).
                let md = if alg == WRAP_RSA_AES_KEY_WRAP_SHA_1 {
                    "sha1"
                } else {
                    "sha256"
                };
                let temporary = self.random(32);
                let mut out = self.rsa_encrypt(spki, Some(md), &temporary);
                out.extend(self.kwp(&temporary, material));
                out
            }
            WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD => {
                // kms-docs 004: Cipher(ESK) || Cipher(TAKpriv).
                let esk = self.random(32);
                let mut out = self.rsa_encrypt(spki, Some("sha256"), &esk);
                out.extend(self.enc("aes-256-ecb", &esk, None, true, material));
                out
            }
            WRAP_SM2PKE => self.sm2_encrypt(spki, material),
            WRAP_SM2PKE_SM4_ECB => {
                let esk = self.random(16);
                let mut out = self.sm2_encrypt(spki, &esk);
                out.extend(self.enc("sm4-ecb", &esk, None, false, material));
                out
            }
            other => panic!("no wrapping algorithm {other}"),
        }
    }

    /// AES key wrap with padding (RFC 5649) by `openssl enc -id-aes256-wrap-pad`.
    pub fn kwp(&self, kek: &[u8], data: &[u8]) -> Vec<u8> {
        self.enc(
            "id-aes256-wrap-pad",
            kek,
            Some(&[0xA6, 0x59, 0x59, 0xA6]),
            true,
            data,
        )
    }

    /// AES key wrap (RFC 3394) by `openssl enc -id-aes256-wrap`.
    pub fn kw(&self, kek: &[u8], data: &[u8]) -> Vec<u8> {
        self.enc("id-aes256-wrap", kek, Some(&[0xA6; 8]), true, data)
    }

    /// Verifies with `openssl dgst` a signature made by the module over `data`.
    /// `digest` is "sha256" or "sm3"; `signature` is in the form openssl reads (DER for
    /// ECDSA/SM2).
    pub fn verify(
        &self,
        public_pem: &Path,
        digest: &str,
        data: &[u8],
        signature: &[u8],
    ) -> (bool, String) {
        let data_file = self.file("signed.bin", data);
        let sig_file = self.file("signature.bin", signature);
        let digest = format!("-{digest}");
        let mut args = vec![
            "dgst",
            digest.as_str(),
            "-verify",
            public_pem.to_str().unwrap(),
            "-signature",
            &sig_file,
        ];
        let distid = format!("distid:{SM2_DEFAULT_ID}");
        if digest == "-sm3" {
            args.extend(["-sigopt", &distid]);
        }
        args.push(&data_file);
        openssl_status(&args)
    }
}

/// The hex block labelled `label:` in `openssl pkey -text` output.
pub fn text_field(text: &str, label: &str) -> Vec<u8> {
    let head = format!("{label}:");
    let mut lines = text.lines().skip_while(|l| l.trim() != head);
    assert!(lines.next().is_some(), "no {label} in:\n{text}");
    let hex: String = lines
        .take_while(|l| {
            l.starts_with(' ') && l.trim().chars().all(|c| c.is_ascii_hexdigit() || c == ':')
        })
        .flat_map(|l| l.trim().chars().filter(|c| *c != ':').collect::<Vec<_>>())
        .collect();
    super::hex(&hex)
}

/// `bytes` as an unsigned big-endian number of exactly `len` bytes.
pub fn left_pad(bytes: &[u8], len: usize) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let trimmed = &bytes[start..];
    assert!(
        trimmed.len() <= len,
        "{} bytes do not fit in {len}",
        trimmed.len()
    );
    let mut out = vec![0u8; len - trimmed.len()];
    out.extend_from_slice(trimmed);
    out
}

// ---------------------------------------------------------------------------------------
// A small DER reader and writer

/// Reads one DER TLV: (tag, contents, rest).
pub fn der_read(der: &[u8]) -> (u8, &[u8], &[u8]) {
    assert!(der.len() >= 2, "truncated DER");
    let tag = der[0];
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let count = (n & 0x7f) as usize;
            assert!(
                (1..=4).contains(&count) && der.len() >= 2 + count,
                "bad DER length"
            );
            let len = der[2..2 + count]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (len, 2 + count)
        }
    };
    assert!(der.len() >= header + len, "truncated DER contents");
    (tag, &der[header..header + len], &der[header + len..])
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

pub fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend_from_slice(body);
    out
}

/// A DER INTEGER of the unsigned big-endian `bytes`.
pub fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let mut body = bytes[start..].to_vec();
    if body.is_empty() || body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    der_tlv(0x02, &body)
}

/// SM2 ciphertext SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET
/// STRING } (GM/T 0009, what openssl writes) as C1 || C3 || C2 with C1 = 04 || x || y.
pub fn sm2_der_to_c1c3c2(der: &[u8]) -> Vec<u8> {
    let (tag, body, rest) = der_read(der);
    assert!(
        tag == 0x30 && rest.is_empty(),
        "SM2 ciphertext is not one SEQUENCE"
    );
    let (t1, x, body) = der_read(body);
    let (t2, y, body) = der_read(body);
    let (t3, hash, body) = der_read(body);
    let (t4, c2, body) = der_read(body);
    assert!(
        [t1, t2, t3, t4] == [0x02, 0x02, 0x04, 0x04] && body.is_empty(),
        "unexpected SM2 ciphertext layout"
    );
    assert_eq!(hash.len(), 32, "C3 is an SM3 hash");
    let mut out = vec![0x04];
    out.extend(left_pad(x, 32));
    out.extend(left_pad(y, 32));
    out.extend_from_slice(hash);
    out.extend_from_slice(c2);
    out
}

/// r || s (each `half` bytes) as the DER ECDSA-Sig-Value openssl verifies.
pub fn rs_to_der(rs: &[u8]) -> Vec<u8> {
    let half = rs.len() / 2;
    let mut body = der_uint(&rs[..half]);
    body.extend(der_uint(&rs[half..]));
    der_tlv(0x30, &body)
}

/// The OCTET STRING contents of a CKA_EC_POINT.
pub fn point_of(ec_point: &[u8]) -> Vec<u8> {
    let (tag, body, rest) = der_read(ec_point);
    assert!(
        tag == 0x04 && rest.is_empty(),
        "CKA_EC_POINT is not a DER OCTET STRING"
    );
    body.to_vec()
}

// ---------------------------------------------------------------------------------------
// Proofs that an imported key computes what openssl computes with the original material

pub const PLAINTEXT: &[u8] = b"bring your own key: data encrypted under the imported material";
pub const IV: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

/// Encrypts [`PLAINTEXT`] with the key (AES-CBC-PAD or SM4-CBC-PAD, fixed IV).
pub fn encrypt_with(
    session: &Session,
    spec: Spec,
    key: ObjectHandle,
) -> cryptoki::error::Result<Vec<u8>> {
    match spec {
        Spec::Aes256 => session.encrypt(&Mechanism::AesCbcPad(IV), key, PLAINTEXT),
        Spec::Sm4 => session.encrypt(&sm4_cbc_pad(), key, PLAINTEXT),
        other => panic!("{other:?} does not encrypt here"),
    }
}

pub fn decrypt_with(
    session: &Session,
    spec: Spec,
    key: ObjectHandle,
    ciphertext: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    match spec {
        Spec::Aes256 => session.decrypt(&Mechanism::AesCbcPad(IV), key, ciphertext),
        Spec::Sm4 => session.decrypt(&sm4_cbc_pad(), key, ciphertext),
        other => panic!("{other:?} does not decrypt here"),
    }
}

pub fn sm4_cbc_pad() -> Mechanism<'static> {
    Mechanism::VendorDefined(VendorDefinedMechanism::new(
        MechanismType::new_vendor_defined(CKM_KMSHSM_SM4_CBC_PAD).unwrap(),
        Some(&IV),
    ))
}

/// Signs `data` with the key; the signature in the form openssl verifies.
pub fn sign_with(
    session: &Session,
    spec: Spec,
    key: ObjectHandle,
    data: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    match spec {
        Spec::Rsa2048 | Spec::Rsa3072 | Spec::Rsa4096 => {
            session.sign(&Mechanism::Sha256RsaPkcs, key, data)
        }
        Spec::EcP256 | Spec::EcP256K => session
            .sign(&Mechanism::EcdsaSha256, key, data)
            .map(|rs| rs_to_der(&rs)),
        Spec::EcSm2 => session
            .sign(&vendor_mechanism(CKM_KMSHSM_SM2_SM3), key, data)
            .map(|rs| rs_to_der(&rs)),
        other => panic!("{other:?} does not sign"),
    }
}

/// Asserts that the imported key `key` works as the original material does in openssl:
/// symmetric keys give openssl's ciphertext and decrypt it; private keys sign and openssl
/// verifies with the original public key.
pub fn assert_works_like(session: &Session, work: &Work, key: ObjectHandle, material: &Material) {
    match material.spec {
        Spec::Aes256 | Spec::Sm4 => {
            let cipher = if material.spec == Spec::Aes256 {
                "aes-256-cbc"
            } else {
                "sm4-cbc"
            };
            let expected = work.enc(cipher, &material.bytes, Some(&IV), true, PLAINTEXT);
            let got = encrypt_with(session, material.spec, key).unwrap_or_else(|e| {
                panic!("encrypt with the imported {:?} key: {e}", material.spec)
            });
            assert_eq!(
                super::to_hex(&got),
                super::to_hex(&expected),
                "the imported {:?} key does not encrypt like `openssl enc -{cipher}` with the material",
                material.spec
            );
            assert_eq!(
                decrypt_with(session, material.spec, key, &expected).unwrap(),
                PLAINTEXT
            );
        }
        spec => {
            let data = b"message signed by an imported key";
            let signature = sign_with(session, spec, key, data)
                .unwrap_or_else(|e| panic!("sign with the imported {spec:?} key: {e}"));
            let digest = if spec == Spec::EcSm2 { "sm3" } else { "sha256" };
            let (ok, output) = work.verify(
                material.public_pem.as_ref().unwrap(),
                digest,
                data,
                &signature,
            );
            assert!(
                ok,
                "openssl does not verify the signature of the imported {spec:?} key with the \
                 original public key:\n{output}"
            );
        }
    }
}

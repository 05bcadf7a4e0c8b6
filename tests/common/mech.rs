//! Helpers for the mechanism tests (tests/mech_*.rs): raw C ABI calls with any mechanism
//! parameter (the `cryptoki` crate cannot express CKM_AES_KEY_WRAP_KWP, AES-CTR parameters,
//! NULL or wrong-size parameters, or length queries), key templates for the vendor SM key
//! types, a session with an AES key for the raw calls of an operation's steps, a minimal
//! DER writer for the public keys handed to `openssl`, and runners for the `openssl` and
//! `pkcs11-tool` command lines.

use std::path::Path;
use std::process::Command;

use cryptoki::error::{Rv, RvError};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

use super::raw::{Raw, RawAttr};

// ---------------------------------------------------------------------------------------
// Vendor constants (include/kmshsm.h)

const VENDOR: CK_ULONG = 0x8000_0000 | 0x4B4D_0000;
pub const CKK_SM2: CK_KEY_TYPE = VENDOR | 1;
pub const CKK_SM4: CK_KEY_TYPE = VENDOR | 2;
pub const CKM_SM2_KEY_PAIR_GEN: CK_MECHANISM_TYPE = VENDOR | 1;
pub const CKM_SM2_SM3: CK_MECHANISM_TYPE = VENDOR | 2;
pub const CKM_SM2_ENCRYPT: CK_MECHANISM_TYPE = VENDOR | 3;
pub const CKM_SM3: CK_MECHANISM_TYPE = VENDOR | 4;
pub const CKM_SM4_KEY_GEN: CK_MECHANISM_TYPE = VENDOR | 5;
pub const CKM_SM4_ECB: CK_MECHANISM_TYPE = VENDOR | 6;
pub const CKM_SM4_CBC: CK_MECHANISM_TYPE = VENDOR | 7;
pub const CKM_SM4_CBC_PAD: CK_MECHANISM_TYPE = VENDOR | 8;
pub const CKM_SM4_GCM: CK_MECHANISM_TYPE = VENDOR | 9;

/// DER OIDs used as CKA_EC_PARAMS.
pub const OID_P256: &str = "06082a8648ce3d030107";
pub const OID_P384: &str = "06052b81040022";
pub const OID_P521: &str = "06052b81040023";
pub const OID_SECP256K1: &str = "06052b8104000a";
pub const OID_SM2: &str = "06082a811ccf5501822d";
/// id-Ed25519 (1.3.101.112) and id-X25519 (1.3.101.110), RFC 8410.
pub const OID_ED25519: &str = "06032b6570";
pub const OID_X25519: &str = "06032b656e";
/// The curve names of PKCS#11 3.0 §2.3.6/§2.3.7 as DER PrintableStrings.
pub const NAME_EDWARDS25519: &str = "130c656477617264733235353139";
pub const NAME_CURVE25519: &str = "130a63757276653235353139";

// ---------------------------------------------------------------------------------------
// Raw mechanisms

/// A CK_MECHANISM with an owned parameter. Buffers the parameter points into live in
/// `keep` (heap data does not move when the value moves).
pub struct RawMech {
    pub ty: CK_MECHANISM_TYPE,
    param: Option<Vec<u8>>,
    param_len: Option<CK_ULONG>,
    keep: Vec<Vec<u8>>,
}

pub fn struct_bytes<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: T is a plain C structure; we copy its bytes.
    unsafe { std::slice::from_raw_parts(value as *const T as *const u8, std::mem::size_of::<T>()) }
        .to_vec()
}

fn ptr_of(buf: &[u8]) -> *mut u8 {
    if buf.is_empty() {
        std::ptr::null_mut()
    } else {
        buf.as_ptr() as *mut u8
    }
}

impl RawMech {
    pub fn none(ty: CK_MECHANISM_TYPE) -> Self {
        RawMech {
            ty,
            param: None,
            param_len: None,
            keep: Vec::new(),
        }
    }
    pub fn bytes(ty: CK_MECHANISM_TYPE, param: &[u8]) -> Self {
        RawMech {
            param: Some(param.to_vec()),
            ..Self::none(ty)
        }
    }
    /// A NULL pParameter with the given ulParameterLen.
    pub fn null_param(ty: CK_MECHANISM_TYPE, len: CK_ULONG) -> Self {
        RawMech {
            param_len: Some(len),
            ..Self::none(ty)
        }
    }
    /// A mechanism whose parameter is the structure `value`, whose pointers point into
    /// the buffers of `keep` (moved here, so they live as long as the mechanism).
    pub fn structure<T: Copy>(ty: CK_MECHANISM_TYPE, value: &T, keep: Vec<Vec<u8>>) -> Self {
        RawMech {
            param: Some(struct_bytes(value)),
            keep,
            ..Self::none(ty)
        }
    }
    /// Overrides ulParameterLen (a wrong-size structure).
    pub fn with_len(mut self, len: CK_ULONG) -> Self {
        self.param_len = Some(len);
        self
    }
    pub fn gcm(ty: CK_MECHANISM_TYPE, iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Self {
        let keep = vec![iv.to_vec(), aad.to_vec()];
        let p = CK_GCM_PARAMS {
            pIv: ptr_of(&keep[0]),
            ulIvLen: iv.len() as CK_ULONG,
            ulIvBits: (iv.len() * 8) as CK_ULONG,
            pAAD: ptr_of(&keep[1]),
            ulAADLen: aad.len() as CK_ULONG,
            ulTagBits: tag_bits,
        };
        RawMech {
            param: Some(struct_bytes(&p)),
            keep,
            ..Self::none(ty)
        }
    }
    pub fn ctr(counter_bits: CK_ULONG, block: &[u8]) -> Self {
        let p = CK_AES_CTR_PARAMS {
            ulCounterBits: counter_bits,
            cb: block.try_into().expect("16-byte counter block"),
        };
        Self::bytes(CKM_AES_CTR, &struct_bytes(&p))
    }
    pub fn oaep(hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, label: &[u8]) -> Self {
        let keep = vec![label.to_vec()];
        let p = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: hash,
            mgf,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: ptr_of(&keep[0]) as *mut _,
            ulSourceDataLen: label.len() as CK_ULONG,
        };
        RawMech {
            param: Some(struct_bytes(&p)),
            keep,
            ..Self::none(CKM_RSA_PKCS_OAEP)
        }
    }
    /// CKM_RSA_AES_KEY_WRAP with a nested OAEP parameter (empty label).
    pub fn rsa_aes_key_wrap(aes_bits: CK_ULONG, hash: CK_MECHANISM_TYPE, mgf: CK_ULONG) -> Self {
        let oaep = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: hash,
            mgf,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: std::ptr::null_mut(),
            ulSourceDataLen: 0,
        };
        let keep = vec![struct_bytes(&oaep)];
        let p = CK_RSA_AES_KEY_WRAP_PARAMS {
            ulAESKeyBits: aes_bits,
            pOAEPParams: ptr_of(&keep[0]) as *mut CK_RSA_PKCS_OAEP_PARAMS,
        };
        RawMech {
            param: Some(struct_bytes(&p)),
            keep,
            ..Self::none(CKM_RSA_AES_KEY_WRAP)
        }
    }
    pub fn pss(ty: CK_MECHANISM_TYPE, hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, salt: usize) -> Self {
        let p = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: hash,
            mgf,
            sLen: salt as CK_ULONG,
        };
        Self::bytes(ty, &struct_bytes(&p))
    }
    pub fn ecdh(kdf: CK_ULONG, public: &[u8]) -> Self {
        let keep = vec![public.to_vec()];
        let p = CK_ECDH1_DERIVE_PARAMS {
            kdf,
            ulSharedDataLen: 0,
            pSharedData: std::ptr::null_mut(),
            ulPublicDataLen: public.len() as CK_ULONG,
            pPublicData: ptr_of(&keep[0]),
        };
        RawMech {
            param: Some(struct_bytes(&p)),
            keep,
            ..Self::none(CKM_ECDH1_DERIVE)
        }
    }
    /// CKM_EDDSA with a CK_EDDSA_PARAMS.
    pub fn eddsa(prehash: bool, context: &[u8]) -> Self {
        let keep = vec![context.to_vec()];
        let p = CK_EDDSA_PARAMS {
            phFlag: CK_BBOOL::from(prehash),
            ulContextDataLen: context.len() as CK_ULONG,
            pContextData: ptr_of(&keep[0]),
        };
        RawMech {
            param: Some(struct_bytes(&p)),
            keep,
            ..Self::none(CKM_EDDSA)
        }
    }
    fn ck(&self) -> CK_MECHANISM {
        let (ptr, len) = match &self.param {
            Some(p) => (ptr_of(p) as *mut std::ffi::c_void, p.len() as CK_ULONG),
            None => (std::ptr::null_mut(), 0),
        };
        CK_MECHANISM {
            mechanism: self.ty,
            pParameter: ptr,
            ulParameterLen: self.param_len.unwrap_or(len),
        }
    }
}

fn result(rv: CK_RV) -> Result<(), RvError> {
    match Rv::from(rv) {
        Rv::Ok => Ok(()),
        Rv::Error(e) => Err(e),
    }
}

/// The module's C function list, for calls `cryptoki` cannot express.
pub struct Ck {
    _library: cryptoki_sys::Pkcs11,
    f: CK_FUNCTION_LIST,
}

type OutCall<'a> = dyn FnMut(*mut u8, *mut CK_ULONG) -> CK_RV + 'a;

/// What one output call returned: its code, the length the module reported, and the bytes.
#[derive(Debug)]
pub struct Out {
    pub rv: Result<(), RvError>,
    pub len: usize,
    pub data: Vec<u8>,
}

impl Ck {
    /// The module's function list, for calls the helpers below do not make (NULL
    /// pointers where the caller's buffers go, say).
    pub fn functions(&self) -> &CK_FUNCTION_LIST {
        &self.f
    }

    pub fn load() -> Ck {
        let path = super::module_path();
        // SAFETY: loading the module under test (already loaded by cryptoki: same library).
        let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }.expect("load module");
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: one output pointer.
        assert_eq!(unsafe { library.C_GetFunctionList(&mut list) }, CKR_OK);
        // SAFETY: the module keeps its list alive while loaded.
        let f = unsafe { *list };
        Ck {
            _library: library,
            f,
        }
    }

    /// One output call with a buffer of `capacity` bytes (`None`: NULL buffer).
    pub fn out_once(call: &mut OutCall<'_>, capacity: Option<usize>) -> Out {
        let mut buf = vec![0u8; capacity.unwrap_or(0).max(1)];
        let mut len: CK_ULONG = capacity.unwrap_or(0) as CK_ULONG;
        let ptr = if capacity.is_some() {
            buf.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        let rv = result(call(ptr, &mut len));
        let n = (len as usize).min(capacity.unwrap_or(0));
        buf.truncate(if rv.is_ok() { n } else { 0 });
        Out {
            rv,
            len: len as usize,
            data: buf,
        }
    }

    /// Length query, then the call with a buffer of that size.
    fn out(call: &mut OutCall<'_>) -> Result<Vec<u8>, RvError> {
        let q = Self::out_once(call, None);
        q.rv?;
        let r = Self::out_once(call, Some(q.len));
        r.rv?;
        Ok(r.data)
    }

    pub fn encrypt_init(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), RvError> {
        let mut ck = m.ck();
        // SAFETY: mechanism and its parameter are alive for the call.
        result(unsafe { self.f.C_EncryptInit.unwrap()(s, &mut ck, key) })
    }
    pub fn decrypt_init(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), RvError> {
        let mut ck = m.ck();
        // SAFETY: as above.
        result(unsafe { self.f.C_DecryptInit.unwrap()(s, &mut ck, key) })
    }
    pub fn sign_init(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), RvError> {
        let mut ck = m.ck();
        // SAFETY: as above.
        result(unsafe { self.f.C_SignInit.unwrap()(s, &mut ck, key) })
    }
    pub fn verify_init(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), RvError> {
        let mut ck = m.ck();
        // SAFETY: as above.
        result(unsafe { self.f.C_VerifyInit.unwrap()(s, &mut ck, key) })
    }
    pub fn digest_init(&self, s: CK_SESSION_HANDLE, m: &RawMech) -> Result<(), RvError> {
        let mut ck = m.ck();
        // SAFETY: as above.
        result(unsafe { self.f.C_DigestInit.unwrap()(s, &mut ck) })
    }

    /// C_Encrypt with an output buffer of `capacity` bytes (`None`: length query).
    pub fn encrypt_call(&self, s: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Out {
        let f = self.f.C_Encrypt.unwrap();
        // SAFETY: input alive for the call; output described by (ptr, len).
        Self::out_once(
            &mut |o, l| unsafe { f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l) },
            capacity,
        )
    }
    pub fn decrypt_call(&self, s: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Out {
        let f = self.f.C_Decrypt.unwrap();
        // SAFETY: as above.
        Self::out_once(
            &mut |o, l| unsafe { f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l) },
            capacity,
        )
    }
    pub fn sign_call(&self, s: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Out {
        let f = self.f.C_Sign.unwrap();
        // SAFETY: as above.
        Self::out_once(
            &mut |o, l| unsafe { f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l) },
            capacity,
        )
    }
    pub fn sign_update(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<(), RvError> {
        // SAFETY: input alive for the call.
        result(unsafe {
            self.f.C_SignUpdate.unwrap()(s, data.as_ptr() as *mut _, data.len() as CK_ULONG)
        })
    }
    pub fn verify_call(
        &self,
        s: CK_SESSION_HANDLE,
        data: &[u8],
        sig: &[u8],
    ) -> Result<(), RvError> {
        // SAFETY: inputs alive for the call.
        result(unsafe {
            self.f.C_Verify.unwrap()(
                s,
                data.as_ptr() as *mut _,
                data.len() as CK_ULONG,
                sig.as_ptr() as *mut _,
                sig.len() as CK_ULONG,
            )
        })
    }

    pub fn encrypt(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
    ) -> Result<Vec<u8>, RvError> {
        self.encrypt_init(s, m, key)?;
        let f = self.f.C_Encrypt.unwrap();
        // SAFETY: as above.
        Self::out(&mut |o, l| unsafe {
            f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l)
        })
    }
    pub fn decrypt(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
    ) -> Result<Vec<u8>, RvError> {
        self.decrypt_init(s, m, key)?;
        let f = self.f.C_Decrypt.unwrap();
        // SAFETY: as above.
        Self::out(&mut |o, l| unsafe {
            f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l)
        })
    }
    pub fn sign(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
    ) -> Result<Vec<u8>, RvError> {
        self.sign_init(s, m, key)?;
        let f = self.f.C_Sign.unwrap();
        // SAFETY: as above.
        Self::out(&mut |o, l| unsafe {
            f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l)
        })
    }
    pub fn verify(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        sig: &[u8],
    ) -> Result<(), RvError> {
        self.verify_init(s, m, key)?;
        self.verify_call(s, data, sig)
    }
    pub fn digest(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        data: &[u8],
    ) -> Result<Vec<u8>, RvError> {
        self.digest_init(s, m)?;
        let f = self.f.C_Digest.unwrap();
        // SAFETY: as above.
        Self::out(&mut |o, l| unsafe {
            f(s, data.as_ptr() as *mut _, data.len() as CK_ULONG, o, l)
        })
    }
    pub fn wrap(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<Vec<u8>, RvError> {
        let f = self.f.C_WrapKey.unwrap();
        let mut ck = m.ck();
        // SAFETY: mechanism alive; output described by (ptr, len).
        Self::out(&mut |o, l| unsafe { f(s, &mut ck, wrapping, key, o, l) })
    }
    pub fn unwrap(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &[RawAttr],
    ) -> Result<CK_OBJECT_HANDLE, RvError> {
        let mut attrs = super::raw::attributes(template);
        let mut ck = m.ck();
        let mut handle = 0;
        // SAFETY: every pointer is alive for the call.
        result(unsafe {
            self.f.C_UnwrapKey.unwrap()(
                s,
                &mut ck,
                key,
                wrapped.as_ptr() as *mut _,
                wrapped.len() as CK_ULONG,
                attrs.as_mut_ptr(),
                attrs.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }
    pub fn derive(
        &self,
        s: CK_SESSION_HANDLE,
        m: &RawMech,
        base: CK_OBJECT_HANDLE,
        template: &[RawAttr],
    ) -> Result<CK_OBJECT_HANDLE, RvError> {
        let mut attrs = super::raw::attributes(template);
        let mut ck = m.ck();
        let mut handle = 0;
        // SAFETY: every pointer is alive for the call.
        result(unsafe {
            self.f.C_DeriveKey.unwrap()(
                s,
                &mut ck,
                base,
                attrs.as_mut_ptr(),
                attrs.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }
}

/// Template of an extractable, non-sensitive generic secret of `len` bytes (derive/unwrap).
pub fn raw_secret_template(key_type: CK_KEY_TYPE, len: usize) -> Vec<RawAttr> {
    vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, key_type),
        RawAttr::ulong(CKA_VALUE_LEN, len as CK_ULONG),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_SENSITIVE, false),
        RawAttr::bool(CKA_EXTRACTABLE, true),
        RawAttr::bool(CKA_ENCRYPT, true),
        RawAttr::bool(CKA_DECRYPT, true),
    ]
}

/// An unsafe-free way to turn a raw handle back into a `cryptoki` handle.
pub fn handle(raw: CK_OBJECT_HANDLE) -> ObjectHandle {
    // SAFETY: the handle came from the module in this process.
    unsafe { ObjectHandle::new_from_raw(raw) }
}

// ---------------------------------------------------------------------------------------
// A session for raw operation calls

/// A user session on a new token with an AES-128 session key for encryption and
/// decryption, and the module's function list: what the tests of an operation's steps
/// through the C ABI start from (tests/operation_errors.rs, tests/attack_review21a.rs).
pub struct AesSession {
    _env: super::TestEnv,
    _ctx: cryptoki::context::Pkcs11,
    pub session: Session,
    pub ck: Ck,
    pub aes: CK_OBJECT_HANDLE,
}

impl AesSession {
    /// A new token and session; the AES key is generated with `more` added to its
    /// template (a session key, 16 bytes, CKA_ENCRYPT and CKA_DECRYPT).
    pub fn new(more: &[Attribute]) -> AesSession {
        let env = super::TestEnv::new();
        let (ctx, _slot, session) = super::ready_token(&env);
        let mut template = vec![
            Attribute::Token(false),
            Attribute::ValueLen(16.into()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ];
        template.extend_from_slice(more);
        let aes = session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .unwrap()
            .handle();
        AesSession {
            _env: env,
            _ctx: ctx,
            session,
            ck: Ck::load(),
            aes,
        }
    }

    /// The session's handle.
    pub fn s(&self) -> CK_SESSION_HANDLE {
        self.session.handle()
    }

    /// The module's function list.
    pub fn f(&self) -> &CK_FUNCTION_LIST {
        self.ck.functions()
    }
}

// ---------------------------------------------------------------------------------------
// Keys

/// A session secret key of `key_type` with every usage allowed.
pub fn secret_key(session: &Session, key_type: KeyType, value: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Derive(true),
            Attribute::Value(value.to_vec()),
        ])
        .expect("C_CreateObject(secret key)")
}

pub fn aes_key(session: &Session, value: &[u8]) -> ObjectHandle {
    secret_key(session, KeyType::AES, value)
}

pub fn sm4_key(session: &Session, value: &[u8]) -> ObjectHandle {
    secret_key(
        session,
        KeyType::new_vendor_defined(CKK_SM4).unwrap(),
        value,
    )
}

/// Strips leading zero bytes of a big-endian integer (keeps one byte).
pub fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

/// Left-pads or strips a big-endian integer to exactly `len` bytes.
pub fn fixed(bytes: &[u8], len: usize) -> Vec<u8> {
    let b = unsigned(bytes);
    assert!(b.len() <= len, "integer longer than {len} bytes");
    let mut out = vec![0u8; len - b.len()];
    out.extend_from_slice(&b);
    out
}

/// RSA components, big-endian.
#[derive(Clone, Debug, Default)]
pub struct RsaKey {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    pub dp: Vec<u8>,
    pub dq: Vec<u8>,
    pub qinv: Vec<u8>,
}

pub fn rsa_public(session: &Session, n: &[u8], e: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Modulus(unsigned(n)),
            Attribute::PublicExponent(unsigned(e)),
        ])
        .expect("C_CreateObject(RSA public key)")
}

pub fn rsa_private(session: &Session, k: &RsaKey) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
            Attribute::Unwrap(true),
            Attribute::Modulus(unsigned(&k.n)),
            Attribute::PublicExponent(unsigned(&k.e)),
            Attribute::PrivateExponent(unsigned(&k.d)),
            Attribute::Prime1(unsigned(&k.p)),
            Attribute::Prime2(unsigned(&k.q)),
            Attribute::Exponent1(unsigned(&k.dp)),
            Attribute::Exponent2(unsigned(&k.dq)),
            Attribute::Coefficient(unsigned(&k.qinv)),
        ])
        .expect("C_CreateObject(RSA private key)")
}

/// An EC (or SM2) public key from its DER OID and uncompressed point.
pub fn ec_public(
    session: &Session,
    key_type: KeyType,
    oid_hex: &str,
    point: &[u8],
) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::EcParams(super::hex(oid_hex)),
            Attribute::EcPoint(der_octet_string(point)),
        ])
        .expect("C_CreateObject(EC public key)")
}

/// An EC (or SM2) private key from its DER OID and scalar.
pub fn ec_private(session: &Session, key_type: KeyType, oid_hex: &str, d: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
            Attribute::Derive(true),
            Attribute::EcParams(super::hex(oid_hex)),
            Attribute::Value(d.to_vec()),
        ])
        .expect("C_CreateObject(EC private key)")
}

/// A vendor mechanism without parameter, as a `cryptoki` value.
pub fn vendor_mech(ty: CK_MECHANISM_TYPE) -> Mechanism<'static> {
    let ty = MechanismType::new_vendor_defined(ty).expect("vendor mechanism");
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<u8>(ty, None))
}

/// A vendor mechanism whose parameter is a byte string (IV, identifier).
pub fn vendor_mech_bytes<const N: usize>(ty: CK_MECHANISM_TYPE, param: &[u8; N]) -> Mechanism<'_> {
    let ty = MechanismType::new_vendor_defined(ty).expect("vendor mechanism");
    Mechanism::VendorDefined(VendorDefinedMechanism::new(ty, Some(param)))
}

pub fn sm2_type() -> KeyType {
    KeyType::new_vendor_defined(CKK_SM2).unwrap()
}

// ---------------------------------------------------------------------------------------
// DER

pub fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

pub fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    [&[tag][..], &der_len(body.len()), body].concat()
}

pub fn der_octet_string(body: &[u8]) -> Vec<u8> {
    der_tlv(0x04, body)
}

pub fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut b = unsigned(bytes);
    if b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    der_tlv(0x02, &b)
}

/// The DER ECDSA-Sig-Value of an r || s signature.
pub fn ecdsa_der(rs: &[u8]) -> Vec<u8> {
    let (r, s) = rs.split_at(rs.len() / 2);
    der_tlv(0x30, &[der_uint(r), der_uint(s)].concat())
}

/// Reads one TLV at the start of `der`: (tag, body, rest).
pub fn der_read(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, head) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (der[2] as usize, 3),
        0x82 => (((der[2] as usize) << 8) | der[3] as usize, 4),
        _ => panic!("unsupported DER length"),
    };
    (tag, &der[head..head + len], &der[head + len..])
}

/// The r || s form (each `n` bytes) of a DER ECDSA-Sig-Value.
pub fn ecdsa_rs(der: &[u8], n: usize) -> Vec<u8> {
    let (_, seq, _) = der_read(der);
    let (_, r, rest) = der_read(seq);
    let (_, s, _) = der_read(rest);
    [fixed(r, n), fixed(s, n)].concat()
}

/// SubjectPublicKeyInfo of an RSA public key.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = der_tlv(
        0x30,
        &[super::hex("06092a864886f70d010101"), vec![0x05, 0x00]].concat(),
    );
    let key = der_tlv(0x30, &[der_uint(n), der_uint(e)].concat());
    let bits = der_tlv(0x03, &[&[0u8][..], &key].concat());
    der_tlv(0x30, &[alg, bits].concat())
}

/// SubjectPublicKeyInfo of an EC (or SM2) public key.
pub fn ec_spki(oid_hex: &str, point: &[u8]) -> Vec<u8> {
    let alg = der_tlv(
        0x30,
        &[super::hex("06072a8648ce3d0201"), super::hex(oid_hex)].concat(),
    );
    let bits = der_tlv(0x03, &[&[0u8][..], point].concat());
    der_tlv(0x30, &[alg, bits].concat())
}

/// SubjectPublicKeyInfo of an Ed25519 or X25519 public key (RFC 8410: no parameters).
pub fn curve25519_spki(oid_hex: &str, public: &[u8]) -> Vec<u8> {
    let alg = der_tlv(0x30, &super::hex(oid_hex));
    let bits = der_tlv(0x03, &[&[0u8][..], public].concat());
    der_tlv(0x30, &[alg, bits].concat())
}

/// The uncompressed point inside a CKA_EC_POINT value (DER OCTET STRING or bare).
pub fn point_of(ec_point: &[u8]) -> Vec<u8> {
    let n = ec_point.len();
    let der = match ec_point {
        [0x04, l, ..] if (*l as usize) + 2 == n => true,
        [0x04, 0x81, l, ..] if (*l as usize) + 3 == n => true,
        _ => false,
    };
    if der {
        der_read(ec_point).1.to_vec()
    } else {
        ec_point.to_vec()
    }
}

// ---------------------------------------------------------------------------------------
// Command-line tools

pub struct Run {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.ok,
            self.text(),
            self.stderr
        )
    }
}

fn run_program(program: &Path, args: &[&str]) -> Run {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("spawn tool");
    Run {
        ok: output.status.success(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `openssl` (failing with an installation hint if it is missing).
pub fn openssl(args: &[&str]) -> Run {
    let program = super::require_tool("openssl", "openssl");
    run_program(&program, args)
}

pub fn openssl_ok(args: &[&str]) -> Vec<u8> {
    let run = openssl(args);
    assert!(run.ok, "openssl {}\n{run}", args.join(" "));
    run.stdout
}

/// Runs pkcs11-tool on the module under test (the environment carries KMSHSM_CONF).
pub fn p11tool(args: &[&str]) -> Run {
    let program = super::require_tool("pkcs11-tool", "opensc");
    let module = super::module_path();
    let mut all = vec!["--module", module.to_str().unwrap()];
    all.extend_from_slice(args);
    run_program(&program, &all)
}

pub fn p11tool_ok(args: &[&str]) -> Run {
    let run = p11tool(args);
    assert!(run.ok, "pkcs11-tool {}\n{run}", args.join(" "));
    run
}

/// Writes `bytes` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The hex blocks of `openssl pkey -text` output, by label ("modulus", "prime1", "priv", ...).
pub fn openssl_text_field(text: &str, label: &str) -> Vec<u8> {
    let mut lines = text.lines();
    let head = format!("{label}:");
    for line in lines.by_ref() {
        if line.trim() == head {
            break;
        }
    }
    let mut hex = String::new();
    for line in lines {
        let t = line.trim();
        if !line.starts_with(' ')
            || t.is_empty()
            || !t.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
        {
            break;
        }
        hex.extend(t.chars().filter(|c| *c != ':'));
    }
    assert!(!hex.is_empty(), "no {label} block in:\n{text}");
    super::hex(&hex)
}

// ---------------------------------------------------------------------------------------
// Key-recovery helpers of the attacker reviews (tests/attack_review*.rs)
// ---------------------------------------------------------------------------------------

/// A generic-secret template for `C_UnwrapKey` / `C_DeriveKey`: a session key of `len`
/// bytes (when given), plus `extra`.
pub fn generic_template(len: Option<CK_ULONG>, extra: Vec<RawAttr>) -> Vec<RawAttr> {
    let mut t = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
    ];
    if let Some(len) = len {
        t.push(RawAttr::ulong(CKA_VALUE_LEN, len));
    }
    t.extend(extra);
    t
}

/// HMAC-SHA256 of `data` under `key`, computed here (to try guesses at a key's bytes).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&key, data).as_ref().to_vec()
}

/// The byte `b` for which the MAC of `data` under `prefix || b` is `mac`.
pub fn brute_force_last_byte(prefix: &[u8], data: &[u8], mac: &[u8]) -> Option<u8> {
    (0..=255u8).find(|b| hmac_sha256(&[prefix, &[*b]].concat(), data) == mac)
}

/// The owner's key-encryption key of review 14g's scenario: an AES key that may wrap and
/// unwrap, nothing else, and whose `CKA_UNWRAP_TEMPLATE` makes every key it unwraps
/// sensitive and unextractable.
pub fn owners_kek(session: &Session) -> ObjectHandle {
    let f = Raw::load();
    let kek_value = session.generate_random_vec(32).unwrap();
    f.create_with_nested(
        session.handle(),
        &[
            RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
            RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
            RawAttr::bool(CKA_TOKEN, false),
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
            RawAttr::bool(CKA_ENCRYPT, false),
            RawAttr::bool(CKA_DECRYPT, false),
            RawAttr::bool(CKA_WRAP, true),
            RawAttr::bool(CKA_UNWRAP, true),
            RawAttr::new(CKA_VALUE, &kek_value),
        ],
        CKA_UNWRAP_TEMPLATE,
        &[
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
        ],
    )
    .map(handle)
    .expect("C_CreateObject(KEK with an unwrap template)")
}

/// A sensitive, extractable AES-128 session key of random bytes (its value, its handle):
/// what an owner wraps under a KEK and the attacker of a review wants.
pub fn sensitive_aes_key(session: &Session) -> (Vec<u8>, ObjectHandle) {
    let value = session.generate_random_vec(16).unwrap();
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Value(value.clone()),
        ])
        .expect("C_CreateObject(sensitive AES key)");
    (value, key)
}

/// A `CK_KEY_DERIVATION_STRING_DATA` parameter of `data` for mechanism `ty`.
pub fn string_data(ty: CK_MECHANISM_TYPE, data: &[u8]) -> RawMech {
    let keep = vec![data.to_vec()];
    let p = CK_KEY_DERIVATION_STRING_DATA {
        pData: if data.is_empty() {
            std::ptr::null_mut()
        } else {
            keep[0].as_ptr() as *mut _
        },
        ulLen: data.len() as CK_ULONG,
    };
    RawMech::structure(ty, &p, keep)
}

//! Ed448 (RFC 8032 §5.2, pure Ed448 only) and X448 (RFC 7748) from the system's OpenSSL
//! 3 libcrypto, opened at run time with `libloading`: aws-lc (and so aws-lc-rs) has no
//! Curve448, and no released Rust crate signs with it (docs/conformance.md). Opening the
//! library at run time keeps the build free of OpenSSL's headers, and a machine without
//! `libcrypto.so.3` (or one whose copy lacks a symbol, or fails the RFC 8032 / RFC 7748
//! self-test run once on loading) simply has neither: every call here answers
//! `Error::CurveNotSupported`, and the reason is logged once.
//!
//! One of the crate's few modules allowed `unsafe` (with `ffi::raw`, `os`,
//! `crypto::rsa::raw` and `crypto::ed25519_variants`): the symbol lookups and the calls
//! to seventeen libcrypto functions (`EVP_PKEY_new_raw_private_key`/`_public_key`,
//! `EVP_PKEY_get_raw_public_key`, `EVP_PKEY_free`, `EVP_MD_CTX_new`/`_free`,
//! `EVP_DigestSignInit`/`EVP_DigestSign`, `EVP_DigestVerifyInit`/`EVP_DigestVerify`,
//! `EVP_PKEY_CTX_new`/`_free`, `EVP_PKEY_derive_init`/`_set_peer`, `EVP_PKEY_derive`,
//! `ERR_set_mark`/`ERR_pop_to_mark`), each on Rust-owned buffers of the lengths passed,
//! and on OpenSSL objects owned by a guard that frees them on every path. The error
//! queue is restored to its mark after every call sequence, so the host's own OpenSSL
//! errors are neither lost nor joined by ours. The library stays loaded for the life of
//! the process. It must not do anything else: no other algorithm, no OpenSSL
//! configuration, no key material in a log line. Plain bytes in and out; private bytes
//! are zeroizing.

use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use libloading::Library;
use zeroize::Zeroizing;

use super::asn1;
use crate::error::{Error, Result};

/// Bytes of an Ed448 private key (the seed) and of a public key (RFC 8032 §5.2.5).
pub(crate) const ED448_KEY_LEN: usize = 57;
/// Bytes of an Ed448 signature (R || S).
pub(crate) const ED448_SIGNATURE_LEN: usize = 114;
/// Ed448's key size as PKCS#11 counts it (the field's bits).
pub(crate) const BITS: u64 = 448;

/// id-Ed448, 1.3.101.113 (RFC 8410), as a DER OID element.
pub(crate) const OID_ED448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x71];
/// The curve name "edwards448" as a DER PrintableString (PKCS#11 3.0 §2.3.6).
pub(crate) const NAME_EDWARDS448: &[u8] = b"\x13\x0aedwards448";

/// Bytes of an X448 private key (the scalar), public key and shared secret (RFC 7748 §5).
pub(crate) const X448_KEY_LEN: usize = 56;
/// id-X448, 1.3.101.111 (RFC 8410), as a DER OID element.
pub(crate) const OID_X448: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6f];
/// The curve name "curve448" as a DER PrintableString (PKCS#11 3.0 §2.3.7).
pub(crate) const NAME_CURVE448: &[u8] = b"\x13\x08curve448";

/// The library opened, by its SONAME: OpenSSL 3's ABI.
const LIBRARY: &str = "libcrypto.so.3";
/// `EVP_PKEY_ED448` (= `NID_ED448`) and `EVP_PKEY_X448` (= `NID_X448`) in OpenSSL's
/// `obj_mac.h`.
const EVP_PKEY_ED448: c_int = 1088;
const EVP_PKEY_X448: c_int = 1035;

/// Whether `CKA_EC_PARAMS` names edwards448 (the OID or the curve name).
pub(crate) fn is_ed448_params(params: &[u8]) -> bool {
    params == OID_ED448 || params == NAME_EDWARDS448
}

/// Whether `CKA_EC_PARAMS` names curve448 (the OID or the curve name).
pub(crate) fn is_x448_params(params: &[u8]) -> bool {
    params == OID_X448 || params == NAME_CURVE448
}

type NewRawKey = unsafe extern "C" fn(c_int, *mut c_void, *const u8, usize) -> *mut c_void;
type GetRawKey = unsafe extern "C" fn(*const c_void, *mut u8, *mut usize) -> c_int;
type Free = unsafe extern "C" fn(*mut c_void);
type MdCtxNew = unsafe extern "C" fn() -> *mut c_void;
type DigestInit = unsafe extern "C" fn(
    *mut c_void,
    *mut *mut c_void,
    *const c_void,
    *mut c_void,
    *mut c_void,
) -> c_int;
type DigestSign = unsafe extern "C" fn(*mut c_void, *mut u8, *mut usize, *const u8, usize) -> c_int;
type DigestVerify = unsafe extern "C" fn(*mut c_void, *const u8, usize, *const u8, usize) -> c_int;
type ErrMark = unsafe extern "C" fn() -> c_int;
type PkeyCtxNew = unsafe extern "C" fn(*mut c_void, *mut c_void) -> *mut c_void;
type DeriveInit = unsafe extern "C" fn(*mut c_void) -> c_int;
type DeriveSetPeer = unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int;
type Derive = unsafe extern "C" fn(*mut c_void, *mut u8, *mut usize) -> c_int;

/// The functions used, resolved once; `_library` keeps them mapped.
struct Api {
    new_raw_private_key: NewRawKey,
    new_raw_public_key: NewRawKey,
    get_raw_public_key: GetRawKey,
    pkey_free: Free,
    md_ctx_new: MdCtxNew,
    md_ctx_free: Free,
    digest_sign_init: DigestInit,
    digest_sign: DigestSign,
    digest_verify_init: DigestInit,
    digest_verify: DigestVerify,
    err_set_mark: ErrMark,
    err_pop_to_mark: ErrMark,
    pkey_ctx_new: PkeyCtxNew,
    pkey_ctx_free: Free,
    derive_init: DeriveInit,
    derive_set_peer: DeriveSetPeer,
    derive: Derive,
    _library: Library,
}

/// Looks `name` up in `library` as a function of type `T`.
///
/// # Safety
/// `T` must be the function's C signature in OpenSSL 3's headers.
unsafe fn symbol<T: Copy>(
    library: &Library,
    file: &str,
    name: &str,
) -> std::result::Result<T, String> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    // SAFETY: the caller gives the symbol's true type; the value copied out is a plain
    // function pointer, valid while the library stays loaded (it is kept in `Api`,
    // which lives in a static for the rest of the process).
    unsafe { library.get::<T>(&bytes) }
        .map(|s| *s)
        .map_err(|e| format!("{file} has no {name}: {e}"))
}

impl Api {
    /// Opens `file` (`LIBRARY`; another name only in tests) and resolves every symbol.
    fn open(file: &str) -> std::result::Result<Api, String> {
        // SAFETY: loading runs the library's initialisers; libcrypto.so.3's are
        // OpenSSL's own and have no preconditions on the caller.
        let library =
            unsafe { Library::new(file) }.map_err(|e| format!("cannot load {file}: {e}"))?;
        // SAFETY: each type below is the function's signature in OpenSSL 3's headers
        // (evp.h, err.h), with `EVP_PKEY`, `EVP_MD_CTX`, `EVP_PKEY_CTX`, `EVP_MD` and
        // `ENGINE` as opaque pointers.
        unsafe {
            Ok(Api {
                new_raw_private_key: symbol(&library, file, "EVP_PKEY_new_raw_private_key")?,
                new_raw_public_key: symbol(&library, file, "EVP_PKEY_new_raw_public_key")?,
                get_raw_public_key: symbol(&library, file, "EVP_PKEY_get_raw_public_key")?,
                pkey_free: symbol(&library, file, "EVP_PKEY_free")?,
                md_ctx_new: symbol(&library, file, "EVP_MD_CTX_new")?,
                md_ctx_free: symbol(&library, file, "EVP_MD_CTX_free")?,
                digest_sign_init: symbol(&library, file, "EVP_DigestSignInit")?,
                digest_sign: symbol(&library, file, "EVP_DigestSign")?,
                digest_verify_init: symbol(&library, file, "EVP_DigestVerifyInit")?,
                digest_verify: symbol(&library, file, "EVP_DigestVerify")?,
                err_set_mark: symbol(&library, file, "ERR_set_mark")?,
                err_pop_to_mark: symbol(&library, file, "ERR_pop_to_mark")?,
                pkey_ctx_new: symbol(&library, file, "EVP_PKEY_CTX_new")?,
                pkey_ctx_free: symbol(&library, file, "EVP_PKEY_CTX_free")?,
                derive_init: symbol(&library, file, "EVP_PKEY_derive_init")?,
                derive_set_peer: symbol(&library, file, "EVP_PKEY_derive_set_peer")?,
                derive: symbol(&library, file, "EVP_PKEY_derive")?,
                _library: library,
            })
        }
    }
}

static API: OnceLock<Option<Api>> = OnceLock::new();

/// The library, opened and checked on first use; `CurveNotSupported` when it cannot be.
fn api() -> Result<&'static Api> {
    API.get_or_init(|| {
        let opened = Api::open(LIBRARY).and_then(|api| match self_test(&api) {
            Ok(()) => Ok(api),
            Err(e) => Err(format!("{LIBRARY} fails the RFC 8032 Ed448 self-test: {e}")),
        });
        match opened {
            Ok(api) => {
                log::info!("Ed448 available, from {LIBRARY}");
                Some(api)
            }
            Err(reason) => {
                log::warn!("Ed448 unavailable (CKR_CURVE_NOT_SUPPORTED): {reason}");
                None
            }
        }
    })
    .as_ref()
    .ok_or(Error::CurveNotSupported)
}

/// Whether Ed448 can be used in this process (the library loads and works).
pub(crate) fn available() -> bool {
    api().is_ok()
}

/// OpenSSL's error queue marked on creation and restored on drop: whatever errors the
/// calls in between left are dropped, and the thread's earlier errors stay.
struct ErrorMark<'a>(&'a Api);

impl<'a> ErrorMark<'a> {
    fn set(api: &'a Api) -> ErrorMark<'a> {
        // SAFETY: no arguments; it only marks the calling thread's error queue.
        unsafe { (api.err_set_mark)() };
        ErrorMark(api)
    }
}

impl Drop for ErrorMark<'_> {
    fn drop(&mut self) {
        // SAFETY: no arguments; pops back to the mark `set` made on this thread (every
        // guard is a local of one function, created and dropped on the same thread).
        unsafe { (self.0.err_pop_to_mark)() };
    }
}

/// An `EVP_PKEY`, freed on drop.
struct Pkey<'a> {
    api: &'a Api,
    ptr: NonNull<c_void>,
}

impl Drop for Pkey<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from an `EVP_PKEY_new_raw_*` call and is freed only here.
        // For a private key, OpenSSL clears the key bytes as it frees them.
        unsafe { (self.api.pkey_free)(self.ptr.as_ptr()) }
    }
}

impl<'a> Pkey<'a> {
    /// A key of type `kind` (`EVP_PKEY_ED448` or `EVP_PKEY_X448`) from its raw bytes.
    fn new(api: &'a Api, constructor: NewRawKey, kind: c_int, bytes: &[u8]) -> Result<Pkey<'a>> {
        // SAFETY: `bytes` is a live buffer of the length passed; OpenSSL copies it. The
        // engine is NULL (none).
        let ptr = unsafe { constructor(kind, ptr::null_mut(), bytes.as_ptr(), bytes.len()) };
        NonNull::new(ptr)
            .map(|ptr| Pkey { api, ptr })
            .ok_or(Error::Internal("EVP_PKEY_new_raw_* for Curve448"))
    }

    fn private(api: &'a Api, kind: c_int, secret: &[u8]) -> Result<Pkey<'a>> {
        Pkey::new(api, api.new_raw_private_key, kind, secret)
    }

    fn public(api: &'a Api, kind: c_int, public: &[u8]) -> Result<Pkey<'a>> {
        Pkey::new(api, api.new_raw_public_key, kind, public)
    }

    /// The public key, `N` bytes (57 for Ed448, 56 for X448).
    fn raw_public<const N: usize>(&self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        let mut len = N;
        // SAFETY: `ptr` is a live EVP_PKEY; `out` has room for `len` bytes, and OpenSSL
        // writes at most `len` and stores the length written in `len`.
        let ok =
            unsafe { (self.api.get_raw_public_key)(self.ptr.as_ptr(), out.as_mut_ptr(), &mut len) };
        if ok != 1 || len != N {
            return Err(Error::Internal("EVP_PKEY_get_raw_public_key for Curve448"));
        }
        Ok(out)
    }
}

/// An `EVP_PKEY_CTX` for X448 derivation, freed on drop.
struct PkeyCtx<'a> {
    api: &'a Api,
    ptr: NonNull<c_void>,
}

impl Drop for PkeyCtx<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `EVP_PKEY_CTX_new` and is freed only here.
        unsafe { (self.api.pkey_ctx_free)(self.ptr.as_ptr()) }
    }
}

impl<'a> PkeyCtx<'a> {
    /// A derivation context for `key`, initialised (`EVP_PKEY_derive_init`).
    fn derive(api: &'a Api, key: &Pkey<'_>) -> Result<PkeyCtx<'a>> {
        // SAFETY: `key` is live; the context takes its own reference to it. NULL engine.
        let ptr = unsafe { (api.pkey_ctx_new)(key.ptr.as_ptr(), ptr::null_mut()) };
        let ctx = NonNull::new(ptr)
            .map(|ptr| PkeyCtx { api, ptr })
            .ok_or(Error::Internal("EVP_PKEY_CTX_new for X448"))?;
        // SAFETY: live context.
        if unsafe { (api.derive_init)(ctx.ptr.as_ptr()) } != 1 {
            return Err(Error::Internal("EVP_PKEY_derive_init for X448"));
        }
        Ok(ctx)
    }
}

/// An `EVP_MD_CTX`, freed on drop.
struct MdCtx<'a> {
    api: &'a Api,
    ptr: NonNull<c_void>,
}

impl Drop for MdCtx<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `EVP_MD_CTX_new` and is freed only here; freeing it
        // also frees the EVP_PKEY_CTX the init call made inside it.
        unsafe { (self.api.md_ctx_free)(self.ptr.as_ptr()) }
    }
}

impl<'a> MdCtx<'a> {
    /// A context initialised with `init` (sign or verify) for `key`. Ed448 takes no
    /// digest: RFC 8032's hash is part of the algorithm, so `type` is NULL.
    fn new(api: &'a Api, init: DigestInit, key: &Pkey<'_>) -> Result<MdCtx<'a>> {
        // SAFETY: no arguments.
        let ptr = unsafe { (api.md_ctx_new)() };
        let ctx = NonNull::new(ptr)
            .map(|ptr| MdCtx { api, ptr })
            .ok_or(Error::Internal("EVP_MD_CTX_new"))?;
        // SAFETY: `ctx` and `key` are live; the EVP_PKEY_CTX out-pointer, digest and
        // engine are NULL (not wanted, none, none). The context takes its own
        // reference to the key.
        let ok = unsafe {
            init(
                ctx.ptr.as_ptr(),
                ptr::null_mut(),
                ptr::null(),
                ptr::null_mut(),
                key.ptr.as_ptr(),
            )
        };
        if ok != 1 {
            return Err(Error::Internal("EVP_Digest{Sign,Verify}Init for Ed448"));
        }
        Ok(ctx)
    }
}

fn array<const N: usize>(bytes: &[u8]) -> Result<&[u8; N]> {
    bytes.try_into().map_err(|_| Error::AttributeValueInvalid)
}

fn public_of(api: &Api, seed: &[u8; ED448_KEY_LEN]) -> Result<[u8; ED448_KEY_LEN]> {
    let _mark = ErrorMark::set(api);
    Pkey::private(api, EVP_PKEY_ED448, seed)?.raw_public()
}

fn x448_public_of(api: &Api, scalar: &[u8; X448_KEY_LEN]) -> Result<[u8; X448_KEY_LEN]> {
    let _mark = ErrorMark::set(api);
    Pkey::private(api, EVP_PKEY_X448, scalar)?.raw_public()
}

/// X448(scalar, peer) (RFC 7748 §5). OpenSSL refuses an all-zero result (a peer of low
/// order, §6.2); it is checked here again. Either is `MechanismParamInvalid`: the peer's
/// public key is the caller's mechanism parameter.
fn x448_agree(
    api: &Api,
    scalar: &[u8; X448_KEY_LEN],
    peer: &[u8; X448_KEY_LEN],
) -> Result<Zeroizing<[u8; X448_KEY_LEN]>> {
    let _mark = ErrorMark::set(api);
    let key = Pkey::private(api, EVP_PKEY_X448, scalar)?;
    let peer = Pkey::public(api, EVP_PKEY_X448, peer)?;
    let ctx = PkeyCtx::derive(api, &key)?;
    // SAFETY: live context and peer key; the context takes its own reference to the peer.
    if unsafe { (api.derive_set_peer)(ctx.ptr.as_ptr(), peer.ptr.as_ptr()) } != 1 {
        return Err(Error::MechanismParamInvalid);
    }
    let mut secret = Zeroizing::new([0u8; X448_KEY_LEN]);
    let mut len = X448_KEY_LEN;
    // SAFETY: live context; `secret` has room for `len` bytes and OpenSSL stores the
    // length written in `len`.
    let ok = unsafe { (api.derive)(ctx.ptr.as_ptr(), secret.as_mut_ptr(), &mut len) };
    if ok != 1 || len != X448_KEY_LEN || secret.iter().all(|b| *b == 0) {
        return Err(Error::MechanismParamInvalid);
    }
    Ok(secret)
}

fn sign_with(
    api: &Api,
    seed: &[u8; ED448_KEY_LEN],
    message: &[u8],
) -> Result<[u8; ED448_SIGNATURE_LEN]> {
    let _mark = ErrorMark::set(api);
    let key = Pkey::private(api, EVP_PKEY_ED448, seed)?;
    let ctx = MdCtx::new(api, api.digest_sign_init, &key)?;
    let mut sig = [0u8; ED448_SIGNATURE_LEN];
    let mut len = ED448_SIGNATURE_LEN;
    // SAFETY: live context; `sig` has room for `len` bytes and OpenSSL stores the length
    // written in `len`; `message` is a live buffer of the length passed.
    let ok = unsafe {
        (api.digest_sign)(
            ctx.ptr.as_ptr(),
            sig.as_mut_ptr(),
            &mut len,
            message.as_ptr(),
            message.len(),
        )
    };
    if ok != 1 || len != ED448_SIGNATURE_LEN {
        return Err(Error::Internal("EVP_DigestSign for Ed448"));
    }
    Ok(sig)
}

fn verify_with(api: &Api, public: &[u8; ED448_KEY_LEN], message: &[u8], sig: &[u8]) -> Result<()> {
    if sig.len() != ED448_SIGNATURE_LEN {
        return Err(Error::SignatureLenRange);
    }
    let _mark = ErrorMark::set(api);
    let key = Pkey::public(api, EVP_PKEY_ED448, public)?;
    let ctx = MdCtx::new(api, api.digest_verify_init, &key)?;
    // SAFETY: live context; `sig` and `message` are live buffers of the lengths passed.
    let ok = unsafe {
        (api.digest_verify)(
            ctx.ptr.as_ptr(),
            sig.as_ptr(),
            sig.len(),
            message.as_ptr(),
            message.len(),
        )
    };
    // 1 is a valid signature; 0 an invalid one; below 0 an input OpenSSL could not
    // use (such as a public key that is no point of the curve): invalid too.
    if ok != 1 {
        return Err(Error::SignatureInvalid);
    }
    Ok(())
}

/// RFC 8032 §7.4, "1 octet": the public key and the signature must come out right, and
/// the signature must verify, before the library is trusted with Ed448; and RFC 7748
/// §6.2's public key and shared secret for X448. Either failing disables both.
fn self_test(api: &Api) -> Result<()> {
    const SEED: &str = "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463a\
                        fbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e";
    const PUBLIC: &str = "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c086\
                          6aea01eb00742802b8438ea4cb82169c235160627b4c3a9480";
    const SIGNATURE: &str = "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f435\
                             2541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cb\
                             cee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0f\
                             f3348ab21aa4adafd1d234441cf807c03a00";
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect()
    };
    let seed = Zeroizing::new(hex(SEED));
    let seed = array(&seed)?;
    let public = public_of(api, seed)?;
    if public.as_slice() != hex(PUBLIC) {
        return Err(Error::Internal("Ed448 self-test: public key"));
    }
    let sig = sign_with(api, seed, &[0x03])?;
    if sig.as_slice() != hex(SIGNATURE) {
        return Err(Error::Internal("Ed448 self-test: signature"));
    }
    verify_with(api, &public, &[0x03], &sig)?;
    if verify_with(api, &public, &[0x04], &sig).is_ok() {
        return Err(Error::Internal("Ed448 self-test: a wrong message verifies"));
    }
    // RFC 7748 §6.2: Alice's public key, and the secret she shares with Bob.
    const ALICE: &str = "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d\
                         d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b";
    const ALICE_PUBLIC: &str = "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c\
                                22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0";
    const BOB_PUBLIC: &str = "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430\
                              27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609";
    const SHARED: &str = "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b\
                          b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d";
    let alice = Zeroizing::new(hex(ALICE));
    let alice = array(&alice)?;
    if x448_public_of(api, alice)?.as_slice() != hex(ALICE_PUBLIC) {
        return Err(Error::Internal("X448 self-test: public key"));
    }
    let shared = x448_agree(api, alice, array(&hex(BOB_PUBLIC))?)?;
    if shared.as_slice() != hex(SHARED) {
        return Err(Error::Internal("X448 self-test: shared secret"));
    }
    Ok(())
}

/// A public key of `N` bytes (57 for Ed448, 56 for X448) from `CKA_EC_POINT` or an ECDH
/// peer's public data: a DER OCTET STRING of `N` bytes, or the `N` bytes bare (they
/// differ in length, so cannot be confused).
pub(crate) fn public_from_attribute<const N: usize>(value: &[u8]) -> Result<[u8; N]> {
    let bare = if value.len() == N + 2 {
        asn1::octet_string_contents(value).ok_or(Error::AttributeValueInvalid)?
    } else {
        value
    };
    Ok(*array(bare)?)
}

/// `CKA_EC_POINT` as the module writes it: DER OCTET STRING.
pub(crate) fn public_to_attribute(public: &[u8]) -> Vec<u8> {
    asn1::octet_string(public)
}

/// An Ed448 private key: its 57-byte seed (RFC 8032 §5.2.5) and the public key derived
/// from it (never taken from an attribute that could disagree).
pub struct Ed448Private {
    seed: Zeroizing<[u8; ED448_KEY_LEN]>,
    public: [u8; ED448_KEY_LEN],
}

impl std::fmt::Debug for Ed448Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed448Private")
    }
}

impl Ed448Private {
    /// The key of a 57-byte seed; `CurveNotSupported` without the library.
    pub fn from_seed(seed: &[u8]) -> Result<Ed448Private> {
        let seed = Zeroizing::new(*array(seed)?);
        let public = public_of(api()?, &seed)?;
        Ok(Ed448Private { seed, public })
    }

    /// A new key from the module's generator: (seed, public key).
    pub fn generate() -> Result<(Zeroizing<[u8; ED448_KEY_LEN]>, [u8; ED448_KEY_LEN])> {
        let api = api()?;
        let mut seed = Zeroizing::new([0u8; ED448_KEY_LEN]);
        super::rand::random_fill(seed.as_mut())?;
        let public = public_of(api, &seed)?;
        Ok((seed, public))
    }

    pub fn public(&self) -> [u8; ED448_KEY_LEN] {
        self.public
    }

    /// Pure Ed448 over the whole message (no context).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(sign_with(api()?, &self.seed, message)?.to_vec())
    }
}

/// An X448 private key: its 56-byte scalar as RFC 7748 gives it (clamped on use) and the
/// public key derived from it.
pub struct X448Private {
    scalar: Zeroizing<[u8; X448_KEY_LEN]>,
    public: [u8; X448_KEY_LEN],
}

impl std::fmt::Debug for X448Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("X448Private")
    }
}

impl X448Private {
    /// The key of a 56-byte scalar; `CurveNotSupported` without the library.
    pub fn from_scalar(scalar: &[u8]) -> Result<X448Private> {
        let scalar = Zeroizing::new(*array(scalar)?);
        let public = x448_public_of(api()?, &scalar)?;
        Ok(X448Private { scalar, public })
    }

    /// A new key from the module's generator: (scalar, public key).
    pub fn generate() -> Result<(Zeroizing<[u8; X448_KEY_LEN]>, [u8; X448_KEY_LEN])> {
        let api = api()?;
        let mut scalar = Zeroizing::new([0u8; X448_KEY_LEN]);
        super::rand::random_fill(scalar.as_mut())?;
        let public = x448_public_of(api, &scalar)?;
        Ok((scalar, public))
    }

    /// X448(scalar, 5).
    pub fn public(&self) -> [u8; X448_KEY_LEN] {
        self.public
    }

    /// X448(scalar, peer). A peer of the wrong length, or one giving the all-zero secret
    /// (a point of low order), is `MechanismParamInvalid`.
    pub fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let peer: &[u8; X448_KEY_LEN] =
            peer.try_into().map_err(|_| Error::MechanismParamInvalid)?;
        let secret = x448_agree(api()?, &self.scalar, peer)?;
        Ok(Zeroizing::new(secret.to_vec()))
    }
}

/// Verifies a pure Ed448 signature (no context).
pub(crate) fn ed448_verify(public: &[u8; ED448_KEY_LEN], message: &[u8], sig: &[u8]) -> Result<()> {
    verify_with(api()?, public, message, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// These tests need libcrypto.so.3; without it they fail and say so.
    fn require_library() {
        assert!(
            available(),
            "Ed448 needs {LIBRARY} (OpenSSL 3, Debian package libssl3); it could not be \
             loaded or failed its self-test (see the log)"
        );
    }

    #[test]
    fn ed448_matches_rfc_8032_blank() {
        require_library();
        // RFC 8032 §7.4, "-----Blank" (empty message).
        let key = Ed448Private::from_seed(&hex(concat!(
            "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3",
            "528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b"
        )))
        .unwrap();
        let public = key.public();
        assert_eq!(
            public.to_vec(),
            hex(concat!(
                "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778",
                "edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180"
            ))
        );
        let sig = key.sign(b"").unwrap();
        assert_eq!(
            sig,
            hex(concat!(
                "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f",
                "2b233f034f628281f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a",
                "9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cdda8530a113a0f4db",
                "b61149f05a7363268c71d95808ff2e652600"
            ))
        );
        ed448_verify(&public, b"", &sig).unwrap();
        assert!(matches!(
            ed448_verify(&public, b"x", &sig),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            ed448_verify(&public, b"", &sig[1..]),
            Err(Error::SignatureLenRange)
        ));
    }

    #[test]
    fn generated_keys_work_and_encodings_read_back() {
        require_library();
        let (seed, public) = Ed448Private::generate().unwrap();
        let key = Ed448Private::from_seed(seed.as_ref()).unwrap();
        assert_eq!(key.public(), public);
        let sig = key.sign(b"m").unwrap();
        assert_eq!(sig.len(), ED448_SIGNATURE_LEN);
        ed448_verify(&public, b"m", &sig).unwrap();
        let attr = public_to_attribute(&public);
        assert_eq!(&attr[..2], &[0x04, 0x39]);
        assert_eq!(public_from_attribute(&attr).unwrap(), public);
        assert_eq!(public_from_attribute(&public).unwrap(), public);
        assert!(public_from_attribute::<ED448_KEY_LEN>(&attr[..58]).is_err());
        assert!(public_from_attribute::<ED448_KEY_LEN>(&[0x05; 59]).is_err());
        assert!(Ed448Private::from_seed(&[1; 56]).is_err());
        assert!(Ed448Private::from_seed(&[1; 32]).is_err());
    }

    #[test]
    fn a_public_key_off_the_curve_verifies_nothing() {
        require_library();
        // y = 2 is not the y of any point of edwards448 (x² would not be a square).
        let mut bad = [0u8; ED448_KEY_LEN];
        bad[0] = 2;
        let (seed, _) = Ed448Private::generate().unwrap();
        let sig = Ed448Private::from_seed(seed.as_ref())
            .unwrap()
            .sign(b"m")
            .unwrap();
        assert!(matches!(
            ed448_verify(&bad, b"m", &sig),
            Err(Error::SignatureInvalid)
        ));
    }

    #[test]
    fn a_missing_library_or_one_without_the_symbols_is_refused_with_the_reason() {
        let missing = Api::open("libcrypto-absent.so.0").err().unwrap();
        assert!(
            missing.contains("cannot load libcrypto-absent.so.0"),
            "{missing}"
        );
        // The C library loads but has none of OpenSSL's functions.
        let wrong = Api::open("libc.so.6").err().unwrap();
        assert!(
            wrong.contains("libc.so.6 has no EVP_PKEY_new_raw_private_key"),
            "{wrong}"
        );
    }

    #[test]
    fn x448_matches_rfc_7748_section_6_2_and_refuses_low_order_peers() {
        require_library();
        let alice = X448Private::from_scalar(&hex(concat!(
            "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d",
            "d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"
        )))
        .unwrap();
        let bob = X448Private::from_scalar(&hex(concat!(
            "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d",
            "6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"
        )))
        .unwrap();
        assert_eq!(
            bob.public().to_vec(),
            hex(concat!(
                "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430",
                "27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609"
            ))
        );
        let k = hex(concat!(
            "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b",
            "b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d"
        ));
        assert_eq!(*alice.agree(&bob.public()).unwrap(), k);
        assert_eq!(*bob.agree(&alice.public()).unwrap(), k);
        // u = 0 and u = 1 are of low order: the secret would be all zeros.
        let mut one = [0u8; X448_KEY_LEN];
        one[0] = 1;
        for peer in [[0u8; X448_KEY_LEN], one] {
            assert!(matches!(
                alice.agree(&peer),
                Err(Error::MechanismParamInvalid)
            ));
        }
        assert!(matches!(
            alice.agree(&bob.public()[1..]),
            Err(Error::MechanismParamInvalid)
        ));
        let (scalar, public) = X448Private::generate().unwrap();
        assert_eq!(
            X448Private::from_scalar(scalar.as_ref()).unwrap().public(),
            public
        );
        assert!(X448Private::from_scalar(&[1; 57]).is_err());
        let attr = public_to_attribute(&public);
        assert_eq!(&attr[..2], &[0x04, 0x38]);
        assert_eq!(
            public_from_attribute::<X448_KEY_LEN>(&attr).unwrap(),
            public
        );
        assert_eq!(
            public_from_attribute::<X448_KEY_LEN>(&public).unwrap(),
            public
        );
        assert!(public_from_attribute::<X448_KEY_LEN>(&attr[..57]).is_err());
    }

    #[test]
    fn both_curve_parameter_forms_name_each_curve() {
        assert!(is_ed448_params(b"\x06\x03\x2b\x65\x71"));
        assert!(is_ed448_params(b"\x13\x0aedwards448"));
        assert!(!is_ed448_params(b"\x06\x03\x2b\x65\x70"));
        assert!(!is_ed448_params(b"\x13\x0aedwards449"));
        assert!(is_x448_params(b"\x06\x03\x2b\x65\x6f"));
        assert!(is_x448_params(b"\x13\x08curve448"));
        assert!(!is_x448_params(OID_ED448));
        assert!(!is_ed448_params(OID_X448));
    }
}

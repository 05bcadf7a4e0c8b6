//! PKCS#11 3.0 §5.2 and §5.9-5.13 through the C ABI: every error of a step ends the
//! active operation of its kind. A single-part or final call "always terminates" the
//! operation unless it answers `CKR_BUFFER_TOO_SMALL` or a successful length query, and
//! an update that fails terminates it; the caller's bad pointers are such errors too.
//! Single-part and multi-part calls do not mix, and mixing them ends the operation. A
//! call naming no session, or a refused `Init`, ends nothing. google/pkcs11test checks
//! the same (`SecretKeyTest.EncryptErrors`, `...UpdateErrors`, `EncryptModePolicing2`,
//! `DigestTest.DigestInvalid`, `...Intersperse`); SoftHSMv2 fails those too.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::ptr::null_mut;

use common::mech::{AesSession, Ck, RawMech};
use common::raw::result as rv;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;

/// The five kinds of operation a session holds one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Encrypt,
    Decrypt,
    Digest,
    Sign,
    Verify,
}

const KINDS: [Kind; 5] = [
    Kind::Encrypt,
    Kind::Decrypt,
    Kind::Digest,
    Kind::Sign,
    Kind::Verify,
];

/// An AES-128 key and an HMAC key (32 bytes) in a user session, with the function list.
struct Fixture {
    base: AesSession,
    hmac: CK_OBJECT_HANDLE,
}

/// The session, its AES key and the function list (`fx.s()`, `fx.ck`, `fx.aes`).
impl std::ops::Deref for Fixture {
    type Target = AesSession;

    fn deref(&self) -> &AesSession {
        &self.base
    }
}

fn fixture() -> Fixture {
    let base = AesSession::new(&[]);
    let hmac = base
        .session
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Sign(true),
                Attribute::Verify(true),
            ],
        )
        .unwrap()
        .handle();
    Fixture { base, hmac }
}

impl Fixture {
    /// Starts an operation of `kind`: AES-ECB, SHA-256, or HMAC-SHA-256.
    fn init(&self, kind: Kind) -> Result<(), RvError> {
        let s = self.s();
        match kind {
            Kind::Encrypt => self
                .ck
                .encrypt_init(s, &RawMech::none(CKM_AES_ECB), self.aes),
            Kind::Decrypt => self
                .ck
                .decrypt_init(s, &RawMech::none(CKM_AES_ECB), self.aes),
            Kind::Digest => self.ck.digest_init(s, &RawMech::none(CKM_SHA256)),
            Kind::Sign => self
                .ck
                .sign_init(s, &RawMech::none(CKM_SHA256_HMAC), self.hmac),
            Kind::Verify => self
                .ck
                .verify_init(s, &RawMech::none(CKM_SHA256_HMAC), self.hmac),
        }
    }

    /// Ends the operation of `kind` with an `Init` given no mechanism (3.0).
    fn cancel(&self, kind: Kind) -> Result<(), RvError> {
        let (s, f) = (self.s(), self.f());
        // SAFETY: a NULL mechanism is allowed; no other pointer.
        rv(unsafe {
            match kind {
                Kind::Encrypt => f.C_EncryptInit.unwrap()(s, null_mut(), 0),
                Kind::Decrypt => f.C_DecryptInit.unwrap()(s, null_mut(), 0),
                Kind::Digest => f.C_DigestInit.unwrap()(s, null_mut()),
                Kind::Sign => f.C_SignInit.unwrap()(s, null_mut(), 0),
                Kind::Verify => f.C_VerifyInit.unwrap()(s, null_mut(), 0),
            }
        })
    }

    /// Whether no operation of `kind` is active: a new `Init` succeeds (and the
    /// operation it started is ended again), where an active one answers
    /// `CKR_OPERATION_ACTIVE` (and is ended, for the next check).
    fn ended(&self, kind: Kind) -> bool {
        let again = self.init(kind);
        assert!(
            matches!(again, Ok(()) | Err(RvError::OperationActive)),
            "{kind:?}: {again:?}"
        );
        assert_eq!(self.cancel(kind), Ok(()), "{kind:?}");
        again.is_ok()
    }

    /// Call `i` of `kind` given pointers a caller must not pass (a NULL length pointer,
    /// a NULL buffer of non-zero length), which `CKR_ARGUMENTS_BAD` refuses: its name
    /// and answer; `None` past the last.
    fn bad_call(&self, kind: Kind, i: usize) -> Option<(&'static str, CK_RV)> {
        let (s, f) = (self.s(), self.f());
        let data = [0x11u8; 32];
        let d = data.as_ptr() as *mut u8;
        let mut out = [0u8; 64];
        let o = out.as_mut_ptr();
        let mut len: CK_ULONG = 64;
        let l: *mut CK_ULONG = &mut len;
        let n = null_mut();
        // SAFETY: every pointer passed is NULL or alive (and as long as its length says)
        // for the call.
        let called = unsafe {
            match (kind, i) {
                (Kind::Encrypt, 0) => (
                    "C_Encrypt, NULL length",
                    f.C_Encrypt.unwrap()(s, d, 16, o, n),
                ),
                (Kind::Encrypt, 1) => (
                    "C_Encrypt, NULL data",
                    f.C_Encrypt.unwrap()(s, n.cast(), 16, o, l),
                ),
                (Kind::Encrypt, 2) => (
                    "C_EncryptUpdate, NULL length",
                    f.C_EncryptUpdate.unwrap()(s, d, 16, o, n),
                ),
                (Kind::Encrypt, 3) => (
                    "C_EncryptUpdate, NULL data",
                    f.C_EncryptUpdate.unwrap()(s, n.cast(), 16, o, l),
                ),
                (Kind::Encrypt, 4) => (
                    "C_EncryptFinal, NULL length",
                    f.C_EncryptFinal.unwrap()(s, o, n),
                ),
                (Kind::Decrypt, 0) => (
                    "C_Decrypt, NULL length",
                    f.C_Decrypt.unwrap()(s, d, 16, o, n),
                ),
                (Kind::Decrypt, 1) => (
                    "C_Decrypt, NULL data",
                    f.C_Decrypt.unwrap()(s, n.cast(), 16, o, l),
                ),
                (Kind::Decrypt, 2) => (
                    "C_DecryptUpdate, NULL length",
                    f.C_DecryptUpdate.unwrap()(s, d, 16, o, n),
                ),
                (Kind::Decrypt, 3) => (
                    "C_DecryptUpdate, NULL data",
                    f.C_DecryptUpdate.unwrap()(s, n.cast(), 16, o, l),
                ),
                (Kind::Decrypt, 4) => (
                    "C_DecryptFinal, NULL length",
                    f.C_DecryptFinal.unwrap()(s, o, n),
                ),
                (Kind::Digest, 0) => ("C_Digest, NULL length", f.C_Digest.unwrap()(s, d, 16, o, n)),
                (Kind::Digest, 1) => (
                    "C_Digest, NULL data",
                    f.C_Digest.unwrap()(s, n.cast(), 16, o, l),
                ),
                (Kind::Digest, 2) => (
                    "C_DigestUpdate, NULL data",
                    f.C_DigestUpdate.unwrap()(s, n.cast(), 16),
                ),
                (Kind::Digest, 3) => (
                    "C_DigestFinal, NULL length",
                    f.C_DigestFinal.unwrap()(s, o, n),
                ),
                (Kind::Sign, 0) => ("C_Sign, NULL length", f.C_Sign.unwrap()(s, d, 16, o, n)),
                (Kind::Sign, 1) => (
                    "C_Sign, NULL data",
                    f.C_Sign.unwrap()(s, n.cast(), 16, o, l),
                ),
                (Kind::Sign, 2) => (
                    "C_SignUpdate, NULL data",
                    f.C_SignUpdate.unwrap()(s, n.cast(), 16),
                ),
                (Kind::Sign, 3) => ("C_SignFinal, NULL length", f.C_SignFinal.unwrap()(s, o, n)),
                (Kind::Verify, 0) => (
                    "C_Verify, NULL data",
                    f.C_Verify.unwrap()(s, n.cast(), 16, d, 32),
                ),
                (Kind::Verify, 1) => (
                    "C_Verify, NULL signature",
                    f.C_Verify.unwrap()(s, d, 16, n.cast(), 32),
                ),
                (Kind::Verify, 2) => (
                    "C_VerifyUpdate, NULL data",
                    f.C_VerifyUpdate.unwrap()(s, n.cast(), 16),
                ),
                (Kind::Verify, 3) => (
                    "C_VerifyFinal, NULL signature",
                    f.C_VerifyFinal.unwrap()(s, n.cast(), 32),
                ),
                _ => return None,
            }
        };
        Some(called)
    }
}

#[test]
fn a_step_given_bad_pointers_is_arguments_bad_and_ends_the_operation() {
    let fx = fixture();
    let mut wrong = Vec::new();
    let mut tried = 0;
    for kind in KINDS {
        for i in 0.. {
            fx.init(kind).unwrap();
            let Some((name, code)) = fx.bad_call(kind, i) else {
                fx.cancel(kind).unwrap();
                break;
            };
            tried += 1;
            if rv(code) != Err(RvError::ArgumentsBad) {
                wrong.push(format!("{name}: {:?}", rv(code)));
            }
            if !fx.ended(kind) {
                wrong.push(format!("{name}: the operation survived the refusal"));
            }
        }
    }
    assert_eq!(tried, 22);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

impl Fixture {
    /// `C_Encrypt` or `C_Decrypt` (by `kind`) of 16 bytes; `capacity` `None` asks the
    /// length.
    fn cipher_once(&self, kind: Kind, capacity: Option<usize>) -> Result<(), RvError> {
        let data = [0x22u8; 16];
        match kind {
            Kind::Encrypt => self.ck.encrypt_call(self.s(), &data, capacity).rv,
            _ => self.ck.decrypt_call(self.s(), &data, capacity).rv,
        }
    }

    /// `C_EncryptUpdate` or `C_DecryptUpdate` of 16 bytes into a buffer of `capacity`.
    fn cipher_update(&self, kind: Kind, capacity: usize) -> Result<(), RvError> {
        let (s, f) = (self.s(), self.f());
        let data = [0x22u8; 16];
        let mut out = [0u8; 64];
        let mut len = capacity as CK_ULONG;
        let update = match kind {
            Kind::Encrypt => f.C_EncryptUpdate.unwrap(),
            _ => f.C_DecryptUpdate.unwrap(),
        };
        // SAFETY: the input and the output (at least `capacity` bytes) are alive.
        rv(unsafe { update(s, data.as_ptr() as *mut _, 16, out.as_mut_ptr(), &mut len) })
    }

    /// `C_DigestFinal`, `C_SignFinal` or `C_EncryptFinal`/`C_DecryptFinal` (by `kind`)
    /// into a 64-byte buffer; `capacity` `None` asks the length.
    fn finish(&self, kind: Kind, capacity: Option<usize>) -> Result<(), RvError> {
        let (s, f) = (self.s(), self.f());
        let mut out = [0u8; 64];
        let mut len = capacity.unwrap_or(0) as CK_ULONG;
        let o = if capacity.is_some() {
            out.as_mut_ptr()
        } else {
            null_mut()
        };
        let last = match kind {
            Kind::Encrypt => f.C_EncryptFinal.unwrap(),
            Kind::Decrypt => f.C_DecryptFinal.unwrap(),
            Kind::Digest => f.C_DigestFinal.unwrap(),
            Kind::Sign => f.C_SignFinal.unwrap(),
            Kind::Verify => unreachable!("C_VerifyFinal takes a signature"),
        };
        // SAFETY: the output is NULL or 64 bytes, alive.
        rv(unsafe { last(s, o, &mut len) })
    }

    fn digest_once(&self, capacity: Option<usize>) -> Result<(), RvError> {
        let f = self.f().C_Digest.unwrap();
        let s = self.s();
        let data = [0x33u8; 16];
        Ck::out_once(
            // SAFETY: the input is alive; the output is as `out_once` describes it.
            &mut |o, l| unsafe { f(s, data.as_ptr() as *mut _, 16, o, l) },
            capacity,
        )
        .rv
    }

    fn update(&self, kind: Kind) -> Result<(), RvError> {
        let data = [0x44u8; 16];
        let (s, f) = (self.s(), self.f());
        let update = match kind {
            Kind::Digest => f.C_DigestUpdate.unwrap(),
            Kind::Sign => f.C_SignUpdate.unwrap(),
            Kind::Verify => f.C_VerifyUpdate.unwrap(),
            _ => return self.cipher_update(kind, 64),
        };
        // SAFETY: the input is alive for the call.
        rv(unsafe { update(s, data.as_ptr() as *mut _, 16) })
    }
}

/// A single-part call (a length query is enough) decides that the operation is
/// single-part: an update or a final call is then `CKR_OPERATION_ACTIVE`, and ends it.
#[test]
fn an_update_or_final_after_a_single_part_length_query_is_refused_and_ends_the_operation() {
    let fx = fixture();
    for kind in [Kind::Encrypt, Kind::Decrypt] {
        for last in [false, true] {
            fx.init(kind).unwrap();
            assert_eq!(
                fx.cipher_once(kind, None),
                Ok(()),
                "{kind:?}: the length query"
            );
            let mixed = if last {
                fx.finish(kind, Some(64))
            } else {
                fx.cipher_update(kind, 64)
            };
            assert_eq!(
                mixed,
                Err(RvError::OperationActive),
                "{kind:?}, final {last}"
            );
            assert!(
                fx.ended(kind),
                "{kind:?}, final {last}: the operation survived"
            );
        }
    }
    fx.init(Kind::Digest).unwrap();
    assert_eq!(fx.digest_once(None), Ok(()));
    assert_eq!(
        fx.finish(Kind::Digest, Some(64)),
        Err(RvError::OperationActive)
    );
    assert_eq!(
        fx.digest_once(Some(64)),
        Err(RvError::OperationNotInitialized)
    );
    fx.init(Kind::Sign).unwrap();
    assert_eq!(fx.ck.sign_call(fx.s(), b"data", None).rv, Ok(()));
    assert_eq!(fx.update(Kind::Sign), Err(RvError::OperationActive));
    assert!(fx.ended(Kind::Sign));
}

/// An update decides that the operation is multi-part: a single-part call (a length
/// query too) is then `CKR_OPERATION_ACTIVE`, and ends it.
#[test]
fn a_single_part_call_after_an_update_is_refused_and_ends_the_operation() {
    let fx = fixture();
    for kind in KINDS {
        for query in [false, true] {
            fx.init(kind).unwrap();
            assert_eq!(fx.update(kind), Ok(()), "{kind:?}: the update");
            let capacity = (!query).then_some(64);
            let mixed = match kind {
                Kind::Encrypt | Kind::Decrypt => fx.cipher_once(kind, capacity),
                Kind::Digest => fx.digest_once(capacity),
                Kind::Sign => fx.ck.sign_call(fx.s(), b"data", capacity).rv,
                Kind::Verify => fx.ck.verify_call(fx.s(), b"data", &[0u8; 32]),
            };
            assert_eq!(
                mixed,
                Err(RvError::OperationActive),
                "{kind:?}, query {query}"
            );
            assert!(
                fx.ended(kind),
                "{kind:?}, query {query}: the operation survived"
            );
        }
    }
    // After the final call's length query too.
    fx.init(Kind::Digest).unwrap();
    assert_eq!(fx.update(Kind::Digest), Ok(()));
    assert_eq!(fx.finish(Kind::Digest, None), Ok(()));
    assert_eq!(fx.digest_once(Some(64)), Err(RvError::OperationActive));
    assert_eq!(
        fx.finish(Kind::Digest, Some(64)),
        Err(RvError::OperationNotInitialized)
    );
}

/// Output kept after `CKR_BUFFER_TOO_SMALL` goes to the retry of the call that made it;
/// another call meanwhile is `CKR_OPERATION_ACTIVE` and ends the operation (the output
/// goes with it).
#[test]
fn another_call_while_output_waits_for_its_retry_is_refused_and_ends_the_operation() {
    let fx = fixture();
    fx.init(Kind::Encrypt).unwrap();
    assert_eq!(
        fx.cipher_update(Kind::Encrypt, 1),
        Err(RvError::BufferTooSmall)
    );
    assert_eq!(
        fx.finish(Kind::Encrypt, Some(64)),
        Err(RvError::OperationActive)
    );
    assert!(fx.ended(Kind::Encrypt));
    // Control: the retry itself gets the output, and the operation goes on.
    fx.init(Kind::Encrypt).unwrap();
    assert_eq!(
        fx.cipher_update(Kind::Encrypt, 1),
        Err(RvError::BufferTooSmall)
    );
    assert_eq!(fx.cipher_update(Kind::Encrypt, 64), Ok(()));
    assert_eq!(fx.finish(Kind::Encrypt, Some(64)), Ok(()));
    assert!(fx.ended(Kind::Encrypt), "a successful final call ends it");
}

/// What is not an error ends nothing: a length query and a short buffer keep the
/// operation; so does a call that names another session, and a refused `Init`.
#[test]
fn length_queries_short_buffers_other_sessions_and_refused_inits_end_nothing() {
    let fx = fixture();
    let data = [0x55u8; 16];
    fx.init(Kind::Encrypt).unwrap();
    assert_eq!(fx.cipher_once(Kind::Encrypt, None), Ok(()));
    assert_eq!(
        fx.cipher_once(Kind::Encrypt, Some(1)),
        Err(RvError::BufferTooSmall)
    );
    let unknown = fx.s().wrapping_add(1000);
    assert_eq!(
        fx.ck.encrypt_call(unknown, &data, Some(64)).rv,
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        fx.ck
            .encrypt_init(fx.s(), &RawMech::none(CKM_AES_ECB), fx.aes),
        Err(RvError::OperationActive),
        "a second init is refused"
    );
    assert_eq!(
        fx.cipher_once(Kind::Encrypt, Some(64)),
        Ok(()),
        "the operation lived through all of that and finishes"
    );
    assert!(fx.ended(Kind::Encrypt));
}

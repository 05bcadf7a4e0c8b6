//! A second attacker's review of the fixes a8dd673, 0f9be6a and 94af943, and of the KMS
//! model across processes: each test reproduces one defect found by reading the code,
//! asserts the answer the specification (or docs/security.md, docs/key-model.md)
//! requires, and fails against the module as it was reviewed (94af943). Its doc comment
//! says what is wrong. Run with `cargo nextest run --test attack_review13b`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::Session;
use cryptoki_sys::*;

/// The module's function list, for the calls `cryptoki` 0.12 cannot express (a NULL
/// mechanism, a short output buffer).
struct Functions {
    _library: cryptoki_sys::Pkcs11,
    f: CK_FUNCTION_LIST,
}

impl Functions {
    fn load() -> Functions {
        let path = module_path();
        // SAFETY: loading the module under test (already loaded by cryptoki: the same
        // library, so the same process state).
        let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }.expect("load module");
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: one output pointer.
        assert_eq!(unsafe { library.C_GetFunctionList(&mut list) }, CKR_OK);
        // SAFETY: the module keeps its list alive while loaded; it is copied.
        let f = unsafe { *list };
        Functions {
            _library: library,
            f,
        }
    }

    /// `C_EncryptInit` with `mechanism` (`None`: a NULL `pMechanism`).
    fn encrypt_init(
        &self,
        session: &Session,
        mechanism: Option<CK_MECHANISM_TYPE>,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        let mut mech = mechanism.map(|m| CK_MECHANISM {
            mechanism: m,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        });
        let ptr = mech
            .as_mut()
            .map_or(std::ptr::null_mut(), |m| m as *mut CK_MECHANISM);
        // SAFETY: the mechanism (if any) is alive for the call.
        unsafe { self.f.C_EncryptInit.unwrap()(session.handle(), ptr, key) }
    }

    /// `C_EncryptUpdate` with an output buffer of `capacity` bytes.
    fn encrypt_update(&self, session: &Session, input: &[u8], capacity: usize) -> CK_RV {
        let mut out = vec![0u8; capacity.max(1)];
        let mut len = capacity as CK_ULONG;
        // SAFETY: input and output are alive and as long as the lengths say.
        unsafe {
            self.f.C_EncryptUpdate.unwrap()(
                session.handle(),
                input.as_ptr() as *mut _,
                input.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operations: cancelling with a NULL mechanism (PKCS#11 3.0)
// ---------------------------------------------------------------------------------------

/// Defect: the module says it implements PKCS#11 3.0 (`C_GetInfo`: cryptokiVersion 3.0),
/// but `C_EncryptInit` with a NULL `pMechanism` is `CKR_ARGUMENTS_BAD`
/// (`ffi::raw::read_mechanism`, "NULL pMechanism"), and the active operation stays.
///
/// PKCS#11 3.0 §5.9 (`C_EncryptInit`; the same in §5.10-§5.13 for decryption, digests,
/// signatures and verification): "C_EncryptInit can be called with pMechanism set to
/// NULL_PTR to terminate an active encryption operation. If an active operation
/// operation cannot be cancelled, CKR_OPERATION_CANCEL_FAILED must be returned."
/// Since 94af943 an operation whose output waits for a retry of the same call refuses
/// every other step with `CKR_OPERATION_ACTIVE`; an application that gives up on it (the
/// output it no longer wants) has no way but closing the session to use the session's
/// encryption again. Expected: `CKR_OK`, and a new `C_EncryptInit` succeeds. Actual:
/// `CKR_ARGUMENTS_BAD`, and `C_EncryptInit` stays `CKR_OPERATION_ACTIVE`.
#[test]
fn encrypt_init_with_a_null_mechanism_cancels_the_operation() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let f = Functions::load();
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    assert_eq!(
        f.encrypt_init(&session, Some(CKM_AES_ECB), key.handle()),
        CKR_OK
    );
    // Output kept for a retry of C_EncryptUpdate, which the application abandons.
    assert_eq!(
        f.encrypt_update(&session, &[0u8; 64], 16),
        CKR_BUFFER_TOO_SMALL
    );
    let cancel = f.encrypt_init(&session, None, 0);
    let again = f.encrypt_init(&session, Some(CKM_AES_ECB), key.handle());
    assert!(
        cancel == CKR_OK && again == CKR_OK,
        "C_EncryptInit(NULL_PTR) answered {cancel:#x} (expected CKR_OK, the operation \
         terminated: PKCS#11 3.0 §5.9); a new C_EncryptInit then answered {again:#x}"
    );
}

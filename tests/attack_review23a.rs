//! An attacker's review (branch attack23a) of areas earlier reviews did not cover: the
//! PKCS#11 3.0 message-based functions (`C_MessageEncryptInit` ... `C_MessageDecryptFinal`,
//! `src/ffi/entry/message.rs`, `src/session/message.rs`, `src/mechanism/message.rs`) with
//! hostile `CK_GCM_MESSAGE_PARAMS`, IV generators, keys changed between `Begin` and `Next`;
//! `C_GetOperationState`/`C_SetOperationState` and the dual-function updates;
//! `C_SignRecover`/`C_VerifyRecover`, `C_GetInterface`/`C_GetInterfaceList` with hostile
//! names, versions and flags, and `C_GetMechanismInfo` against what the module accepts.
//!
//! One defect, `DEFECT` in its comment, whose test fails on the reviewed commit:
//! the message steps that check a message's parameters by computing with the key
//! (`Aead::check`, an AES-GCM encryption of an empty message) do not note the secret use,
//! so the stack below the entry point is not scrubbed after a `C_EncryptMessage` length
//! query, a `C_EncryptMessageBegin` or a `C_DecryptMessageBegin`; with an IV of other than
//! 12 bytes the AES key schedule, which starts with the key itself, stays in the host's
//! stack memory. Fixed: `Session::message_once` and `Session::message_begin` note the
//! secret use before the check.
//!
//! The other tests are "PASSING (coverage, no defect)": attacks that held.
//!
//! Run with `cargo nextest run --test attack_review23a` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::ffi::c_void;
use std::ptr::null_mut;

use common::hostile::Api;
use common::kms::{set_state, CKR_KMSHSM_INCORRECT_KEY_STATE, STATE_DISABLED, STATE_ENABLED};
use common::memory::{fragments, fragments_below_caller, Setup};
use common::raw::{result as rv, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;

const MASK: u8 = 0x3a;
/// An AES-256 key value, masked with [`MASK`]: random bytes, so no other data matches.
const MASKED_AES_KEY: [u8; 32] = [
    0x41, 0xd7, 0x9c, 0x05, 0xe8, 0x6a, 0xb3, 0x1f, 0x72, 0xcd, 0x28, 0x94, 0x5e, 0xf1, 0x0b, 0xa6,
    0x37, 0x8e, 0xc2, 0x59, 0x13, 0xfa, 0x64, 0xbd, 0x80, 0x2c, 0xe5, 0x4f, 0x9a, 0x06, 0xd3, 0x71,
];

/// One message's `CK_GCM_MESSAGE_PARAMS`, with the IV and tag buffers it points into
/// (boxed, so the pointers stay valid while it moves).
struct Msg {
    iv: Vec<u8>,
    tag: Vec<u8>,
    p: CK_GCM_MESSAGE_PARAMS,
}

impl Msg {
    fn new(iv: &[u8], generator: CK_GENERATOR_FUNCTION, tag: &[u8]) -> Box<Msg> {
        let mut m = Box::new(Msg {
            iv: iv.to_vec(),
            tag: tag.to_vec(),
            p: CK_GCM_MESSAGE_PARAMS {
                pIv: null_mut(),
                ulIvLen: iv.len() as CK_ULONG,
                ulIvFixedBits: 0,
                ivGenerator: generator,
                pTag: null_mut(),
                ulTagBits: (tag.len() * 8) as CK_ULONG,
            },
        });
        m.p.pIv = m.iv.as_mut_ptr();
        m.p.pTag = m.tag.as_mut_ptr();
        m
    }

    fn ptr(&mut self) -> *mut c_void {
        std::ptr::addr_of_mut!(self.p).cast()
    }

    fn len() -> CK_ULONG {
        std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() as CK_ULONG
    }
}

/// `CKM_AES_GCM` without a parameter, as `C_Message*Init` takes it.
fn gcm() -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: CKM_AES_GCM,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

fn message_init(api: &Api, s: CK_SESSION_HANDLE, encrypt: bool, key: CK_OBJECT_HANDLE) {
    let mut m = gcm();
    let f = &api.list;
    // SAFETY: one mechanism structure without a parameter.
    let code = unsafe {
        if encrypt {
            f.C_MessageEncryptInit.unwrap()(s, &mut m, key)
        } else {
            f.C_MessageDecryptInit.unwrap()(s, &mut m, key)
        }
    };
    rv(code).unwrap();
}

/// `C_EncryptMessageNext` or `C_DecryptMessageNext` of `input` into `out` (said to hold
/// all of it): the code and the length written back.
fn next(
    api: &Api,
    s: CK_SESSION_HANDLE,
    encrypt: bool,
    msg: &mut Msg,
    input: &[u8],
    out: &mut [u8],
    end: bool,
) -> (Result<(), RvError>, CK_ULONG) {
    let mut len = out.len() as CK_ULONG;
    let flags = if end { CKF_END_OF_MESSAGE } else { 0 };
    let f = &api.list;
    let (i, n) = (input.as_ptr() as *mut u8, input.len() as CK_ULONG);
    // SAFETY: the parameter and its buffers, the input and the output live for the call.
    let code = unsafe {
        if encrypt {
            f.C_EncryptMessageNext.unwrap()(
                s,
                msg.ptr(),
                Msg::len(),
                i,
                n,
                out.as_mut_ptr(),
                &mut len,
                flags,
            )
        } else {
            f.C_DecryptMessageNext.unwrap()(
                s,
                msg.ptr(),
                Msg::len(),
                i,
                n,
                out.as_mut_ptr(),
                &mut len,
                flags,
            )
        }
    };
    (rv(code), len)
}

fn begin(
    api: &Api,
    s: CK_SESSION_HANDLE,
    encrypt: bool,
    msg: &mut Msg,
    aad: &[u8],
) -> Result<(), RvError> {
    let f = &api.list;
    let (a, n) = (aad.as_ptr() as *mut u8, aad.len() as CK_ULONG);
    // SAFETY: the parameter and its buffers, and the associated data, live for the call.
    rv(unsafe {
        if encrypt {
            f.C_EncryptMessageBegin.unwrap()(s, msg.ptr(), Msg::len(), a, n)
        } else {
            f.C_DecryptMessageBegin.unwrap()(s, msg.ptr(), Msg::len(), a, n)
        }
    })
}

/// Overwrites 64 KiB of this thread's stack below the caller's frame.
#[inline(never)]
fn wipe_below() {
    let area = [0u8; 64 * 1024];
    std::hint::black_box(&area);
}

/// DEFECT. Attack: read an AES key out of the host's own stack memory after the module
/// used it. PKCS#11 gives the module the caller's thread for its calls; kmshsm promises
/// that the calls that compute with a secret overwrite the stack below the entry point
/// before they return (`ffi/guard.rs`, `src/secret_use.rs`: "Everything that can leave a
/// secret on the stack must call `note`"; CONTRIBUTING.md, "Secrets"; docs/reliability.md),
/// so that a core dump or the host's next frames do not hold key bytes.
/// `C_EncryptMessage` (a length query, NULL output), `C_EncryptMessageBegin` and
/// `C_DecryptMessageBegin` first check the message's IV and tag length with
/// `Aead::check` (`src/mechanism/message.rs`), which runs a whole AES-GCM encryption of
/// an empty message under the operation's key; `Session::message_once` returns the
/// length before its `secret_use::note()`, and `Session::message_begin` never notes at
/// all (`src/session/message.rs`). `C_EncryptMessage`, `C_EncryptMessageBegin` and
/// `C_DecryptMessageBegin` are in the guard's "scrub only when noted" families, so no
/// scrub runs. With a 16-byte IV (GCM's own path, `crypto::aes::gcm::Gcm::new`, whose
/// aws-lc-rs ECB and CTR keys hold the expanded key on the stack), hundreds of 16-byte
/// runs of the key are found on the caller's stack right after each of the three calls
/// (the 12-byte IV path leaves none). Right answer: each call that computes with the key
/// notes it (or `check` computes nothing with the key), and nothing of the key remains
/// below the caller's frame.
#[test]
fn message_steps_that_check_with_the_key_scrub_it_from_the_callers_stack() {
    let setup = Setup::new(MASK);
    let label = b"review23a stack canary";
    let template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_ENCRYPT, true),
        RawAttr::bool(CKA_DECRYPT, true),
        RawAttr::bool(CKA_TOKEN, true),
        RawAttr::new(CKA_LABEL, label),
    ];
    setup.create(template, &[(CKA_VALUE, &MASKED_AES_KEY)]);
    let key = setup
        .session
        .find_objects(&[Attribute::Label(label.to_vec())])
        .unwrap()[0]
        .handle();
    let api = Api::load();
    let s = setup.session.handle();
    // The inits (always scrubbed) parse the key; the calls after them are the ones tested.
    message_init(&api, s, true, key);
    message_init(&api, s, false, key);
    assert!(
        !fragments(&MASKED_AES_KEY, MASK).is_empty(),
        "the scan does not see the module's own copy of the live key: the test is blind"
    );
    // What is found after a call is that call's: the stack is wiped after each scan.
    let clean = |what: &str| {
        let left = fragments_below_caller(&MASKED_AES_KEY, MASK, 64 * 1024);
        wipe_below();
        assert!(
            fragments_below_caller(&MASKED_AES_KEY, MASK, 64 * 1024).is_empty(),
            "the test's own wipe missed the runs found after {what}"
        );
        (!left.is_empty()).then(|| format!("{what}: {} runs of the key", left.len()))
    };
    let mut found: Vec<String> = clean("after the inits").into_iter().collect();
    let iv = [7u8; 16];

    let mut msg = Msg::new(&iv, CKG_GENERATE_RANDOM, &[0; 16]);
    let mut plain = [1u8; 32];
    let mut len: CK_ULONG = 0;
    // SAFETY: the parameter and its buffers, and the plaintext, live for the call; the
    // NULL output makes it a length query.
    let code = unsafe {
        api.list.C_EncryptMessage.unwrap()(
            s,
            msg.ptr(),
            Msg::len(),
            null_mut(),
            0,
            plain.as_mut_ptr(),
            plain.len() as CK_ULONG,
            null_mut(),
            &mut len,
        )
    };
    assert_eq!(
        (rv(code), len),
        (Ok(()), 32),
        "C_EncryptMessage length query"
    );
    found.extend(clean("C_EncryptMessage (length query)"));

    let mut msg = Msg::new(&iv, CKG_GENERATE_RANDOM, &[0; 16]);
    begin(&api, s, true, &mut msg, b"").unwrap();
    found.extend(clean("C_EncryptMessageBegin"));

    let mut msg = Msg::new(&iv, CKG_NO_GENERATE, &[0; 16]);
    begin(&api, s, false, &mut msg, b"").unwrap();
    found.extend(clean("C_DecryptMessageBegin"));

    assert!(
        found.is_empty(),
        "key bytes left on the caller's stack: {found:?}"
    );
}

/// PASSING (coverage, no defect). Attack: start a message in parts while the key may be
/// used, then have the key disabled (its KMS state) or destroyed before the part that
/// computes, and collect the plaintext (or a ciphertext and tag) anyway: the parts are
/// collected and computed only at the part flagged `CKF_END_OF_MESSAGE`, so the judgement
/// made at `Begin` must not carry it. The module must refuse the last part with the
/// key's code (`CKR_KMSHSM_INCORRECT_KEY_STATE`, `CKR_KEY_HANDLE_INVALID`), write nothing
/// into the output, the IV or the tag, and end the operation (docs/security.md,
/// "Message-based AEAD": "judged again before every message and part").
#[test]
fn a_key_disabled_or_destroyed_between_begin_and_the_last_part_gives_nothing() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let api = Api::load();
    let s = session.handle();
    let iv = [3u8; 12];
    let plain = [0x42u8; 40];

    // A genuine message, sealed while the key is Enabled.
    message_init(&api, s, true, key.handle());
    let mut msg = Msg::new(&iv, CKG_NO_GENERATE, &[0; 16]);
    begin(&api, s, true, &mut msg, b"hdr").unwrap();
    let mut ct = vec![0u8; plain.len()];
    let (r, len) = next(&api, s, true, &mut msg, &plain, &mut ct, true);
    assert_eq!((r, len), (Ok(()), plain.len() as CK_ULONG));
    let tag = msg.tag.clone();
    // SAFETY: no pointer.
    rv(unsafe { api.list.C_MessageEncryptFinal.unwrap()(s) }).unwrap();

    // Decryption: Begin and a first part while Enabled, the last part after DisableKey.
    message_init(&api, s, false, key.handle());
    let mut msg = Msg::new(&iv, CKG_NO_GENERATE, &tag);
    begin(&api, s, false, &mut msg, b"hdr").unwrap();
    let mut out = vec![0u8; plain.len()];
    let (r, len) = next(&api, s, false, &mut msg, &ct[..8], &mut out, false);
    assert_eq!((r, len), (Ok(()), 0), "a first part returns nothing");
    set_state(&session, key, STATE_DISABLED).unwrap();
    let (r, _) = next(&api, s, false, &mut msg, &ct[8..], &mut out, true);
    assert_eq!(r, Err(CKR_KMSHSM_INCORRECT_KEY_STATE), "the last part");
    assert!(out.iter().all(|&b| b == 0), "plaintext released");
    // SAFETY: no pointer.
    let after = rv(unsafe { api.list.C_MessageDecryptFinal.unwrap()(s) });
    assert_eq!(
        after,
        Err(RvError::OperationNotInitialized),
        "the refusal ended the operation"
    );

    // Encryption: Begin while Enabled, the last part after the key is destroyed.
    set_state(&session, key, STATE_ENABLED).unwrap();
    message_init(&api, s, true, key.handle());
    let mut msg = Msg::new(&[9u8; 12], CKG_GENERATE_RANDOM, &[0; 16]);
    begin(&api, s, true, &mut msg, b"").unwrap();
    let iv_after_begin = msg.iv.clone();
    session.destroy_object(key).unwrap();
    let mut out = vec![0u8; plain.len()];
    let (r, _) = next(&api, s, true, &mut msg, &plain, &mut out, true);
    assert_eq!(r, Err(RvError::KeyHandleInvalid), "the last part");
    assert!(out.iter().all(|&b| b == 0), "ciphertext released");
    assert!(msg.tag.iter().all(|&b| b == 0), "tag released");
    assert_eq!(msg.iv, iv_after_begin, "IV rewritten");
    // SAFETY: no pointer.
    let after = rv(unsafe { api.list.C_MessageEncryptFinal.unwrap()(s) });
    assert_eq!(after, Err(RvError::OperationNotInitialized));
}

/// PASSING (coverage, no defect). Attack: find a function the module answers in part,
/// or a mechanism that claims one it does not offer, and ask for the interface under
/// hostile names, versions and flags. `C_GetMechanismInfo` must claim no function the
/// module answers `CKR_FUNCTION_NOT_SUPPORTED` (PKCS#11 3.0 §5.5 `C_GetMechanismInfo`,
/// and docs/functions.md: sign/verify recover, message sign/verify, dual functions and
/// operation state are not supported), those functions must answer exactly that on a
/// live session with a usable key (never run, never a state blob that could carry key
/// material or be forged back, §5.6 `C_GetOperationState`), and `C_GetInterface` must
/// answer `CKR_ARGUMENTS_BAD` for an unknown name, an unknown version or interface flags
/// no interface has, leaving `*ppInterface` alone (§5.4 `C_GetInterface`).
#[test]
fn functions_not_offered_are_neither_advertised_nor_run() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let api = Api::load();
    let f = &api.list;
    for m in ctx.get_mechanism_list(slot).unwrap() {
        let mut info = CK_MECHANISM_INFO::default();
        // SAFETY: one output structure.
        let code = unsafe { f.C_GetMechanismInfo.unwrap()(slot.id(), m.into(), &mut info) };
        rv(code).unwrap();
        let claimed = info.flags
            & (CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER | CKF_MESSAGE_SIGN | CKF_MESSAGE_VERIFY);
        assert_eq!(claimed, 0, "{m} claims a function that is not supported");
    }
    let key = session
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
    let s = session.handle();
    let mut hmac = CK_MECHANISM {
        mechanism: CKM_SHA256_HMAC,
        pParameter: null_mut(),
        ulParameterLen: 0,
    };
    let mut state = vec![0u8; 4096];
    let mut len = state.len() as CK_ULONG;
    let mut data = [5u8; 16];
    let mut out = [0u8; 64];
    let mut out_len = out.len() as CK_ULONG;
    let (d, o) = (data.as_mut_ptr(), out.as_mut_ptr());
    // SAFETY: every pointer is to a live buffer, mechanism or length of this frame.
    let codes = unsafe {
        [
            (
                "C_SignRecoverInit",
                f.C_SignRecoverInit.unwrap()(s, &mut hmac, key),
            ),
            (
                "C_VerifyRecoverInit",
                f.C_VerifyRecoverInit.unwrap()(s, &mut hmac, key),
            ),
            (
                "C_MessageSignInit",
                f.C_MessageSignInit.unwrap()(s, &mut hmac, key),
            ),
            (
                "C_MessageVerifyInit",
                f.C_MessageVerifyInit.unwrap()(s, &mut hmac, key),
            ),
            (
                "C_GetOperationState",
                f.C_GetOperationState.unwrap()(s, state.as_mut_ptr(), &mut len),
            ),
            (
                "C_SetOperationState",
                f.C_SetOperationState.unwrap()(s, state.as_mut_ptr(), 64, key, 0),
            ),
            (
                "C_DigestEncryptUpdate",
                f.C_DigestEncryptUpdate.unwrap()(s, d, 16, o, &mut out_len),
            ),
            (
                "C_DecryptDigestUpdate",
                f.C_DecryptDigestUpdate.unwrap()(s, d, 16, o, &mut out_len),
            ),
            (
                "C_SignEncryptUpdate",
                f.C_SignEncryptUpdate.unwrap()(s, d, 16, o, &mut out_len),
            ),
            (
                "C_DecryptVerifyUpdate",
                f.C_DecryptVerifyUpdate.unwrap()(s, d, 16, o, &mut out_len),
            ),
        ]
    };
    for (name, code) in codes {
        assert_eq!(rv(code), Err(RvError::FunctionNotSupported), "{name}");
    }
    assert!(
        state.iter().all(|&b| b == 0),
        "an operation state was written"
    );
    assert!(out.iter().all(|&b| b == 0), "a dual function wrote output");
    // The HMAC key is still usable for what is offered: nothing above started anything.
    session
        .sign(&Mechanism::Sha256Hmac, key_handle(key), b"x")
        .unwrap();

    let library = api_library();
    let sentinel = 0x5a5a_usize as *mut CK_INTERFACE;
    let mut name_unknown = *b"PKCS 11 \0";
    let mut name_ok = *b"PKCS 11\0";
    let mut v31 = CK_VERSION { major: 3, minor: 1 };
    let mut v30 = CK_VERSION { major: 3, minor: 0 };
    let cases: [(&str, *mut u8, *mut CK_VERSION, CK_FLAGS); 3] = [
        (
            "a name that is almost right",
            name_unknown.as_mut_ptr(),
            null_mut(),
            0,
        ),
        ("version 3.1", name_ok.as_mut_ptr(), &mut v31, 0),
        (
            "CKF_INTERFACE_FORK_SAFE",
            name_ok.as_mut_ptr(),
            &mut v30,
            CKF_INTERFACE_FORK_SAFE,
        ),
    ];
    for (what, name, version, flags) in cases {
        let mut iface = sentinel;
        // SAFETY: a NUL-terminated name, a version or NULL, one output pointer.
        let code = unsafe { library.C_GetInterface(name, version, &mut iface, flags) };
        assert_eq!(rv(code), Err(RvError::ArgumentsBad), "{what}");
        assert_eq!(iface, sentinel, "{what}: *ppInterface written");
    }
}

fn key_handle(raw: CK_OBJECT_HANDLE) -> cryptoki::object::ObjectHandle {
    common::mech::handle(raw)
}

/// The module, loaded again for its exported `C_GetInterface` (the loader returns the
/// library already loaded).
fn api_library() -> cryptoki_sys::Pkcs11 {
    // SAFETY: loading the module under test.
    unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.unwrap()
}

//! An attacker's review (branch attack21a) of eea71a5, "operations: every error of a step
//! ends the operation": `Active::admit` (single- and multi-part calls decided by the
//! first step, kept output only for the retry of its call), `produce`, `produce_direct`
//! and `consume` ending the operation on every refusal, and `ffi/entry/crypto.rs` ending
//! it when the caller's pointers are refused (`arguments_of`, `in_and_out`).
//!
//! No defect was found: every test here is marked "PASSING (coverage, no defect)" and
//! passes on eea71a5. Each tries an attack that held; together they cover paths
//! `tests/operation_errors.rs` does not reach (AES-GCM plaintext kept after a short
//! buffer, `CKA_ALWAYS_AUTHENTICATE` keys, a second thread on the session, `C_DigestKey`).
//!
//! Run with `cargo nextest run --test attack_review21a` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::mech::{AesSession, Ck, RawMech};
use common::raw::result as rv;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;

/// The fixture, its AES key readable (not sensitive, extractable).
fn fixture() -> AesSession {
    AesSession::new(&[Attribute::Sensitive(false), Attribute::Extractable(true)])
}

/// A raw output call of the decrypt family into `buf` (said to hold `cap` bytes), in
/// `fx`'s session: its code and the length written back.
fn decrypt_into(
    fx: &AesSession,
    which: &str,
    input: &[u8],
    buf: &mut [u8],
    cap: usize,
) -> (Result<(), RvError>, CK_ULONG) {
    assert!(cap <= buf.len());
    let (s, f) = (fx.s(), fx.f());
    let mut len = cap as CK_ULONG;
    let i = input.as_ptr() as *mut u8;
    let n = input.len() as CK_ULONG;
    let o = buf.as_mut_ptr();
    // SAFETY: the input is alive for `n` bytes, the output for `cap` bytes.
    let code = unsafe {
        match which {
            "C_Decrypt" => f.C_Decrypt.unwrap()(s, i, n, o, &mut len),
            "C_DecryptUpdate" => f.C_DecryptUpdate.unwrap()(s, i, n, o, &mut len),
            "C_DecryptFinal" => f.C_DecryptFinal.unwrap()(s, o, &mut len),
            _ => unreachable!("{which}"),
        }
    };
    (rv(code), len)
}

const IV: [u8; 12] = [9u8; 12];

fn gcm() -> RawMech {
    RawMech::gcm(CKM_AES_GCM, &IV, b"header", 128)
}

/// PASSING (coverage, no defect). Attack: AES-GCM plaintext is kept (zeroizing) after a
/// `C_Decrypt` or `C_DecryptFinal` whose buffer was too small; try to get it, or any of
/// it, written into a buffer by a call that is not the retry: a "retry" with tampered
/// ciphertext, `C_DecryptUpdate`, `C_DecryptFinal`, `C_Decrypt` after a short final.
/// The module must refuse each (`CKR_ARGUMENTS_BAD` or `CKR_OPERATION_ACTIVE`), write
/// nothing into the caller's buffer, and end the operation (§5.2; the kept plaintext is
/// wiped with it), so that the real retry afterwards finds no operation either.
#[test]
fn kept_gcm_plaintext_is_never_written_by_a_refused_call_and_goes_with_the_operation() {
    let fx = fixture();
    let plain: Vec<u8> = (0..48u8).collect();
    let sealed = fx.ck.encrypt(fx.s(), &gcm(), fx.aes, &plain).unwrap();
    let mut tampered = sealed.clone();
    tampered[3] ^= 1;
    let mut wrong = Vec::new();
    let untouched = |buf: &[u8]| buf.iter().all(|&b| b == 0xee);

    // A single-part decryption kept after a short buffer, then three refused calls.
    for (other, input) in [
        ("C_Decrypt", &tampered[..]),
        ("C_DecryptUpdate", &sealed[..]),
        ("C_DecryptFinal", &[][..]),
    ] {
        fx.ck.decrypt_init(fx.s(), &gcm(), fx.aes).unwrap();
        let mut small = [0u8; 1];
        let (code, needed) = decrypt_into(&fx, "C_Decrypt", &sealed, &mut small, 1);
        assert_eq!(code, Err(RvError::BufferTooSmall));
        assert_eq!(needed as usize, plain.len());
        let mut buf = vec![0xeeu8; 256];
        let (code, _) = decrypt_into(&fx, other, input, &mut buf, 256);
        if !matches!(
            code,
            Err(RvError::ArgumentsBad) | Err(RvError::OperationActive)
        ) {
            wrong.push(format!("{other} after a short C_Decrypt: {code:?}"));
        }
        if !untouched(&buf) {
            wrong.push(format!(
                "{other} after a short C_Decrypt wrote into the buffer"
            ));
        }
        let (code, _) = decrypt_into(&fx, "C_Decrypt", &sealed, &mut buf, 256);
        if code != Err(RvError::OperationNotInitialized) || !untouched(&buf) {
            wrong.push(format!(
                "the real retry after {other}: {code:?} (the refusal must end the operation)"
            ));
        }
    }

    // A multi-part decryption whose final call was short, then a single-part call.
    fx.ck.decrypt_init(fx.s(), &gcm(), fx.aes).unwrap();
    let mut buf = vec![0xeeu8; 256];
    let (code, _) = decrypt_into(&fx, "C_DecryptUpdate", &sealed, &mut buf, 256);
    assert_eq!(code, Ok(()));
    assert!(
        untouched(&buf),
        "GCM releases nothing before the tag is checked"
    );
    let mut small = [0u8; 1];
    let (code, _) = decrypt_into(&fx, "C_DecryptFinal", &[], &mut small, 1);
    assert_eq!(code, Err(RvError::BufferTooSmall));
    let (code, _) = decrypt_into(&fx, "C_Decrypt", &sealed, &mut buf, 256);
    if code != Err(RvError::OperationActive) || !untouched(&buf) {
        wrong.push(format!("C_Decrypt after a short C_DecryptFinal: {code:?}"));
    }
    let (code, _) = decrypt_into(&fx, "C_DecryptFinal", &[], &mut buf, 256);
    if code != Err(RvError::OperationNotInitialized) || !untouched(&buf) {
        wrong.push(format!("C_DecryptFinal after the refusal: {code:?}"));
    }

    // Control: the real retry right after a short buffer gets the plaintext.
    fx.ck.decrypt_init(fx.s(), &gcm(), fx.aes).unwrap();
    let (code, _) = decrypt_into(&fx, "C_Decrypt", &sealed, &mut small, 1);
    assert_eq!(code, Err(RvError::BufferTooSmall));
    let (code, got) = decrypt_into(&fx, "C_Decrypt", &sealed, &mut buf, 256);
    assert_eq!(code, Ok(()));
    assert_eq!(&buf[..got as usize], &plain[..]);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn always_authenticate_key(session: &Session) -> CK_OBJECT_HANDLE {
    let (_public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into()), Attribute::Verify(true)],
            &[
                Attribute::Private(true),
                Attribute::Sign(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap();
    private.handle()
}

/// PASSING (coverage, no defect). Attack on the policy of `CKA_ALWAYS_AUTHENTICATE`
/// (§4.9: the PIN for each use): end an operation authorised by a context-specific login
/// with one of the new refusals (the caller's bad pointer, a mixed call, another input
/// after a short buffer), and see whether the next operation on the key signs without
/// the PIN; or use the single-part length query, which is not judged, to reach a
/// signature. A correct module answers `CKR_USER_NOT_LOGGED_IN` to the next signature
/// each time, and a context-specific login with no operation waiting is
/// `CKR_OPERATION_NOT_INITIALIZED` (the refusal ended the one that waited).
#[test]
fn an_operation_ended_by_a_refusal_leaves_no_context_specific_login_behind() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let key = always_authenticate_key(&session);
    let m = || RawMech::none(CKM_SHA256_RSA_PKCS);
    let f = ck.functions();
    let context_login = || session.login(UserType::ContextSpecific, Some(&pin(USER_PIN)));
    let mut wrong = Vec::new();

    for way in ["NULL part", "mixed", "other input"] {
        ck.sign_init(s, &m(), key).unwrap();
        context_login().unwrap();
        let refused = match way {
            // SAFETY: a NULL part of non-zero length is refused before it is read.
            "NULL part" => rv(unsafe { f.C_SignUpdate.unwrap()(s, null_mut(), 16) }),
            "mixed" => {
                ck.sign_update(s, b"part").unwrap();
                ck.sign_call(s, b"data", Some(512)).rv
            }
            _ => {
                let short = ck.sign_call(s, b"data", Some(1));
                assert_eq!(short.rv, Err(RvError::BufferTooSmall));
                ck.sign_call(s, b"other data", Some(512)).rv
            }
        };
        if !matches!(
            refused,
            Err(RvError::ArgumentsBad) | Err(RvError::OperationActive)
        ) {
            wrong.push(format!("{way}: the refusal answered {refused:?}"));
        }
        assert_rv!(context_login(), RvError::OperationNotInitialized, "{way}");
        ck.sign_init(s, &m(), key).unwrap();
        let next = ck.sign_call(s, b"data", Some(512)).rv;
        if next != Err(RvError::UserNotLoggedIn) {
            wrong.push(format!(
                "{way}: the next signature without the PIN: {next:?}"
            ));
        }
    }

    // The length query is not judged, and decides nothing about the PIN.
    ck.sign_init(s, &m(), key).unwrap();
    let query = ck.sign_call(s, b"data", None);
    assert_eq!(query.rv, Ok(()));
    assert_eq!(query.len, 256);
    // Mixed and without the PIN: either refusal is right, and either ends it.
    let mixed = ck.sign_update(s, b"data");
    assert!(
        matches!(
            mixed,
            Err(RvError::OperationActive) | Err(RvError::UserNotLoggedIn)
        ),
        "{mixed:?}"
    );
    assert_rv!(context_login(), RvError::OperationNotInitialized);
    ck.sign_init(s, &m(), key).unwrap();
    assert_eq!(ck.sign_call(s, b"data", None).rv, Ok(()));
    let without = ck.sign_call(s, b"data", Some(512)).rv;
    if without != Err(RvError::UserNotLoggedIn) {
        wrong.push(format!(
            "a signature after a length query, no PIN: {without:?}"
        ));
    }
    // Control: the PIN, then the signature.
    ck.sign_init(s, &m(), key).unwrap();
    assert_eq!(ck.sign_call(s, b"data", None).rv, Ok(()));
    context_login().unwrap();
    let signed = ck.sign_call(s, b"data", Some(512));
    assert_eq!(signed.rv, Ok(()));
    assert_eq!(signed.data.len(), 256);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// PASSING (coverage, no defect). Attack with a hostile second thread on the same session
/// (§5.6 leaves sharing a session to the application, but a module must not crash or
/// mix outputs for it): one thread encrypts X single-part (sometimes with a short buffer
/// first), the other starts operations, leaves output waiting after a short
/// `C_EncryptUpdate` of Y, and passes bad pointers (which end whatever operation is
/// active). Every `CKR_OK` answer must carry the encryption of its own caller's input
/// (one key, AES-ECB, so any operation gives the same bytes for the same input), and
/// nothing may crash or hang.
#[test]
fn a_hostile_thread_on_the_same_session_gets_no_output_of_the_others_input() {
    let fx = fixture();
    let s = fx.s();
    let aes = fx.aes;
    let x = [0x5au8; 16];
    let y = [0xa5u8; 16];
    let ex = fx
        .ck
        .encrypt(s, &RawMech::none(CKM_AES_ECB), aes, &x)
        .unwrap();
    let ey = fx
        .ck
        .encrypt(s, &RawMech::none(CKM_AES_ECB), aes, &y)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ecb = || RawMech::none(CKM_AES_ECB);

    let hostile = {
        let stop = Arc::clone(&stop);
        let ey = ey.clone();
        std::thread::spawn(move || {
            let ck = Ck::load();
            let f = ck.functions();
            let mut foreign = 0u32;
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let _ = ck.encrypt_init(s, &ecb(), aes);
                let mut out = [0u8; 64];
                let mut len: CK_ULONG = if round % 3 == 0 { 1 } else { 64 };
                // SAFETY: the input and the output (64 bytes) are alive for the call.
                let code = unsafe {
                    f.C_EncryptUpdate.unwrap()(
                        s,
                        y.as_ptr() as *mut _,
                        16,
                        out.as_mut_ptr(),
                        &mut len,
                    )
                };
                if code == CKR_OK && len != 0 && out[..len as usize] != ey[..] {
                    foreign += 1;
                }
                if round % 2 == 0 {
                    // SAFETY: a NULL length pointer is refused before anything is read
                    // through it.
                    let _ = unsafe {
                        f.C_Encrypt.unwrap()(
                            s,
                            y.as_ptr() as *mut _,
                            16,
                            out.as_mut_ptr(),
                            null_mut(),
                        )
                    };
                }
            }
            foreign
        })
    };

    let ck = Ck::load();
    let mut foreign = 0u32;
    let mut answered = 0u32;
    for round in 0..3000u32 {
        if ck.encrypt_init(s, &ecb(), aes).is_err() {
            // SAFETY: a NULL mechanism ends the active operation.
            let _ = unsafe { ck.functions().C_EncryptInit.unwrap()(s, null_mut(), 0) };
            continue;
        }
        if round % 4 == 0 {
            let _ = ck.encrypt_call(s, &x, Some(1));
        }
        let out = ck.encrypt_call(s, &x, Some(64));
        if out.rv.is_ok() {
            answered += 1;
            if out.data != ex {
                foreign += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let hostile_foreign = hostile.join().expect("the hostile thread panicked");
    assert_eq!(
        (foreign, hostile_foreign),
        (0, 0),
        "outputs of the other thread's input were handed out ({answered} answered)"
    );
    // The session still works, once the operation the hostile thread may have left
    // active (its last init, or an update it made) is ended.
    // SAFETY: a NULL mechanism ends the active operation (none active: refused).
    let _ = unsafe { ck.functions().C_EncryptInit.unwrap()(s, null_mut(), 0) };
    let again = fx.ck.encrypt(s, &ecb(), aes, &x).unwrap();
    assert_eq!(again, ex);
}

/// PASSING (coverage, no defect). `C_DigestKey` is a multi-part step (§5.12: "continues
/// a multiple-part message-digesting operation"): after a single-part length query it is
/// `CKR_OPERATION_ACTIVE` and ends the operation; while output of a short
/// `C_DigestFinal` waits, it is refused and ends the operation too; after an update it
/// works and the digest is that of the data and the key's value.
#[test]
fn digest_key_follows_the_single_and_multi_part_rule() {
    let fx = fixture();
    let s = fx.s();
    let f = fx.f();
    let sha = || RawMech::none(CKM_SHA256);
    let digest_key = || {
        // SAFETY: a key handle, no pointer.
        rv(unsafe { f.C_DigestKey.unwrap()(s, fx.aes) })
    };
    let final_into = |cap: usize| {
        let mut out = [0u8; 64];
        let mut len = cap as CK_ULONG;
        // SAFETY: the output is 64 bytes, alive.
        let code = rv(unsafe { f.C_DigestFinal.unwrap()(s, out.as_mut_ptr(), &mut len) });
        (code, out[..(len as usize).min(64)].to_vec())
    };

    fx.ck.digest_init(s, &sha()).unwrap();
    let digest_once = f.C_Digest.unwrap();
    let query = Ck::out_once(
        // SAFETY: the input is alive; the output is as `out_once` describes it.
        &mut |o, l| unsafe { digest_once(s, b"data".as_ptr() as *mut _, 4, o, l) },
        None,
    );
    assert_eq!(query.rv, Ok(()));
    assert_eq!(digest_key(), Err(RvError::OperationActive));
    assert_eq!(final_into(64).0, Err(RvError::OperationNotInitialized));

    fx.ck.digest_init(s, &sha()).unwrap();
    assert_eq!(final_into(1).0, Err(RvError::BufferTooSmall));
    assert_eq!(digest_key(), Err(RvError::OperationActive));
    assert_eq!(final_into(64).0, Err(RvError::OperationNotInitialized));

    fx.ck.digest_init(s, &sha()).unwrap();
    // SAFETY: the part is alive for the call.
    let updated = unsafe { f.C_DigestUpdate.unwrap()(s, b"data".as_ptr() as *mut _, 4) };
    assert_eq!(rv(updated), Ok(()));
    assert_eq!(digest_key(), Ok(()));
    let (code, got) = final_into(64);
    assert_eq!(code, Ok(()));
    let value = fx
        .session
        .get_attributes(
            common::mech::handle(fx.aes),
            &[cryptoki::object::AttributeType::Value],
        )
        .unwrap();
    let Some(Attribute::Value(value)) = value.into_iter().next() else {
        panic!("the key's value");
    };
    let expected = fx
        .ck
        .digest(s, &sha(), &[&b"data"[..], &value[..]].concat())
        .unwrap();
    assert_eq!(got, expected);
}

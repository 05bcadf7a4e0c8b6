//! No secret left in the process's memory after use (DESIGN.md §3, docs/reliability.md §7):
//! a key (AES-256 secret key, P-256 private key) that was created, used and destroyed, in a
//! token that was then finalized, leaves no copy of its value in any writable mapping of the
//! host process — heap, stacks, the module's and aws-lc's data — where a core dump or a
//! later allocation could show it.
//!
//! The test scans its own process through /proc/self/mem. It holds a key in the clear only
//! in the template buffers it zeroizes right after C_CreateObject: the key is kept masked,
//! and the scan compares memory against the masked form, so a match is a copy made by the
//! module (or by the libraries under it), not by the test. Linux only.
//! Run with `cargo nextest run --test memory_secrets` (one process per test).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::memory::{describe, fragments, fragments_below_caller, Fragment, Setup};
use common::raw::RawAttr;
use common::*;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;

/// XOR mask between the stored constant and the key value.
const MASK: u8 = 0x5c;
/// The AES-256 key value, masked with [`MASK`]: random bytes, so no other data matches.
const MASKED_AES_KEY: [u8; 32] = [
    0x9e, 0x13, 0x47, 0xd2, 0x2b, 0x88, 0x61, 0xf0, 0x3a, 0xc5, 0x7e, 0x04, 0xb9, 0x56, 0xe1, 0x2f,
    0x70, 0xcd, 0x18, 0xa3, 0x5b, 0xe6, 0x09, 0x94, 0x4f, 0xba, 0x27, 0xd8, 0x63, 0x1e, 0xf5, 0x80,
];

/// A P-256 private value (CKA_VALUE), masked with [`MASK`]: random bytes below the order.
const MASKED_EC_KEY: [u8; 32] = [
    0x2d, 0xe1, 0x74, 0xb8, 0x06, 0x9a, 0xcf, 0x53, 0x81, 0x3e, 0xf2, 0x67, 0x1b, 0xd4, 0x48, 0xad,
    0x95, 0x0c, 0xe7, 0x3a, 0x62, 0xbf, 0x10, 0x8e, 0xd9, 0x45, 0x7c, 0x23, 0xf8, 0xa6, 0x31, 0x5b,
];

/// Where runs of the secret `masked` (masked with [`MASK`]) are in writable memory.
fn fragments_in_memory(masked: &[u8]) -> Vec<Fragment> {
    fragments(masked, MASK)
}

/// What this file's tests do with the token of a `memory::Setup`.
trait Canary {
    fn create_with_secret(
        &self,
        template: Vec<RawAttr>,
        label: &[u8],
        masked: &[u8],
    ) -> cryptoki::object::ObjectHandle;
    fn destroy_finalize_and_scan(self, key: cryptoki::object::ObjectHandle, masked: &[u8]);
}

impl Canary for Setup {
    /// Creates a token object from `template` plus CKA_VALUE = the unmasked secret and
    /// CKA_LABEL = `label`; every clear copy the test made is zeroized before returning.
    fn create_with_secret(
        &self,
        mut template: Vec<RawAttr>,
        label: &[u8],
        masked: &[u8],
    ) -> cryptoki::object::ObjectHandle {
        template.push(RawAttr::bool(CKA_TOKEN, true));
        template.push(RawAttr::new(CKA_LABEL, label));
        self.create(template, &[(CKA_VALUE, masked)]);
        self.session
            .find_objects(&[Attribute::Label(label.to_vec())])
            .expect("C_FindObjects")[0]
    }

    /// Checks that the scan sees the live key (so the test is not blind), then destroys it,
    /// closes every session, calls C_Finalize and checks that no fragment remains.
    fn destroy_finalize_and_scan(self, key: cryptoki::object::ObjectHandle, masked: &[u8]) {
        // A token object's secrets stay sealed until first use; the key parsed for the
        // calls made is cached in the object, so the scan must see it now.
        assert!(
            !fragments_in_memory(masked).is_empty(),
            "the scan does not see the module's own copy of a live key: the test is blind"
        );
        self.session.destroy_object(key).expect("C_DestroyObject");
        let raw = self.finalize();
        assert_no_fragments(masked);
        drop(raw);
    }
}

#[test]
fn secret_key_leaves_no_copy_in_memory_after_destroy_and_finalize() {
    let setup = Setup::new(MASK);
    let template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_ENCRYPT, true),
        RawAttr::bool(CKA_DECRYPT, true),
    ];
    let key = setup.create_with_secret(template, b"memory canary aes", &MASKED_AES_KEY);
    let session = &setup.session;
    for round in 0..4u8 {
        let mut iv = [round; 12];
        let params = GcmParams::new(&mut iv, b"aad", 128.into()).expect("GcmParams");
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), key, &[round; 4096])
            .expect("C_Encrypt AES-GCM");
        let params = GcmParams::new(&mut iv, b"aad", 128.into()).expect("GcmParams");
        let opened = session
            .decrypt(&Mechanism::AesGcm(params), key, &sealed)
            .expect("C_Decrypt AES-GCM");
        assert_eq!(opened, [round; 4096]);
        let iv = [round; 16];
        let sealed = session
            .encrypt(&Mechanism::AesCbcPad(iv), key, &[round; 100])
            .expect("C_Encrypt AES-CBC-PAD");
        let opened = session
            .decrypt(&Mechanism::AesCbcPad(iv), key, &sealed)
            .expect("C_Decrypt AES-CBC-PAD");
        assert_eq!(opened, [round; 100]);
    }
    setup.destroy_finalize_and_scan(key, &MASKED_AES_KEY);
}

#[test]
fn ec_private_key_leaves_no_copy_in_memory_after_destroy_and_finalize() {
    let setup = Setup::new(MASK);
    let template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_EC),
        RawAttr::bool(CKA_SIGN, true),
        RawAttr::new(CKA_EC_PARAMS, &hex(material::EC_PARAMS_P256)),
    ];
    let key = setup.create_with_secret(template, b"memory canary ec", &MASKED_EC_KEY);
    for round in 0..4u8 {
        let signature = setup
            .session
            .sign(&Mechanism::EcdsaSha256, key, &[round; 64])
            .expect("C_Sign ECDSA-SHA256");
        assert_eq!(signature.len(), 64);
    }
    setup.destroy_finalize_and_scan(key, &MASKED_EC_KEY);
}

/// The calls that use a key scrub the stack they ran on (`ffi/guard.rs`), to a depth
/// measured for release builds (`src/secret_use.rs`): right after them, with the key
/// still alive in the module, no copy of it may be found on the caller's stack below the
/// caller's frame. Run on a release build by `scripts/test.sh` (a debug build always
/// scrubs 48 KiB). Without the scrub after ECDSA signing, the scalar is found there
/// (reversed: aws-lc's SHA-512 state of its nonce); the AES-GCM steps leave no bytes of
/// the key itself there (its schedule is the key's own, on the heap): what their scrub
/// wipes is the GHASH key and the key stream, which this scan cannot recognise.
#[test]
fn signing_and_encrypting_leave_no_copy_of_the_key_on_the_callers_stack() {
    let setup = Setup::new(MASK);
    let ec_template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_EC),
        RawAttr::bool(CKA_SIGN, true),
        RawAttr::new(CKA_EC_PARAMS, &hex(material::EC_PARAMS_P256)),
    ];
    let ec = setup.create_with_secret(ec_template, b"stack canary ec", &MASKED_EC_KEY);
    let aes_template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_ENCRYPT, true),
        RawAttr::bool(CKA_DECRYPT, true),
    ];
    let aes = setup.create_with_secret(aes_template, b"stack canary aes", &MASKED_AES_KEY);
    let session = &setup.session;
    // The first use of each key parses it (a whole-area scrub); the ones after run the
    // measured-depth steps this test is about.
    for round in 0..3u8 {
        session
            .sign(&Mechanism::EcdsaSha256, ec, &[round; 64])
            .expect("C_Sign ECDSA-SHA256");
    }
    let ec_left = fragments_below_caller(&MASKED_EC_KEY, MASK, 64 * 1024);
    for (round, len) in [(0u8, 64), (1, 64), (2, 4096)] {
        let mut iv = [round; 12];
        let params = GcmParams::new(&mut iv, b"aad", 128.into()).expect("GcmParams");
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), aes, &vec![round; len])
            .expect("C_Encrypt AES-GCM");
        let params = GcmParams::new(&mut iv, b"aad", 128.into()).expect("GcmParams");
        session
            .decrypt(&Mechanism::AesGcm(params), aes, &sealed)
            .expect("C_Decrypt AES-GCM");
    }
    let aes_left = fragments_below_caller(&MASKED_AES_KEY, MASK, 64 * 1024);
    assert!(
        ec_left.is_empty() && aes_left.is_empty(),
        "key bytes left on the caller's stack: EC at {:x?}, AES at {:x?}",
        ec_left.iter().map(|g| g.at).take(8).collect::<Vec<_>>(),
        aes_left.iter().map(|g| g.at).take(8).collect::<Vec<_>>()
    );
}

/// Fails listing where (first address of each run) the secret remains.
fn assert_no_fragments(masked: &[u8]) {
    let fragments = fragments_in_memory(masked);
    assert!(
        fragments.is_empty(),
        "{} fragment(s) of the destroyed key remain in writable memory after C_Finalize; \
         first ones:\n{}",
        fragments.len(),
        describe(&fragments, 40)
    );
}

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

use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;
use std::io::{Read, Seek, SeekFrom};
use zeroize::Zeroize;

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

/// A masked value in the clear, in a buffer the caller must zeroize.
fn unmasked(masked: &[u8]) -> Vec<u8> {
    masked.iter().map(|b| b ^ MASK).collect()
}

/// Writable mappings of this process: (start, end, description).
fn writable_mappings() -> Vec<(u64, u64, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            if !perms.starts_with("rw") {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some((start, end, line.to_string()))
        })
        .collect()
}

/// Where a run of 16 bytes of the masked secret occurs (unmasked) in writable memory,
/// in its byte order or reversed: (mapping, address). Sixteen bytes is half a 256-bit key
/// and one AES round key: a leftover key schedule shows as well as a plain copy. Reversed
/// is how aws-lc holds a scalar (little-endian 64-bit words, least significant first):
/// ECDSA signing hashes the private scalar in that form into a SHA-512 state on its own
/// stack and leaves it there, which only the guard's scrub wipes.
fn fragments_in_memory(masked: &[u8]) -> Vec<(String, u64)> {
    fragments_in(masked, writable_mappings())
}

/// `fragments_in_memory` over `depth` bytes of this thread's stack below the caller's
/// frame, where the module's calls made from that frame ran: what they left there.
#[inline(never)]
fn fragments_below_caller(masked: &[u8], depth: u64) -> Vec<(String, u64)> {
    let marker = 0u8;
    let top = std::hint::black_box(std::ptr::addr_of!(marker)) as u64;
    let (start, _, what) = writable_mappings()
        .into_iter()
        .find(|(start, end, _)| (*start..*end).contains(&top))
        .expect("the mapping of this thread's stack");
    fragments_in(masked, vec![(start.max(top - depth), top, what)])
}

fn fragments_in(masked: &[u8], ranges: Vec<(u64, u64, String)>) -> Vec<(String, u64)> {
    const MIN_RUN: usize = 16;
    let mut mem = std::fs::File::open("/proc/self/mem").expect("open /proc/self/mem");
    let mut chunk = vec![0u8; 1 << 20];
    let mut found = Vec::new();
    let reversed: Vec<u8> = masked.iter().rev().copied().collect();
    let forms = [masked, &reversed[..]];
    // Which masked byte values begin a run: a quick filter before the full compare.
    let mut starts = [false; 256];
    for form in forms {
        for b in &form[..=form.len() - MIN_RUN] {
            starts[usize::from(*b)] = true;
        }
    }
    for (start, end, what) in ranges {
        let mut at = start;
        while at < end {
            let len = ((end - at) as usize).min(chunk.len());
            let read = mem
                .seek(SeekFrom::Start(at))
                .and_then(|_| mem.read(&mut chunk[..len]));
            let Ok(n) = read else { break };
            if n == 0 {
                break;
            }
            for (offset, window) in chunk[..n].windows(MIN_RUN).enumerate() {
                if !starts[usize::from(window[0] ^ MASK)] {
                    continue;
                }
                let hit = forms.iter().any(|form| {
                    form.windows(MIN_RUN)
                        .any(|part| window.iter().zip(part).all(|(m, k)| m ^ MASK == *k))
                });
                if hit {
                    found.push((what.clone(), at + offset as u64));
                }
            }
            if n < masked.len() || at + n as u64 >= end {
                break;
            }
            // Overlap chunks by a key length so a run across a boundary is seen.
            at += (n - masked.len()) as u64;
        }
    }
    chunk.zeroize();
    found
}

/// A token with a logged-in session, the raw function list and a raw session on it.
struct Setup {
    _env: TestEnv,
    ctx: cryptoki::context::Pkcs11,
    session: cryptoki::session::Session,
    raw: Raw,
    raw_session: CK_SESSION_HANDLE,
}

impl Setup {
    fn new() -> Setup {
        let env = TestEnv::new();
        let (ctx, slot, session) = ready_token(&env);
        let raw = Raw::load();
        let raw_session = raw
            .open_session(slot.id(), CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .expect("C_OpenSession (raw)");
        Setup {
            _env: env,
            ctx,
            session,
            raw,
            raw_session,
        }
    }

    /// Creates a token object from `template` plus CKA_VALUE = the unmasked secret and
    /// CKA_LABEL = `label`; every clear copy the test made is zeroized before returning.
    fn create_with_secret(
        &self,
        mut template: Vec<RawAttr>,
        label: &[u8],
        masked: &[u8],
    ) -> cryptoki::object::ObjectHandle {
        let mut value = unmasked(masked);
        template.push(RawAttr::bool(CKA_TOKEN, true));
        template.push(RawAttr::new(CKA_LABEL, label));
        template.push(RawAttr::new(CKA_VALUE, &value));
        value.zeroize();
        let created = self.raw.create_object(self.raw_session, &template);
        for attr in &mut template {
            attr.value.zeroize();
        }
        created.expect("C_CreateObject");
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
        self.raw
            .close_session(self.raw_session)
            .expect("C_CloseSession (raw)");
        self.session.close().expect("C_CloseSession");
        drop(self.ctx); // C_Finalize; the module stays mapped (-z nodelete, and `raw` holds it).
        assert_no_fragments(masked);
        drop(self.raw);
    }
}

#[test]
fn secret_key_leaves_no_copy_in_memory_after_destroy_and_finalize() {
    let setup = Setup::new();
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
    let setup = Setup::new();
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
    let setup = Setup::new();
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
    let ec_left = fragments_below_caller(&MASKED_EC_KEY, 64 * 1024);
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
    let aes_left = fragments_below_caller(&MASKED_AES_KEY, 64 * 1024);
    assert!(
        ec_left.is_empty() && aes_left.is_empty(),
        "key bytes left on the caller's stack: EC at {:x?}, AES at {:x?}",
        ec_left.iter().map(|(_, at)| at).take(8).collect::<Vec<_>>(),
        aes_left
            .iter()
            .map(|(_, at)| at)
            .take(8)
            .collect::<Vec<_>>()
    );
}

/// Fails listing where (first address of each run) the secret remains.
fn assert_no_fragments(masked: &[u8]) {
    let fragments = fragments_in_memory(masked);
    assert!(
        fragments.is_empty(),
        "{} fragment(s) of the destroyed key remain in writable memory after C_Finalize; \
         first ones (mapping, address):\n{}",
        fragments.len(),
        fragments
            .iter()
            .filter(|(_, at)| !fragments.iter().any(|(_, b)| *b + 1 == *at))
            .take(40)
            .map(|(what, at)| format!("  {at:#x} in {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

//! Single-part AES-GCM through the C ABI with the buffers callers really pass: a buffer
//! of exactly the output's length, a larger one, one shorter than the output, the input's
//! own buffer (in place), and a length that claims more than the buffer holds. Every case
//! must give the bytes the `cryptoki` crate's calls give, write nothing past the output
//! (`ffi/raw.rs` `OutBuf::put`), and leave no plaintext behind a tag that fails.
//!
//! Run with `cargo nextest run --test mech_gcm_buffers`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::session::Session;
use cryptoki_sys::*;

use common::hostile::Api;
use common::*;

const IV: [u8; 12] = [9; 12];
const AAD: &[u8] = b"header";

struct Fx {
    _env: TestEnv,
    _ctx: cryptoki::context::Pkcs11,
    api: Api,
    session: Session,
    key: cryptoki::object::ObjectHandle,
}

fn fixture() -> Fx {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    let key = session
        .create_object(&aes_template("gcm", &[0x42; 32], false))
        .unwrap();
    Fx {
        api: Api::load(),
        key,
        session,
        _ctx: ctx,
        _env: env,
    }
}

impl Fx {
    fn init(&self, encrypt: bool) {
        let mut iv = IV;
        let mut aad = AAD.to_vec();
        let mut params = CK_GCM_PARAMS {
            pIv: iv.as_mut_ptr(),
            ulIvLen: iv.len() as CK_ULONG,
            ulIvBits: 96,
            pAAD: aad.as_mut_ptr(),
            ulAADLen: aad.len() as CK_ULONG,
            ulTagBits: 128,
        };
        let mut mechanism = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: (&mut params as *mut CK_GCM_PARAMS).cast(),
            ulParameterLen: std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG,
        };
        let session = self.session.handle();
        // SAFETY: a valid mechanism structure and handles, live for the call.
        let rv = unsafe {
            if encrypt {
                self.api.list.C_EncryptInit.unwrap()(session, &mut mechanism, self.key.handle())
            } else {
                self.api.list.C_DecryptInit.unwrap()(session, &mut mechanism, self.key.handle())
            }
        };
        assert_eq!(rv, CKR_OK, "init");
    }

    /// One C_Encrypt or C_Decrypt of the `input_len` bytes at `buf[input_at..]` into
    /// `buf[output_at..]`, telling the module the output buffer holds `claimed` bytes.
    fn step(
        &self,
        encrypt: bool,
        buf: &mut [u8],
        input_at: usize,
        input_len: usize,
        output_at: usize,
        claimed: CK_ULONG,
    ) -> (CK_RV, CK_ULONG) {
        let mut len = claimed;
        let base = buf.as_mut_ptr();
        let session = self.session.handle();
        // SAFETY: both pointers lie inside `buf`; the module writes at most the output's
        // length, which every caller below leaves room for (the claim may overstate it).
        let rv = unsafe {
            let (input, output) = (base.add(input_at), base.add(output_at));
            if encrypt {
                self.api.list.C_Encrypt.unwrap()(
                    session,
                    input,
                    input_len as CK_ULONG,
                    output,
                    &mut len,
                )
            } else {
                self.api.list.C_Decrypt.unwrap()(
                    session,
                    input,
                    input_len as CK_ULONG,
                    output,
                    &mut len,
                )
            }
        };
        (rv, len)
    }

    /// The reference: the `cryptoki` crate's single-part calls.
    fn sealed(&self, plain: &[u8]) -> Vec<u8> {
        let mut iv = IV;
        let params = GcmParams::new(&mut iv, AAD, 128.into()).unwrap();
        self.session
            .encrypt(&Mechanism::AesGcm(params), self.key, plain)
            .unwrap()
    }
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn every_buffer_arrangement_gives_the_same_ciphertext_and_plaintext() {
    let fx = fixture();
    for len in [1, 64, 256, 257, 4096] {
        let plain = plaintext(len);
        let sealed = fx.sealed(&plain);
        assert_eq!(sealed.len(), len + 16);

        // Into a separate buffer of exactly the output's length, and a larger one.
        for spare in [0, 100] {
            let mut buf = vec![0u8; len + len + 16 + spare];
            buf[..len].copy_from_slice(&plain);
            fx.init(true);
            let (rv, n) = fx.step(true, &mut buf, 0, len, len, (len + 16 + spare) as CK_ULONG);
            assert_eq!(
                (rv, n as usize),
                (CKR_OK, len + 16),
                "{len} B, {spare} spare"
            );
            assert_eq!(
                buf[len..len + len + 16],
                sealed[..],
                "{len} B, {spare} spare"
            );
        }

        // In place: the plaintext's own buffer, with room for the tag.
        let mut buf = vec![0u8; len + 16];
        buf[..len].copy_from_slice(&plain);
        fx.init(true);
        let (rv, n) = fx.step(true, &mut buf, 0, len, 0, (len + 16) as CK_ULONG);
        assert_eq!((rv, n as usize), (CKR_OK, len + 16), "{len} B in place");
        assert_eq!(buf, sealed, "{len} B in place");

        // Overlapping by part: the output starting 8 bytes before the input, and 8 bytes
        // into it (outputs of 1 KiB and more are written straight into a buffer that
        // shares no byte with the input, `OutBuf::direct`; these must not be).
        for (input_at, output_at) in [(8, 0), (0, 8)] {
            let mut buf = vec![0u8; len + 16 + 8];
            buf[input_at..input_at + len].copy_from_slice(&plain);
            fx.init(true);
            let (rv, n) = fx.step(
                true,
                &mut buf,
                input_at,
                len,
                output_at,
                (len + 16) as CK_ULONG,
            );
            assert_eq!(
                (rv, n as usize),
                (CKR_OK, len + 16),
                "{len} B, output at {output_at}"
            );
            assert_eq!(
                buf[output_at..output_at + len + 16],
                sealed[..],
                "{len} B, output at {output_at}"
            );
        }

        // Decryption: a buffer as long as the input (the length a query reports), one of
        // exactly the plaintext's length, and in place.
        for room in [len + 16, len] {
            let mut buf = vec![0u8; len + 16 + room];
            buf[..len + 16].copy_from_slice(&sealed);
            fx.init(false);
            let (rv, n) = fx.step(false, &mut buf, 0, len + 16, len + 16, room as CK_ULONG);
            assert_eq!((rv, n as usize), (CKR_OK, len), "{len} B into {room}");
            assert_eq!(
                buf[len + 16..len + 16 + len],
                plain[..],
                "{len} B into {room}"
            );
        }
        let mut buf = sealed.clone();
        fx.init(false);
        let (rv, n) = fx.step(false, &mut buf, 0, len + 16, 0, (len + 16) as CK_ULONG);
        assert_eq!(
            (rv, n as usize),
            (CKR_OK, len),
            "{len} B decrypted in place"
        );
        assert_eq!(buf[..len], plain[..], "{len} B decrypted in place");
    }
}

#[test]
fn a_tag_that_fails_leaves_no_plaintext_in_the_callers_buffer_and_ends_the_operation() {
    let fx = fixture();
    let plain = plaintext(64);
    let mut sealed = fx.sealed(&plain);
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let mut buf = vec![0xeeu8; 80 + 80];
    buf[..80].copy_from_slice(&sealed);
    fx.init(false);
    let (rv, _) = fx.step(false, &mut buf, 0, 80, 80, 80);
    assert_eq!(rv, CKR_ENCRYPTED_DATA_INVALID);
    let out = &buf[80..];
    assert!(
        out.windows(8).all(|w| !plain.windows(8).any(|p| p == w)),
        "no run of plaintext in the output buffer"
    );
    let (rv, _) = fx.step(false, &mut buf, 0, 80, 80, 80);
    assert_eq!(
        rv, CKR_OPERATION_NOT_INITIALIZED,
        "the failure ended the operation"
    );
}

#[test]
fn a_short_buffer_gets_the_length_and_the_same_output_on_the_retry() {
    let fx = fixture();
    for len in [64, 4096] {
        let plain = plaintext(len);
        let sealed = fx.sealed(&plain);
        let out = len + 16;
        let mut buf = vec![0u8; len + out];
        buf[..len].copy_from_slice(&plain);
        fx.init(true);
        let (rv, n) = fx.step(true, &mut buf, 0, len, len, (out - 1) as CK_ULONG);
        assert_eq!((rv, n as usize), (CKR_BUFFER_TOO_SMALL, out), "{len} B");
        assert!(
            buf[len..].iter().all(|&b| b == 0),
            "{len} B: nothing written into a short buffer"
        );
        let (rv, n) = fx.step(true, &mut buf, 0, len, len, out as CK_ULONG);
        assert_eq!((rv, n as usize), (CKR_OK, out), "{len} B");
        assert_eq!(buf[len..], sealed[..], "{len} B");
    }
}

#[test]
fn a_length_that_overstates_the_buffer_is_not_written_past_the_output() {
    let fx = fixture();
    for len in [64, 4096] {
        let plain = plaintext(len);
        let sealed = fx.sealed(&plain);
        let end = len + len + 16;
        for claimed in [1 << 40, CK_ULONG::MAX] {
            let mut buf = vec![0xccu8; end + 256];
            buf[..len].copy_from_slice(&plain);
            fx.init(true);
            let (rv, n) = fx.step(true, &mut buf, 0, len, len, claimed);
            assert_eq!(
                (rv, n as usize),
                (CKR_OK, len + 16),
                "{len} B, claimed {claimed}"
            );
            assert_eq!(buf[len..end], sealed[..], "{len} B");
            assert!(
                buf[end..].iter().all(|&b| b == 0xcc),
                "{len} B, claimed {claimed}: written past"
            );
        }
    }
}

/// Encryption written straight into the caller's buffer (1 KiB and more) never puts
/// plaintext there, not even for the length of the call: another thread of the caller
/// (a zero-copy send buffer, shared memory) reading it meanwhile sees none.
#[test]
fn the_output_buffer_never_holds_plaintext_during_an_encryption() {
    let fx = fixture();
    let len = 1 << 20;
    let plain = plaintext(len);
    let mut buf = vec![0u8; len + len + 16];
    buf[..len].copy_from_slice(&plain);
    let watched = len + len - 64; // the output's bytes 64 before the tag
    let sample: [u8; 32] = plain[len - 64..len - 32].try_into().unwrap();
    let watcher = Watcher::start(buf.as_ptr() as usize + watched, sample);
    for _ in 0..40 {
        fx.init(true);
        let (rv, n) = fx.step(true, &mut buf, 0, len, len, (len + 16) as CK_ULONG);
        assert_eq!((rv, n as usize), (CKR_OK, len + 16));
    }
    assert_eq!(
        watcher.stop(),
        0,
        "plaintext seen in the output buffer during C_Encrypt"
    );
}

/// An output buffer that ends where the mapping ends, its length overstated: the module
/// touches no byte past the output (a slice of the caller's buffer covers exactly the
/// output, `OutBuf::direct`).
#[test]
fn an_overstated_length_never_reaches_past_the_output_at_a_mapping_end() {
    let fx = fixture();
    let page = 4096;
    for len in [1024usize, 4080, 4096] {
        let plain = plaintext(len);
        let sealed = fx.sealed(&plain);
        let pages = (len + 16).div_ceil(page) + 1;
        // SAFETY: a fresh private anonymous mapping, its last page made inaccessible; the
        // output ends right before that page; unmapped at the end of the iteration.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                pages * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let map = map.cast::<u8>();
            let guard = map.add((pages - 1) * page);
            assert_eq!(libc::mprotect(guard.cast(), page, libc::PROT_NONE), 0);
            let out = guard.sub(len + 16);
            fx.init(true);
            let mut n = CK_ULONG::MAX;
            let mut input = plain.clone();
            let rv = fx.api.list.C_Encrypt.unwrap()(
                fx.session.handle(),
                input.as_mut_ptr(),
                len as CK_ULONG,
                out,
                &mut n,
            );
            assert_eq!((rv, n as usize), (CKR_OK, len + 16), "{len} B");
            assert_eq!(std::slice::from_raw_parts(out, len + 16), &sealed[..]);
            libc::munmap(map.cast(), pages * page);
        }
    }
}

/// Decryption of 1 KiB and more is written into the caller's buffer only once the tag has
/// been checked (the plaintext is opened into a buffer of the module's own first): while
/// decryptions whose tag fails run, another thread of the caller reading the output
/// buffer never sees plaintext, and none is left there after. Sizes on both sides of the
/// module's per-thread buffer (64 KiB) decrypt to the right bytes.
#[test]
fn the_output_buffer_never_holds_unauthenticated_plaintext_during_a_decryption() {
    let fx = fixture();
    for len in [1024, 4096, 65536, 65537] {
        let plain = plaintext(len);
        let sealed = fx.sealed(&plain);
        let mut buf = vec![0u8; len + 16 + len];
        buf[..len + 16].copy_from_slice(&sealed);
        fx.init(false);
        let (rv, n) = fx.step(false, &mut buf, 0, len + 16, len + 16, len as CK_ULONG);
        assert_eq!((rv, n as usize), (CKR_OK, len), "{len} B");
        assert_eq!(buf[len + 16..], plain[..], "{len} B");
    }
    let len = 60 * 1024;
    let plain = plaintext(len);
    let mut sealed = fx.sealed(&plain);
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let mut buf = vec![0u8; len + 16 + len];
    buf[..len + 16].copy_from_slice(&sealed);
    let out = len + 16;
    let watched = out + len - 64; // the plaintext's bytes 64 before its end
    let sample: [u8; 32] = plain[len - 64..len - 32].try_into().unwrap();
    let watcher = Watcher::start(buf.as_ptr() as usize + watched, sample);
    for _ in 0..200 {
        fx.init(false);
        let (rv, _) = fx.step(false, &mut buf, 0, len + 16, out, len as CK_ULONG);
        assert_eq!(rv, CKR_ENCRYPTED_DATA_INVALID);
        assert!(
            buf[out..].iter().all(|&b| b == 0),
            "the output buffer was written by a decryption whose tag failed"
        );
    }
    assert_eq!(
        watcher.stop(),
        0,
        "unauthenticated plaintext seen in the output buffer during C_Decrypt"
    );
}

/// A thread of the caller's that keeps reading 32 bytes of a buffer the module is writing
/// (a zero-copy send buffer, shared memory), counting the times it finds `sample` there.
struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Watches the 32 bytes at address `at`, which must stay valid until the watcher is
    /// stopped or dropped (declared after the buffer, it is dropped first, also when an
    /// assertion fails).
    fn start(at: usize, sample: [u8; 32]) -> Watcher {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let (stop, seen) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut now = [0u8; 32];
                    for (i, b) in now.iter_mut().enumerate() {
                        // SAFETY: `at` points 32 bytes inside a buffer that outlives this
                        // thread (`halt` joins it first); volatile reads of bytes another
                        // thread may be writing, racing on purpose, as the caller's other
                        // thread would.
                        *b = unsafe { std::ptr::read_volatile((at + i) as *const u8) };
                    }
                    if now == sample {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops and joins the thread; how many times it saw the sample.
    fn stop(mut self) -> usize {
        self.halt();
        self.seen.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // A panic of the watcher's own is its test's failure too.
            thread.join().unwrap();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

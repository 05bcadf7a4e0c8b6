//! Scans of this test process's own memory for copies of secrets (tests/memory_secrets.rs
//! and the reviews' memory tests). A secret is kept masked (each byte XORed with a mask)
//! and unmasked only into template buffers that the test zeroizes right after the call,
//! so a run of its bytes found in writable memory is a copy made by the module or the
//! libraries under it, not by the test. Linux only (/proc/self/maps, /proc/self/mem).

use std::io::{Read, Seek, SeekFrom};

use cryptoki_sys::*;
use zeroize::Zeroize;

use super::raw::{Raw, RawAttr};
use super::{ready_token, TestEnv};

/// The length of a run that counts as a copy: half a 256-bit key, one AES round key.
const RUN: usize = 16;

/// A masked value in the clear, in a buffer the caller must zeroize.
pub fn unmasked(masked: &[u8], mask: u8) -> Vec<u8> {
    masked.iter().map(|b| b ^ mask).collect()
}

/// `plain` masked with `mask`.
pub fn masked(plain: &[u8], mask: u8) -> Vec<u8> {
    unmasked(plain, mask)
}

/// Writable mappings of this process: (start, end, the maps line).
pub fn writable_mappings() -> Vec<(u64, u64, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            if !fields.next()?.starts_with("rw") {
                return None;
            }
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
                line.to_string(),
            ))
        })
        .collect()
}

/// Where a run of a secret was found.
#[derive(Debug, Clone)]
pub struct Fragment {
    /// The run's first address.
    pub at: u64,
    /// The mapping it is in (its /proc/self/maps line).
    pub mapping: String,
    /// Found in reverse byte order: how aws-lc holds big numbers (little-endian 64-bit
    /// words, least significant first).
    pub reversed: bool,
}

/// Where a 16-byte run of the secret `masked` (masked with `mask`) occurs unmasked in
/// writable memory, in its byte order or reversed.
pub fn fragments(masked: &[u8], mask: u8) -> Vec<Fragment> {
    fragments_in(masked, mask, writable_mappings())
}

/// `fragments` over `depth` bytes of this thread's stack below the caller's frame, where
/// the module's calls made from that frame ran: what they left there.
#[inline(never)]
pub fn fragments_below_caller(masked: &[u8], mask: u8, depth: u64) -> Vec<Fragment> {
    let marker = 0u8;
    let top = std::hint::black_box(std::ptr::addr_of!(marker)) as u64;
    let (start, _, what) = writable_mappings()
        .into_iter()
        .find(|(start, end, _)| (*start..*end).contains(&top))
        .expect("the mapping of this thread's stack");
    fragments_in(masked, mask, vec![(start.max(top - depth), top, what)])
}

/// `fragments` over `ranges` (start, end, description). Every 16-byte run holds a whole
/// 8-byte word at an offset that is a multiple of 8 from the range's start, so those words
/// are looked up first (a bitmap on 16 bits, then a set) and only candidates compared
/// whole.
pub fn fragments_in(masked: &[u8], mask: u8, ranges: Vec<(u64, u64, String)>) -> Vec<Fragment> {
    assert!(masked.len() >= RUN);
    let reversed: Vec<u8> = masked.iter().rev().copied().collect();
    let forms = [masked, &reversed[..]];
    let mask_word = u64::from_ne_bytes([mask; 8]);
    // Every 8-byte window of both forms, as masked words.
    let mut words = std::collections::HashSet::new();
    let mut bitmap = vec![0u64; 1 << 10];
    for form in forms {
        for w in form.windows(8) {
            let word = u64::from_ne_bytes(w.try_into().expect("8 bytes"));
            words.insert(word);
            let low = (word & 0xffff) as usize;
            bitmap[low >> 6] |= 1 << (low & 63);
        }
    }
    let mut mem = std::fs::File::open("/proc/self/mem").expect("open /proc/self/mem");
    let mut chunk = vec![0u8; 1 << 20];
    let mut found: Vec<Fragment> = Vec::new();
    for (start, end, what) in ranges {
        let mut at = start;
        while at < end {
            let len = ((end - at) as usize).min(chunk.len());
            let Ok(n) = mem
                .seek(SeekFrom::Start(at))
                .and_then(|_| mem.read(&mut chunk[..len]))
            else {
                break;
            };
            if n == 0 {
                break;
            }
            let mut hits = Vec::new();
            for (i, w) in chunk[..n].chunks_exact(8).enumerate() {
                let word = u64::from_ne_bytes(w.try_into().expect("8 bytes")) ^ mask_word;
                let low = (word & 0xffff) as usize;
                if bitmap[low >> 6] & (1 << (low & 63)) != 0 && words.contains(&word) {
                    hits.push(i * 8);
                }
            }
            for hit in hits {
                // A run holding this word starts at most 8 bytes before it.
                for begin in hit.saturating_sub(8)..=hit {
                    let Some(window) = chunk[..n].get(begin..begin + RUN) else {
                        continue;
                    };
                    for (f, form) in forms.iter().enumerate() {
                        let matched = form
                            .windows(RUN)
                            .any(|part| window.iter().zip(part).all(|(m, k)| m ^ mask == *k));
                        let addr = at + begin as u64;
                        if matched && !found.iter().any(|g| g.at == addr) {
                            found.push(Fragment {
                                at: addr,
                                mapping: what.clone(),
                                reversed: f == 1,
                            });
                        }
                    }
                }
            }
            if at + n as u64 >= end || n <= 64 {
                break;
            }
            // Overlap chunks so a run across a boundary is seen.
            at += (n - 64) as u64;
        }
    }
    chunk.zeroize();
    found.sort_by_key(|g| g.at);
    found
}

/// The first address of each run of consecutive fragments, up to `most`, one a line.
pub fn describe(found: &[Fragment], most: usize) -> String {
    found
        .iter()
        .filter(|g| !found.iter().any(|h| h.at + 1 == g.at))
        .take(most)
        .map(|g| {
            format!(
                "  {:#x} in {}{}",
                g.at,
                g.mapping,
                if g.reversed { " (reversed)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A logged-in token: the cryptoki context and session, and a raw read/write session on
/// it, whose secrets are masked with `mask`.
pub struct Setup {
    pub env: TestEnv,
    pub ctx: cryptoki::context::Pkcs11,
    pub session: cryptoki::session::Session,
    pub raw: Raw,
    pub raw_session: CK_SESSION_HANDLE,
    pub mask: u8,
}

impl Setup {
    pub fn new(mask: u8) -> Setup {
        let env = TestEnv::new();
        let (ctx, slot, session) = ready_token(&env);
        let raw = Raw::load();
        let raw_session = raw
            .open_session(slot.id(), CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .expect("C_OpenSession (raw)");
        Setup {
            env,
            ctx,
            session,
            raw,
            raw_session,
            mask,
        }
    }

    /// C_CreateObject of `template` plus the secrets given masked; every clear copy the
    /// test made is zeroized before returning.
    pub fn create(&self, mut template: Vec<RawAttr>, secrets: &[(CK_ATTRIBUTE_TYPE, &[u8])]) {
        for (ty, masked) in secrets {
            let mut value = unmasked(masked, self.mask);
            template.push(RawAttr::new(*ty, &value));
            value.zeroize();
        }
        let created = self.raw.create_object(self.raw_session, &template);
        for attr in &mut template {
            attr.value.zeroize();
        }
        created.expect("C_CreateObject");
    }

    /// Closes every session and calls C_Finalize (the module stays mapped: `-z nodelete`,
    /// and the raw function list holds it): what the module held is dropped.
    pub fn finalize(self) -> Raw {
        self.raw
            .close_session(self.raw_session)
            .expect("C_CloseSession (raw)");
        self.session.close().expect("C_CloseSession");
        drop(self.ctx);
        self.raw
    }
}

//! An attacker's review (branch attack19b) of 9358c6a: single-part outputs of every size
//! are written straight into the caller's buffer (`ffi/raw.rs` `OutBuf::direct`,
//! `ffi/entry/crypto.rs` `cipher_once`).
//!
//! No defect was found. The tests here PASS on this branch: they add coverage of the
//! direct path for small inputs (0 to 1024 bytes), which `tests/mech_gcm_buffers.rs`
//! covers only for 1, 64 and 256 bytes with a 12-byte IV and a full tag.
//!
//! Run with `cargo nextest run --test attack_review19b` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::hostile::Api;
use common::mech::*;
use common::*;
use cryptoki_sys::*;

struct Fx {
    _env: TestEnv,
    _ctx: cryptoki::context::Pkcs11,
    api: Api,
    ck: Ck,
    session: cryptoki::session::Session,
    aes: CK_OBJECT_HANDLE,
    sm4: CK_OBJECT_HANDLE,
}

fn fixture() -> Fx {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    let aes = common::mech::aes_key(&session, &[0x42; 32]).handle();
    let sm4 = sm4_key(&session, &[0x24; 16]).handle();
    Fx {
        api: Api::load(),
        ck: Ck::load(),
        session,
        aes,
        sm4,
        _ctx: ctx,
        _env: env,
    }
}

impl Fx {
    fn s(&self) -> CK_SESSION_HANDLE {
        self.session.handle()
    }
    fn init(&self, encrypt: bool, m: &RawMech, key: CK_OBJECT_HANDLE) -> CK_RV {
        let r = if encrypt {
            self.ck.encrypt_init(self.s(), m, key)
        } else {
            self.ck.decrypt_init(self.s(), m, key)
        };
        r.unwrap_or_else(|e| panic!("init {:#x}: {e:?}", m.ty));
        CKR_OK
    }

    /// One C_Encrypt / C_Decrypt of `buf[input_at..input_at + input_len]` into
    /// `buf[output_at..]` (or NULL), claiming `claimed` bytes.
    fn step(
        &self,
        encrypt: bool,
        buf: &mut [u8],
        input_at: usize,
        input_len: usize,
        output_at: Option<usize>,
        claimed: CK_ULONG,
    ) -> (CK_RV, CK_ULONG) {
        let mut len = claimed;
        let base = buf.as_mut_ptr();
        // SAFETY: both pointers lie inside `buf`, which holds room for the output.
        let rv = unsafe {
            let input = base.add(input_at);
            let output = output_at.map_or(std::ptr::null_mut(), |at| base.add(at));
            if encrypt {
                self.api.list.C_Encrypt.unwrap()(
                    self.s(),
                    input,
                    input_len as CK_ULONG,
                    output,
                    &mut len,
                )
            } else {
                self.api.list.C_Decrypt.unwrap()(
                    self.s(),
                    input,
                    input_len as CK_ULONG,
                    output,
                    &mut len,
                )
            }
        };
        (rv, len)
    }

    /// Multi-part reference (Update then Final, never the direct path).
    fn multi(
        &self,
        encrypt: bool,
        m: &RawMech,
        key: CK_OBJECT_HANDLE,
        input: &[u8],
    ) -> Result<Vec<u8>, CK_RV> {
        let rv = self.init(encrypt, m, key);
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut out = vec![0u8; input.len() + 64];
        let mut n = out.len() as CK_ULONG;
        let mut inp = input.to_vec();
        // SAFETY: buffers live for the call.
        let rv = unsafe {
            let f = if encrypt {
                self.api.list.C_EncryptUpdate.unwrap()
            } else {
                self.api.list.C_DecryptUpdate.unwrap()
            };
            f(
                self.s(),
                inp.as_mut_ptr(),
                inp.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut n,
            )
        };
        if rv != CKR_OK {
            return Err(rv);
        }
        let first = n as usize;
        let mut n2 = (out.len() - first) as CK_ULONG;
        // SAFETY: as above.
        let rv = unsafe {
            let f = if encrypt {
                self.api.list.C_EncryptFinal.unwrap()
            } else {
                self.api.list.C_DecryptFinal.unwrap()
            };
            f(self.s(), out.as_mut_ptr().add(first), &mut n2)
        };
        if rv != CKR_OK {
            return Err(rv);
        }
        out.truncate(first + n2 as usize);
        Ok(out)
    }
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Runs every buffer arrangement for one mechanism, direction and input; returns a
/// list of mismatches.
fn arrangements(
    fx: &Fx,
    encrypt: bool,
    m: &dyn Fn() -> RawMech,
    key: CK_OBJECT_HANDLE,
    input: &[u8],
    what: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    let reference = fx.multi(encrypt, &m(), key, input);
    let len = input.len();
    let room = len + 64;
    // separate exact / larger / in-place / overlap -1 / +1
    let cases: Vec<(&str, usize, usize)> = vec![
        ("separate", 0, room),
        ("in place", 0, 0),
        ("output one byte before", 1, 0),
        ("output one byte after", 0, 1),
    ];
    for (name, input_at, output_at) in cases {
        let mut buf = vec![0u8; room + len + 64];
        buf[input_at..input_at + len].copy_from_slice(input);
        let rv = fx.init(encrypt, &m(), key);
        assert_eq!(rv, CKR_OK, "{what} init");
        let want = match &reference {
            Ok(r) => r.len(),
            Err(_) => 0,
        };
        let (rv, n) = fx.step(
            encrypt,
            &mut buf,
            input_at,
            len,
            Some(output_at),
            (want.max(len) + 32) as CK_ULONG,
        );
        let got = if rv == CKR_OK {
            Ok(buf[output_at..output_at + n as usize].to_vec())
        } else {
            Err(rv)
        };
        if got != reference {
            bad.push(format!(
                "{what} {name}: {got:02x?} vs multi-part {reference:02x?}"
            ));
        }
    }
    // One byte too small, then the retry.
    if let Ok(r) = &reference {
        if !r.is_empty() {
            let mut buf = vec![0u8; room + len + 64];
            buf[..len].copy_from_slice(input);
            fx.init(encrypt, &m(), key);
            let (rv, n) = fx.step(
                encrypt,
                &mut buf,
                0,
                len,
                Some(room),
                (r.len() - 1) as CK_ULONG,
            );
            if (rv, n as usize) != (CKR_BUFFER_TOO_SMALL, r.len()) {
                bad.push(format!("{what} short: {rv:#x} {n}"));
            }
            let (rv, n) = fx.step(encrypt, &mut buf, 0, len, Some(room), r.len() as CK_ULONG);
            if rv != CKR_OK || buf[room..room + n as usize] != r[..] {
                bad.push(format!("{what} retry: {rv:#x} {n}"));
            }
        }
        // length query then call
        let mut buf = vec![0u8; room + len + 64];
        buf[..len].copy_from_slice(input);
        fx.init(encrypt, &m(), key);
        let (rv, q) = fx.step(encrypt, &mut buf, 0, len, None, 0);
        if rv != CKR_OK || (q as usize) < r.len() {
            bad.push(format!("{what} query: {rv:#x} {q}"));
        }
        let (rv, n) = fx.step(encrypt, &mut buf, 0, len, Some(room), q);
        if rv != CKR_OK || buf[room..room + n as usize] != r[..] {
            bad.push(format!("{what} after query: {rv:#x} {n}"));
        }
    }
    bad
}

/// PASSING (coverage, no defect): for AES-GCM (12-, 1-, 16- and 17-byte IVs; 128-, 96-
/// and 32-bit tags), SM4-GCM, AES CBC_PAD/CBC/ECB/CTR and SM4 CBC_PAD/ECB, inputs of 0,
/// 1, 15, 16, 17, 32, 64, 1023 and 1024 bytes (and for decryption: a forged tag and
/// inputs shorter than the tag) give through C_Encrypt / C_Decrypt, into a separate
/// buffer, in place, and with the output overlapping the input by one byte on either
/// side, exactly what C_*Update + C_*Final give (or the same error); a buffer one byte
/// short is CKR_BUFFER_TOO_SMALL with the needed length and the retry gives the same
/// bytes; a length query then the call gives the same bytes.
#[test]
fn every_buffer_arrangement_of_small_inputs_matches_the_multi_part_result() {
    let fx = fixture();
    let mut bad = Vec::new();
    let sizes = [0usize, 1, 15, 16, 17, 32, 64, 1023, 1024];
    let gcms: Vec<(CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, usize, CK_ULONG)> = vec![
        (CKM_AES_GCM, fx.aes, 12, 128),
        (CKM_AES_GCM, fx.aes, 1, 128),
        (CKM_AES_GCM, fx.aes, 16, 128),
        (CKM_AES_GCM, fx.aes, 17, 128),
        (CKM_AES_GCM, fx.aes, 12, 96),
        (CKM_AES_GCM, fx.aes, 12, 32),
        (CKM_SM4_GCM, fx.sm4, 12, 128),
        (CKM_SM4_GCM, fx.sm4, 12, 96),
    ];
    for &(ty, key, ivlen, tag) in &gcms {
        let iv: Vec<u8> = (0..ivlen).map(|i| i as u8 + 1).collect();
        let m = || RawMech::gcm(ty, &iv, b"aad", tag);
        for &len in &sizes {
            let plain = plaintext(len);
            let what = format!("{ty:#x} iv{ivlen} tag{tag} {len}B");
            bad.extend(arrangements(
                &fx,
                true,
                &m,
                key,
                &plain,
                &format!("enc {what}"),
            ));
            let sealed = fx.multi(true, &m(), key, &plain).unwrap();
            bad.extend(arrangements(
                &fx,
                false,
                &m,
                key,
                &sealed,
                &format!("dec {what}"),
            ));
            let mut forged = sealed.clone();
            *forged.last_mut().unwrap() ^= 1;
            bad.extend(arrangements(
                &fx,
                false,
                &m,
                key,
                &forged,
                &format!("forged {what}"),
            ));
            for cut in [0usize, 1, 15] {
                if cut < sealed.len() {
                    bad.extend(arrangements(
                        &fx,
                        false,
                        &m,
                        key,
                        &sealed[..cut],
                        &format!("short{cut} {what}"),
                    ));
                }
            }
        }
    }
    let iv = [7u8; 16];
    let blocks: Vec<(CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, bool)> = vec![
        (CKM_AES_CBC_PAD, fx.aes, true),
        (CKM_AES_CBC, fx.aes, true),
        (CKM_AES_ECB, fx.aes, false),
        (CKM_SM4_CBC_PAD, fx.sm4, true),
        (CKM_SM4_ECB, fx.sm4, false),
    ];
    for &(ty, key, with_iv) in &blocks {
        let m = || {
            if with_iv {
                RawMech::bytes(ty, &iv)
            } else {
                RawMech::none(ty)
            }
        };
        for &len in &sizes {
            let plain = plaintext(len);
            let what = format!("{ty:#x} {len}B");
            bad.extend(arrangements(
                &fx,
                true,
                &m,
                key,
                &plain,
                &format!("enc {what}"),
            ));
            if let Ok(sealed) = fx.multi(true, &m(), key, &plain) {
                bad.extend(arrangements(
                    &fx,
                    false,
                    &m,
                    key,
                    &sealed,
                    &format!("dec {what}"),
                ));
            }
        }
    }
    let m = || RawMech::ctr(32, &[5u8; 16]);
    for &len in &sizes {
        let plain = plaintext(len);
        bad.extend(arrangements(
            &fx,
            true,
            &m,
            fx.aes,
            &plain,
            &format!("ctr {len}"),
        ));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// PASSING (coverage, no defect): an AES-GCM decryption of 0 to 1023 bytes whose tag
/// fails answers CKR_ENCRYPTED_DATA_INVALID, leaves the caller's output buffer (big enough
/// for the direct path) byte for byte as it was, and ends the operation; C_EncryptUpdate
/// after a completed C_Encrypt is CKR_OPERATION_NOT_INITIALIZED, C_Encrypt after
/// C_EncryptUpdate is CKR_OPERATION_ACTIVE; an empty GCM IV is
/// CKR_MECHANISM_PARAM_INVALID at init.
#[test]
fn a_failed_tag_leaves_small_outputs_untouched_and_one_shots_do_not_mix_with_updates() {
    let fx = fixture();
    let iv = [3u8; 12];
    let m = || RawMech::gcm(CKM_AES_GCM, &iv, b"aad", 128);
    let mut bad = Vec::new();
    for len in [0usize, 1, 15, 16, 17, 64, 255, 256, 257, 1023] {
        let plain = plaintext(len);
        let mut sealed = fx.multi(true, &m(), fx.aes, &plain).unwrap();
        sealed[0] ^= 0x80;
        let mut buf = vec![0xeeu8; sealed.len() + len + 32];
        buf[..sealed.len()].copy_from_slice(&sealed);
        fx.init(false, &m(), fx.aes);
        let at = sealed.len();
        let (rv, _) = fx.step(false, &mut buf, 0, sealed.len(), Some(at), len as CK_ULONG);
        if rv != CKR_ENCRYPTED_DATA_INVALID || buf[at..].iter().any(|&b| b != 0xee) {
            bad.push(format!("{len}: {rv:#x}"));
        }
        let (rv, _) = fx.step(false, &mut buf, 0, sealed.len(), Some(at), len as CK_ULONG);
        if rv != CKR_OPERATION_NOT_INITIALIZED {
            bad.push(format!("{len} after: {rv:#x}"));
        }
    }
    // one-shot then update
    let mut buf = vec![0u8; 200];
    fx.init(true, &m(), fx.aes);
    let (rv, _) = fx.step(true, &mut buf, 0, 10, Some(100), 100);
    assert_eq!(rv, CKR_OK);
    let mut n: CK_ULONG = 100;
    // SAFETY: buffers live.
    let rv = unsafe {
        fx.api.list.C_EncryptUpdate.unwrap()(
            fx.s(),
            buf.as_mut_ptr(),
            10,
            buf.as_mut_ptr().add(100),
            &mut n,
        )
    };
    if rv != CKR_OPERATION_NOT_INITIALIZED {
        bad.push(format!("update after once {rv:#x}"));
    }
    // update then one-shot
    fx.init(true, &m(), fx.aes);
    let mut n: CK_ULONG = 100;
    // SAFETY: buffers live.
    let rv = unsafe {
        fx.api.list.C_EncryptUpdate.unwrap()(
            fx.s(),
            buf.as_mut_ptr(),
            10,
            buf.as_mut_ptr().add(100),
            &mut n,
        )
    };
    assert_eq!(rv, CKR_OK);
    let (rv, _) = fx.step(true, &mut buf, 0, 10, Some(100), 100);
    if rv != CKR_OPERATION_ACTIVE {
        bad.push(format!("once after update {rv:#x}"));
    }
    // SAFETY: a NULL mechanism ends the active operation (PKCS#11 3.0).
    unsafe { fx.api.list.C_EncryptInit.unwrap()(fx.s(), std::ptr::null_mut(), fx.aes) };
    // An empty IV is refused at init; 16 and 17 bytes (inline and heap `Iv`) are taken.
    let empty = fx
        .ck
        .encrypt_init(fx.s(), &RawMech::gcm(CKM_AES_GCM, &[], b"", 128), fx.aes);
    if !matches!(empty, Err(cryptoki::error::RvError::MechanismParamInvalid)) {
        bad.push(format!("empty IV: {empty:?}"));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

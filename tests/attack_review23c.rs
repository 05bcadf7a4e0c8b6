//! Review 23c: an attacker's review of bbeb575..HEAD, which (1) shows a PostgreSQL
//! server's error as its severity, SQLSTATE and message only (`ServerError`,
//! `server_text`) and logs every `CKR_DEVICE_ERROR` at `warn`; (2) notes the secret use of
//! the message-encryption steps that check their parameters with the key; (3) remembers
//! the message IVs by their SHA-256, one reuse check after the generator; (4) tells a bare
//! EC point from a DER-wrapped one by its length, checks SM2 public keys at creation and
//! when their material is built, and refuses at `C_SignInit` a PSS salt too long for the
//! key.
//!
//! Found:
//!
//! 1. DEFECT: the fix keeps the server's *message*, and a PostgreSQL message may itself
//!    quote a value of the failing row. A constraint the administrator adds (the attack
//!    docs/security.md describes: "by adding a constraint or trigger") that converts a
//!    column, e.g. `CHECK (... encode(wrapped_key, 'hex')::integer ...)`, fails with
//!    `ERROR 22P02: invalid input syntax for type integer: "<the wrapped PIN key in
//!    hex>"`: the wrapped token key reaches the module's log, now at the default `warn`
//!    level, DETAIL or not. Fixed: a message is shown only for the SQLSTATE classes whose
//!    messages quote no value (`MESSAGE_SHOWN`, src/error.rs); the constraint's, table's
//!    and column's names are shown instead.
//!
//! Held (coverage): the PSS salt bound at `C_SignInit` for moduli of 2049 and 4095 bits
//! (emLen = ⌈(modBits − 1)/8⌉, one byte less than the modulus for 2049), with
//! `CKM_RSA_PKCS_PSS` and the `CKM_SHA*_RSA_PKCS_PSS` mechanisms, the longest salt
//! signing a signature OpenSSL accepts and one byte more refused at Init and
//! `CKR_SIGNATURE_INVALID` at verification; a raw P-384 ECDH peer whose encoding reads as
//! an OCTET STRING (`04 5f 04 ...`) derives the secret OpenSSL computes.
//!
//! Run with `cargo nextest run --test attack_review23c` (after `cargo build --lib --bins`);
//! the PostgreSQL test needs root (it starts a private server, `common/pg.rs`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{AttributeType, KeyType};
use cryptoki_sys::*;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcPoint, PointConversionForm};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};

// ---------------------------------------------------------------------------------------
// PostgreSQL: a server's message quoting the row

/// DEFECT (1): docs/security.md promises that a wrapped PIN key never reaches the log
/// when "a constraint or trigger" an administrator adds to the PostgreSQL tables makes
/// the module's own write fail, and commit 1703ba6 keeps the server's severity, SQLSTATE
/// and message (`server_text`, src/error.rs:88). But PostgreSQL's *message* quotes the
/// offending value for a whole class of errors (22P02 `invalid input syntax for type
/// integer: "..."`, 22003 `value "..." is out of range`, ...): a CHECK constraint that
/// casts the wrapped key's hex to an integer when the failure counter moves makes the
/// wrong-PIN write fail with the wrapped key in its message, which
/// `log::warn!("{name} -> {code:#x}: {e}")` (src/ffi/guard.rs:70) writes to the log at
/// the default level. Expected: `CKR_DEVICE_ERROR` (as now) and no part of the wrapped key
/// in the log (security.md's row; the message of a data exception of class 22, like
/// the DETAIL, must not be shown, or only the SQLSTATE and constraint name).
#[test]
fn a_constraint_whose_message_quotes_the_wrapped_pin_key_never_brings_it_to_the_log() {
    // Fires only when the failure counter moves: the wrong PIN's write.
    let (log, wrapped) = log_after_a_refused_pin_write(
        "CASE WHEN failures < 1 THEN true ELSE encode(wrapped_key, 'hex')::integer > 0 END",
    );
    assert!(
        log.contains("22P02") || log.contains("22003"),
        "the constraint did not fire as planned: the test is blind"
    );
    let leaked = wrapped
        .iter()
        .filter(|w| log.to_lowercase().contains(&w[..32]))
        .count();
    assert_eq!(
        leaked, 0,
        "a wrapped PIN key reached the module's log through the server's message"
    );
}

// ---------------------------------------------------------------------------------------
// PSS salts on odd modulus sizes

/// An RSA key whose modulus has exactly `bits` bits (OpenSSL's generator makes 2048 for
/// 2049): primes of ⌈bits/2⌉ and ⌊bits/2⌋ bits until their product has `bits`.
fn rsa_of_bits(bits: i32) -> RsaKey {
    let mut ctx = BigNumContext::new().unwrap();
    let e = BigNum::from_u32(65537).unwrap();
    let one = BigNum::from_u32(1).unwrap();
    loop {
        let (mut p, mut q) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        p.generate_prime((bits + 1) / 2, false, None, None).unwrap();
        q.generate_prime(bits / 2, false, None, None).unwrap();
        let mut n = BigNum::new().unwrap();
        n.checked_mul(&p, &q, &mut ctx).unwrap();
        if n.num_bits() != bits || p == q {
            continue;
        }
        let (p1, q1) = (&p - &one, &q - &one);
        let mut phi = BigNum::new().unwrap();
        phi.checked_mul(&p1, &q1, &mut ctx).unwrap();
        let mut d = BigNum::new().unwrap();
        if d.mod_inverse(&e, &phi, &mut ctx).is_err() {
            continue;
        }
        let (mut dp, mut dq, mut qinv) = (
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
        );
        dp.nnmod(&d, &p1, &mut ctx).unwrap();
        dq.nnmod(&d, &q1, &mut ctx).unwrap();
        qinv.mod_inverse(&q, &p, &mut ctx).unwrap();
        return RsaKey {
            n: n.to_vec(),
            e: e.to_vec(),
            d: d.to_vec(),
            p: p.to_vec(),
            q: q.to_vec(),
            dp: dp.to_vec(),
            dq: dq.to_vec(),
            qinv: qinv.to_vec(),
        };
    }
}

/// PASSING (coverage, no defect): RFC 8017 §9.1.1 step 3 with emLen = ⌈(modBits − 1)/8⌉.
/// For a 2049-bit modulus emLen is 256 (the modulus has 257 bytes), for 4095 bits 512: the
/// longest salt (emLen − hLen − 2) signs with `CKM_RSA_PKCS_PSS` and with
/// `CKM_SHA{256,512}_RSA_PKCS_PSS`, and OpenSSL verifies the signature with that salt; one
/// byte more is `CKR_MECHANISM_PARAM_INVALID` at `C_SignInit` and, at verification (as
/// docs/mechanisms.md says), `CKR_SIGNATURE_INVALID`.
#[test]
fn pss_salts_are_bounded_by_em_len_for_odd_modulus_sizes() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    for bits in [2049u32, 4095] {
        let k = rsa_of_bits(bits as i32);
        let private = rsa_private(&session, &k);
        let public = rsa_public(&session, &k.n, &k.e);
        let em_len = (bits as usize - 1).div_ceil(8);
        let pkey = PKey::from_rsa(
            Rsa::from_public_components(
                BigNum::from_slice(&k.n).unwrap(),
                BigNum::from_slice(&k.e).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        for (ty, hash, mgf, md, h_len) in [
            (
                CKM_SHA256_RSA_PKCS_PSS,
                CKM_SHA256,
                CKG_MGF1_SHA256,
                MessageDigest::sha256(),
                32,
            ),
            (
                CKM_SHA512_RSA_PKCS_PSS,
                CKM_SHA512,
                CKG_MGF1_SHA512,
                MessageDigest::sha512(),
                64,
            ),
        ] {
            let longest = em_len - h_len - 2;
            let msg = b"review 23c: the longest salt";
            let fits = RawMech::pss(ty, hash, mgf, longest);
            let sig = ck.sign(s, &fits, private.handle(), msg).unwrap();
            assert_eq!(sig.len(), bits.div_ceil(8) as usize);
            ck.verify(s, &fits, public.handle(), msg, &sig).unwrap();
            let mut v = Verifier::new(md, &pkey).unwrap();
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(longest as i32))
                .unwrap();
            v.set_rsa_mgf1_md(md).unwrap();
            v.update(msg).unwrap();
            assert!(
                v.verify(&sig).unwrap(),
                "{bits} bits: OpenSSL refused the signature"
            );
            let too_long = RawMech::pss(ty, hash, mgf, longest + 1);
            assert_eq!(
                ck.sign_init(s, &too_long, private.handle()),
                Err(RvError::MechanismParamInvalid),
                "{bits} bits, salt {}",
                longest + 1
            );
            assert_eq!(
                ck.verify(s, &too_long, public.handle(), msg, &sig),
                Err(RvError::SignatureInvalid),
                "{bits} bits: verification with a salt too long"
            );
            // The bare mechanism, over the hash, bounds the salt alike.
            let digest = openssl::hash::hash(md, msg).unwrap();
            let bare = RawMech::pss(CKM_RSA_PKCS_PSS, hash, mgf, longest);
            let sig = ck.sign(s, &bare, private.handle(), &digest).unwrap();
            ck.verify(s, &bare, public.handle(), &digest, &sig).unwrap();
            let bare_long = RawMech::pss(CKM_RSA_PKCS_PSS, hash, mgf, longest + 1);
            assert_eq!(
                ck.sign_init(s, &bare_long, private.handle()),
                Err(RvError::MechanismParamInvalid)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A raw P-384 peer that reads as an OCTET STRING

/// PASSING (coverage, no defect): the length rule of `ec::point_from_attribute` on P-384,
/// which review 23b did not try: a raw peer point `04 5f 04 ...` (97 bytes; its first
/// three bytes read as the header of a 95-byte OCTET STRING whose contents begin with 04)
/// derives x(d·Q) as OpenSSL computes it, raw and wrapped alike.
#[test]
fn a_raw_p384_peer_that_reads_as_an_octet_string_derives_the_shared_secret() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let group = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
    let mut bn = BigNumContext::new().unwrap();
    let peer = (0u32..1 << 16)
        .find_map(|i| {
            let mut compressed = vec![0x02, 0x5f, 0x04];
            compressed.resize(1 + 48 - 4, 0);
            compressed.extend_from_slice(&i.to_be_bytes());
            EcPoint::from_bytes(&group, &compressed, &mut bn).ok()
        })
        .unwrap()
        .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut bn)
        .unwrap();
    assert_eq!(&peer[..3], &[0x04, 0x5f, 0x04]);
    let mut order = BigNum::new().unwrap();
    group.order(&mut order, &mut bn).unwrap();
    let mut d = BigNum::new().unwrap();
    order.rand_range(&mut d).unwrap();
    let key = ec_private(
        &session,
        KeyType::EC,
        OID_P384,
        &d.to_vec_padded(48).unwrap(),
    );
    let q = EcPoint::from_bytes(&group, &peer, &mut bn).unwrap();
    let mut r = EcPoint::new(&group).unwrap();
    r.mul2(&group, &q, &d, &mut bn).unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    r.affine_coordinates(&group, &mut x, &mut y, &mut bn)
        .unwrap();
    let expected = x.to_vec_padded(48).unwrap();
    let template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_SENSITIVE, false),
        RawAttr::bool(CKA_EXTRACTABLE, true),
    ];
    let mut wrapped = vec![0x04, 0x61];
    wrapped.extend_from_slice(&peer);
    for (what, public) in [("raw", &peer), ("wrapped", &wrapped)] {
        let h = ck
            .derive(
                session.handle(),
                &RawMech::ecdh(CKD_NULL, public),
                key.handle(),
                &template,
            )
            .unwrap_or_else(|e| panic!("{what} peer: {e:?}"));
        assert_eq!(
            attribute_bytes(&session, handle(h), AttributeType::Value),
            expected,
            "{what} peer"
        );
    }
}

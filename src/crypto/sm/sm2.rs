//! SM2 (GB/T 32918) on the recommended curve sm2p256v1: key generation and checks,
//! signatures with SM3 (including the signer's identity hash Z_A), and public-key
//! encryption in the C1C3C2 layout, raw or as GM/T 0009 DER.
//!
//! Keys are plain bytes: the private scalar `d` as 32 big-endian bytes, the public point
//! as the 65-byte uncompressed SEC1 encoding 04 || x || y. A key of the wrong length is
//! `KeySizeRange`; one of the right length but outside the curve's rules (a scalar outside
//! [1, n-2], a point not on the curve) is `AttributeValueInvalid`, since such a key can only
//! come from a bad key attribute.
//!
//! Z_A is computed here rather than by the `sm2` crate, because the crate takes the
//! identifier as a `str` while GB/T 32918.2 allows any byte string.

use ::sm2::dsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use ::sm2::dsa::{Signature, SigningKey, VerifyingKey};
use ::sm2::elliptic_curve::rand_core::{TryCryptoRng, TryRng};
use ::sm2::elliptic_curve::sec1::ToSec1Point;
use ::sm2::pke::{Cipher, DecryptingKey, EncryptingKey, Mode};
use ::sm2::{NonZeroScalar, PublicKey, Scalar};
use zeroize::Zeroizing;

use super::sm3::Sm3;
use crate::crypto::rand::random_fill;
use crate::error::{Error, Result};

/// The default signer identifier of GM/T 0009-2012, "1234567812345678" (BouncyCastle's
/// default too; the OpenSSL 3.0 command line uses it only when given `distid:`).
pub const SM2_DEFAULT_ID: &[u8] = b"1234567812345678";

/// The curve's OID, 1.2.156.10197.1.301, as a DER element (`CKA_EC_PARAMS`).
pub(crate) const OID_SM2: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];

const SCALAR_LEN: usize = 32;
const POINT_LEN: usize = 65;
const HASH_LEN: usize = 32;
/// C1 (65 bytes, uncompressed) and C3 (32 bytes) around C2, which is never empty.
const CIPHERTEXT_OVERHEAD: usize = POINT_LEN + HASH_LEN;

// The curve parameters that enter Z_A (GB/T 32918.5-2017, the recommended curve).
const CURVE_A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
const CURVE_B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
const CURVE_GX: [u8; 32] =
    hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
const CURVE_GY: [u8; 32] =
    hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

/// Decodes 64 hex digits at compile time (a malformed literal fails the build).
const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex digit in a curve constant"),
        }
    }
    let s = s.as_bytes();
    assert!(s.len() == 64, "curve constants are 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// The module's random source (aws-lc) in the shape the RustCrypto crates take. It records
/// a failure, so that an opaque error from the crate can be reported as `RandomFailed`.
#[derive(Debug, Default)]
struct ModuleRng {
    failed: bool,
}

#[derive(Debug)]
struct RandomFailure;

impl std::fmt::Display for RandomFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the random generator failed")
    }
}

impl std::error::Error for RandomFailure {}

impl TryRng for ModuleRng {
    type Error = RandomFailure;

    fn try_next_u32(&mut self) -> std::result::Result<u32, RandomFailure> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> std::result::Result<u64, RandomFailure> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), RandomFailure> {
        random_fill(dst).map_err(|_| {
            self.failed = true;
            RandomFailure
        })
    }
}

impl TryCryptoRng for ModuleRng {}

impl ModuleRng {
    /// The error to report for an opaque failure of an operation that used this source.
    fn blame(&self, otherwise: Error) -> Error {
        if self.failed {
            Error::RandomFailed
        } else {
            otherwise
        }
    }
}

/// Parses a private scalar: 32 bytes, in [1, n-2]. (n-1 is excluded because signing
/// divides by 1 + d, GB/T 32918.1 §6.1.)
///
/// Our copy is wiped on drop. The `sm2` crate's `SigningKey` and `DecryptingKey` keep
/// their own copies and do not wipe them (0.14.0 has no `Drop` for them), so their
/// lifetime is kept to one call.
fn private_scalar(d: &[u8]) -> Result<Zeroizing<NonZeroScalar>> {
    if d.len() != SCALAR_LEN {
        return Err(Error::KeySizeRange);
    }
    let scalar = NonZeroScalar::try_from(d).map_err(|_| Error::AttributeValueInvalid)?;
    let scalar = Zeroizing::new(scalar);
    let plus_one: Scalar = *(*scalar).as_ref() + Scalar::ONE;
    if bool::from(plus_one.is_zero()) {
        return Err(Error::AttributeValueInvalid);
    }
    Ok(scalar)
}

/// Parses a public point: 65 bytes, 04 || x || y, on the curve and not the identity.
fn public_key(point: &[u8]) -> Result<PublicKey> {
    if point.len() != POINT_LEN {
        return Err(Error::KeySizeRange);
    }
    if point[0] != 0x04 {
        return Err(Error::AttributeValueInvalid);
    }
    PublicKey::from_sec1_bytes(point).map_err(|_| Error::AttributeValueInvalid)
}

fn encode_point(key: &PublicKey) -> Result<[u8; 65]> {
    let encoded = key.to_sec1_point(false);
    // An uncompressed encoding of a valid point is always 65 bytes.
    encoded
        .as_bytes()
        .try_into()
        .map_err(|_| Error::Internal("SM2 point encoding is not 65 bytes"))
}

/// Generates a key pair: the private scalar d, uniform in [1, n-2], and 04 || x || y.
pub fn sm2_generate() -> Result<(Zeroizing<[u8; 32]>, [u8; 65])> {
    // n is just below 2^256 (n > 2^256 - 2^225), so a random 256-bit string is out of
    // range with probability below 2^-31; 64 draws all failing means a broken generator.
    for _ in 0..64 {
        let mut d = Zeroizing::new([0u8; SCALAR_LEN]);
        random_fill(&mut d[..])?;
        if let Ok(scalar) = private_scalar(&d[..]) {
            let point = encode_point(&PublicKey::from_secret_scalar(&scalar))?;
            return Ok((d, point));
        }
    }
    Err(Error::RandomFailed)
}

/// The public point 04 || x || y of the private scalar `d` (32 bytes, in [1, n-2]).
pub(crate) fn sm2_public_from_private(d: &[u8]) -> Result<[u8; 65]> {
    let scalar = private_scalar(d)?;
    encode_point(&PublicKey::from_secret_scalar(&scalar))
}

/// Checks that `point` is a 65-byte uncompressed point on the curve (not the identity).
pub(crate) fn sm2_check_public(point: &[u8]) -> Result<()> {
    public_key(point).map(|_| ())
}

/// Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A), GB/T 32918.2 §5.5.
/// The identifier's length in bits must fit ENTL's 16 bits, so at most 8191 bytes.
fn identity_hash(point: &[u8; 65], id: &[u8]) -> Result<[u8; 32]> {
    let entl = id
        .len()
        .checked_mul(8)
        .and_then(|bits| u16::try_from(bits).ok())
        .ok_or(Error::MechanismParamInvalid)?;
    let mut h = Sm3::new();
    h.update(&entl.to_be_bytes());
    h.update(id);
    for part in [&CURVE_A, &CURVE_B, &CURVE_GX, &CURVE_GY] {
        h.update(part);
    }
    h.update(&point[1..]);
    Ok(h.finalize())
}

/// An SM3 computation already fed with Z_A for `point` and `id`, for multi-part SM2-with-SM3
/// signatures: update it with the message, finalize to e, and pass e to
/// [`sm2_sign_digest`] or [`sm2_verify_digest`].
pub(crate) fn sm2_sm3_hasher(point: &[u8], id: &[u8]) -> Result<Sm3> {
    let key = public_key(point)?;
    let za = identity_hash(&encode_point(&key)?, id)?;
    let mut h = Sm3::new();
    h.update(&za);
    Ok(h)
}

/// The `sm2` crate's signing key for `d`. Its identifier only feeds the crate's own Z_A,
/// which the pre-hash path used here never reads.
fn signing_key(d: &[u8]) -> Result<SigningKey> {
    SigningKey::from_nonzero_scalar("", *private_scalar(d)?)
        .map_err(|_| Error::Internal("SM2 signing key"))
}

/// Signs e with a fresh nonce: RFC 6979-derived from d and e, mixed with randomness.
fn sign_prehash(key: &SigningKey, e: &[u8]) -> Result<[u8; 64]> {
    let mut rng = ModuleRng::default();
    let signature: Signature = key
        .sign_prehash_with_rng(&mut rng, e)
        .map_err(|_| rng.blame(Error::Internal("SM2 signing failed")))?;
    Ok(signature.to_bytes().into())
}

/// Signs the 32-byte digest `e` (already SM3(Z_A || M)) with `d`; returns r || s.
pub(crate) fn sm2_sign_digest(d: &[u8], e: &[u8]) -> Result<[u8; 64]> {
    let key = signing_key(d)?;
    if e.len() != HASH_LEN {
        return Err(Error::DataLenRange);
    }
    sign_prehash(&key, e)
}

/// Signs `message` with `d` under signer identifier `id`: e = SM3(Z_A || message), where
/// Z_A uses the public key derived from `d`. Returns r || s, 32 bytes each.
#[cfg(test)] // used by the tests only
pub(crate) fn sm2_sign_sm3(d: &[u8], id: &[u8], message: &[u8]) -> Result<[u8; 64]> {
    let key = signing_key(d)?;
    let point = encode_point(&PublicKey::from(key.verifying_key()))?;
    let mut h = Sm3::new();
    h.update(&identity_hash(&point, id)?);
    h.update(message);
    sign_prehash(&key, &h.finalize())
}

/// Verifies r || s over the 32-byte digest `e` (already SM3(Z_A || M)).
pub(crate) fn sm2_verify_digest(point: &[u8], e: &[u8], signature: &[u8]) -> Result<()> {
    let key = public_key(point)?;
    if e.len() != HASH_LEN {
        return Err(Error::DataLenRange);
    }
    if signature.len() != Signature::BYTE_SIZE {
        return Err(Error::SignatureLenRange);
    }
    // r or s of zero or not below n is an invalid signature, not a malformed call.
    let signature = Signature::from_slice(signature).map_err(|_| Error::SignatureInvalid)?;
    let key = VerifyingKey::new("", key).map_err(|_| Error::Internal("SM2 verifying key"))?;
    key.verify_prehash(e, &signature)
        .map_err(|_| Error::SignatureInvalid)
}

/// Verifies r || s over `message` for the signer `point` with identifier `id`.
#[cfg(test)] // used by the tests only
pub(crate) fn sm2_verify_sm3(
    point: &[u8],
    id: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    let mut h = sm2_sm3_hasher(point, id)?;
    h.update(message);
    sm2_verify_digest(point, &h.finalize(), signature)
}

/// Encrypts `plaintext` (non-empty) to `point`; returns C1 || C3 || C2 with C1 the
/// 65-byte uncompressed point and C3 the 32-byte SM3 value (GB/T 32918.4-2016 §6.1, the
/// layout of the 2012+ standard and of the KMS import format, kms-docs file 004).
pub fn sm2_encrypt(point: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let cipher = encrypt_cipher(point, plaintext)?;
    cipher
        .to_vec(Mode::C1C3C2, false)
        .map_err(|_| Error::Internal("SM2 ciphertext encoding"))
}

/// Encrypts `plaintext` (non-empty) to `point`; returns the GM/T 0009 DER form
/// SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET STRING },
/// which OpenSSL and GmSSL use.
#[cfg(test)] // used by the tests only
pub(crate) fn sm2_encrypt_der(point: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let cipher = encrypt_cipher(point, plaintext)?;
    ::der::Encode::to_der(&cipher).map_err(|_| Error::Internal("SM2 ciphertext DER encoding"))
}

fn encrypt_cipher(point: &[u8], plaintext: &[u8]) -> Result<Cipher<'static>> {
    let key = EncryptingKey::new_with_mode(public_key(point)?, Mode::C1C3C2);
    if plaintext.is_empty() {
        return Err(Error::DataLenRange);
    }
    let mut rng = ModuleRng::default();
    key.encrypt_cipher::<_, ::sm3::Sm3>(&mut rng, plaintext)
        .map_err(|_| rng.blame(Error::Internal("SM2 encryption failed")))
}

/// Decrypts C1 || C3 || C2 (C1 uncompressed, 65 bytes; C3 32 bytes; C2 non-empty) with `d`.
/// A ciphertext too short is `EncryptedDataLenRange`; one whose C1 is not on the curve or
/// whose C3 does not match is `EncryptedDataInvalid`.
pub(crate) fn sm2_decrypt(d: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = DecryptingKey::new_with_mode(*private_scalar(d)?, Mode::C1C3C2);
    if ciphertext.len() <= CIPHERTEXT_OVERHEAD {
        return Err(Error::EncryptedDataLenRange);
    }
    if ciphertext[0] != 0x04 {
        return Err(Error::EncryptedDataInvalid);
    }
    let cipher = Cipher::<'_, ::sm2::Sm2, ::sm3::Sm3>::from_slice(ciphertext, Mode::C1C3C2)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    decrypt_cipher(&key, &cipher)
}

/// Decrypts the GM/T 0009 DER form (see [`sm2_encrypt_der`]) with `d`. Anything that is
/// not exactly that structure, with a 32-byte hash, a non-empty ciphertext and a point on
/// the curve, or whose hash does not match, is `EncryptedDataInvalid`.
#[cfg(test)] // used by the tests only
pub(crate) fn sm2_decrypt_der(d: &[u8], der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use ::der::Decode;
    let key = DecryptingKey::new_with_mode(*private_scalar(d)?, Mode::C1C3C2);
    let cipher = Cipher::<'_, ::sm2::Sm2, ::sm3::Sm3>::from_der(der)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    decrypt_cipher(&key, &cipher)
}

fn decrypt_cipher(key: &DecryptingKey, cipher: &Cipher<'_>) -> Result<Zeroizing<Vec<u8>>> {
    if cipher.c2().is_empty() {
        return Err(Error::EncryptedDataInvalid);
    }
    // Decrypt into our own zeroizing buffer: the crate's `decrypt` returns a plain Vec.
    let mut out = Zeroizing::new(vec![0u8; cipher.c2().len()]);
    let len = key
        .decrypt_cipher_with_buf(cipher, &mut out)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sm::test_support::{assert_err, hex};
    use ::sm2::dsa::signature::Signer;

    // SM2_key1 from OpenSSL's test/recipes/30-test_evp_data/evppkey_sm2.txt, a key on the
    // recommended curve, with the published signatures over pre-hashed digests and the
    // published GM/T 0009 ciphertext from the same file.
    const KEY1_D: &str = "d09156733017bdad809fd9bbd8c693f60230593169b6f94aaf1c8ee138cc99b5";
    const KEY1_POINT: &str = "04 393a2ad9e27e43acaaab85a19d3b85591e14406157175addd37bf77ff0caf9ed
                                 37fcf3a8b4f55c038523261fca6636afe6a7afa2a1482a606f5cb3a18b2e2a1e";
    const KEY1_SIGNED: [(&str, &str); 2] = [
        (
            "d7ad397f6ffa5d4f7f11e7217f241607dc30618c236d2c09c1b9ea8fdadee2e8",
            "ab1db64de7c40edbde6651c9b8ebdb804673db836e5d5c7fe15dcf9ed2725037
             eba714451ff69b0bb930b379e192e7cd5fa6e3c41c7fbd8303b799ab54a54621",
        ),
        (
            "b1139602c6ecc9e15e2f3f9c635a1afe737058bc15387479c1ea0d0b3d90e9e5",
            "e6e0414ebd3a656c35602af14ab20287dbf30d57af75c49a188ed4b42391f224
             2f54f277c606f4605e1ce9514947ffddf94c67a539804a4ed17f852288bdbe2e",
        ),
    ];
    const KEY1_DER_CIPHERTEXT: &str = "30818a0220466be2ef5c11782ec77864a0055417f407a5afc11d653c6bce
        69e417bb1d05b6022062b572e21ff0ddf5c726bd3f9ff2eae56e6294713a607e9b9525628965f62cc80420
        3c1b5713b5db2728eb7bf775e44f4689fc32668bdc564f52ea45b09e8df2a5f40422084a9d0cc2997092b7
        d3c404fce95956eb604d732b2307a8e5b8900ed6608ca5b197";
    const KEY1_PLAINTEXT: &[u8] = b"The floofy bunnies hop at midnight";

    const ORDER_MINUS_1: &str = "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54122";
    const ORDER_MINUS_2: &str = "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54121";
    const ORDER: &str = "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123";

    fn key1() -> (Vec<u8>, Vec<u8>) {
        (hex(KEY1_D), hex(KEY1_POINT))
    }

    #[test]
    fn public_point_of_the_openssl_test_key_matches_its_published_value() {
        let (d, point) = key1();
        assert_eq!(sm2_public_from_private(&d).unwrap().to_vec(), point);
        sm2_check_public(&point).unwrap();
    }

    #[test]
    fn the_curve_oid_is_sm2p256v1() {
        use ::der::Encode;
        let oid = ::der::asn1::ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");
        assert_eq!(oid.to_der().unwrap(), OID_SM2);
    }

    #[test]
    fn curve_constants_match_the_generator_of_the_sm2_crate() {
        let one = hex("0000000000000000000000000000000000000000000000000000000000000001");
        let g = sm2_public_from_private(&one).unwrap();
        assert_eq!(g[1..33], CURVE_GX);
        assert_eq!(g[33..], CURVE_GY);
    }

    #[test]
    fn openssl_published_signatures_verify_and_altered_ones_do_not() {
        let (_, point) = key1();
        for (e, rs) in KEY1_SIGNED {
            sm2_verify_digest(&point, &hex(e), &hex(rs)).unwrap();
            let mut bad = hex(rs);
            bad[40] ^= 0x80;
            assert_err!(sm2_verify_digest(&point, &hex(e), &bad), SignatureInvalid);
        }
    }

    #[test]
    fn openssl_published_der_ciphertext_decrypts_to_its_message() {
        let (d, _) = key1();
        let pt = sm2_decrypt_der(&d, &hex(KEY1_DER_CIPHERTEXT)).unwrap();
        assert_eq!(&pt[..], KEY1_PLAINTEXT);
    }

    #[test]
    fn openssl_published_ciphertext_rearranged_as_c1c3c2_decrypts_too() {
        // 30 81 8a | 02 20 x | 02 20 y | 04 20 C3 | 04 22 C2: all fields at fixed offsets.
        let der = hex(KEY1_DER_CIPHERTEXT);
        let (x, y, c3, c2) = (&der[5..37], &der[39..71], &der[73..105], &der[107..]);
        let raw = [&[0x04][..], x, y, c3, c2].concat();
        let (d, _) = key1();
        assert_eq!(&sm2_decrypt(&d, &raw).unwrap()[..], KEY1_PLAINTEXT);
    }

    #[test]
    fn signatures_made_by_the_sm2_crate_with_its_own_z_a_verify_here() {
        // The crate computes Z_A itself from a str identifier; agreement shows our curve
        // constants and Z_A layout are right.
        let (d, point) = key1();
        let key = SigningKey::from_slice("1234567812345678", &d).unwrap();
        let sig: Signature = key.sign(b"message digest");
        sm2_verify_sm3(&point, SM2_DEFAULT_ID, b"message digest", &sig.to_bytes()).unwrap();
    }

    #[test]
    fn sign_then_verify_round_trips_and_binds_message_identifier_and_key() {
        let (d, point) = sm2_generate().unwrap();
        let sig = sm2_sign_sm3(&d[..], SM2_DEFAULT_ID, b"hello").unwrap();
        sm2_verify_sm3(&point, SM2_DEFAULT_ID, b"hello", &sig).unwrap();
        let wrong = |r: Result<()>| matches!(r, Err(Error::SignatureInvalid));
        assert!(wrong(sm2_verify_sm3(
            &point,
            SM2_DEFAULT_ID,
            b"hellp",
            &sig
        )));
        assert!(wrong(sm2_verify_sm3(
            &point,
            b"1234567812345679",
            b"hello",
            &sig
        )));
        let (_, other) = sm2_generate().unwrap();
        assert!(wrong(sm2_verify_sm3(
            &other,
            SM2_DEFAULT_ID,
            b"hello",
            &sig
        )));
        for i in [0, 31, 32, 63] {
            let mut bad = sig;
            bad[i] ^= 0x04;
            assert!(wrong(sm2_verify_sm3(
                &point,
                SM2_DEFAULT_ID,
                b"hello",
                &bad
            )));
        }
    }

    #[test]
    fn signatures_with_r_or_s_zero_or_not_below_n_are_invalid() {
        let (_, point) = key1();
        let (e, rs) = KEY1_SIGNED[0];
        let rs = hex(rs);
        for bad_half in [[0u8; 32].to_vec(), hex(ORDER), vec![0xff; 32]] {
            for at in [0, 32] {
                let mut bad = rs.clone();
                bad[at..at + 32].copy_from_slice(&bad_half);
                assert_err!(sm2_verify_digest(&point, &hex(e), &bad), SignatureInvalid);
            }
        }
    }

    #[test]
    fn signatures_of_the_wrong_length_are_refused() {
        let (_, point) = key1();
        for len in [0, 63, 65, 72] {
            assert_err!(
                sm2_verify_sm3(&point, SM2_DEFAULT_ID, b"m", &vec![1u8; len]),
                SignatureLenRange
            );
        }
    }

    #[test]
    fn multi_part_hashing_gives_the_same_signature_input_as_one_shot() {
        let (d, point) = sm2_generate().unwrap();
        let mut h = sm2_sm3_hasher(&point, b"alice").unwrap();
        h.update(b"part one, ");
        h.update(b"part two");
        let sig = sm2_sign_digest(&d[..], &h.finalize()).unwrap();
        sm2_verify_sm3(&point, b"alice", b"part one, part two", &sig).unwrap();
    }

    #[test]
    fn identifiers_up_to_8191_bytes_are_accepted_and_longer_ones_refused() {
        let (d, point) = sm2_generate().unwrap();
        let id = vec![0xa5u8; 8191];
        let sig = sm2_sign_sm3(&d[..], &id, b"m").unwrap();
        sm2_verify_sm3(&point, &id, b"m", &sig).unwrap();
        let too_long = vec![0u8; 8192];
        assert_err!(sm2_sign_sm3(&d[..], &too_long, b"m"), MechanismParamInvalid);
        assert_err!(
            sm2_verify_sm3(&point, &too_long, b"m", &sig),
            MechanismParamInvalid
        );
        // An empty identifier is allowed (ENTL = 0).
        let sig = sm2_sign_sm3(&d[..], b"", b"m").unwrap();
        sm2_verify_sm3(&point, b"", b"m", &sig).unwrap();
    }

    #[test]
    fn digests_of_the_wrong_length_are_refused() {
        let (d, point) = key1();
        assert_err!(sm2_sign_digest(&d, &[0u8; 31]), DataLenRange);
        assert_err!(
            sm2_verify_digest(&point, &[0u8; 33], &[1u8; 64]),
            DataLenRange
        );
    }

    #[test]
    fn private_scalars_must_be_32_bytes_in_one_to_n_minus_two() {
        for len in [0, 31, 33, 64] {
            assert_err!(sm2_public_from_private(&vec![1u8; len]), KeySizeRange);
            assert_err!(sm2_sign_sm3(&vec![1u8; len], b"", b"m"), KeySizeRange);
            assert_err!(sm2_decrypt(&vec![1u8; len], &[4u8; 120]), KeySizeRange);
        }
        for bad in [
            vec![0u8; 32],
            hex(ORDER_MINUS_1),
            hex(ORDER),
            vec![0xff; 32],
        ] {
            assert_err!(sm2_public_from_private(&bad), AttributeValueInvalid);
            assert_err!(sm2_sign_sm3(&bad, b"", b"m"), AttributeValueInvalid);
            assert_err!(sm2_decrypt_der(&bad, &[0x30, 0]), AttributeValueInvalid);
        }
        let d = hex(ORDER_MINUS_2);
        let point = sm2_public_from_private(&d).unwrap();
        let sig = sm2_sign_sm3(&d, b"", b"m").unwrap();
        sm2_verify_sm3(&point, b"", b"m", &sig).unwrap();
    }

    #[test]
    fn public_points_must_be_uncompressed_and_on_the_curve() {
        let (_, point) = key1();
        assert_err!(sm2_check_public(&point[..33]), KeySizeRange);
        assert_err!(
            sm2_check_public(&[point.clone(), vec![0]].concat()),
            KeySizeRange
        );
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        assert_err!(sm2_check_public(&off_curve), AttributeValueInvalid);
        let mut hybrid = point.clone();
        hybrid[0] = 0x06;
        assert_err!(sm2_check_public(&hybrid), AttributeValueInvalid);
        assert_err!(sm2_check_public(&[0u8; 65]), AttributeValueInvalid);
        assert_err!(sm2_encrypt(&off_curve, b"x"), AttributeValueInvalid);
        assert_err!(
            sm2_verify_sm3(&off_curve, b"", b"m", &[1u8; 64]),
            AttributeValueInvalid
        );
    }

    #[test]
    fn generated_keys_are_consistent_and_distinct() {
        let (d1, p1) = sm2_generate().unwrap();
        let (d2, p2) = sm2_generate().unwrap();
        assert_ne!(*d1, *d2);
        assert_eq!(sm2_public_from_private(&d1[..]).unwrap(), p1);
        assert_eq!(sm2_public_from_private(&d2[..]).unwrap(), p2);
    }

    #[test]
    fn encryption_round_trips_in_both_layouts() {
        let (d, point) = sm2_generate().unwrap();
        for len in [1usize, 31, 32, 33, 100] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let raw = sm2_encrypt(&point, &msg).unwrap();
            assert_eq!(raw.len(), 65 + 32 + len);
            assert_eq!(raw[0], 0x04);
            assert_eq!(*sm2_decrypt(&d[..], &raw).unwrap(), msg);
            let der = sm2_encrypt_der(&point, &msg).unwrap();
            assert_eq!(der[0], 0x30);
            assert_eq!(*sm2_decrypt_der(&d[..], &der).unwrap(), msg);
        }
    }

    #[test]
    fn empty_plaintext_is_refused() {
        let (_, point) = key1();
        assert_err!(sm2_encrypt(&point, b""), DataLenRange);
        assert_err!(sm2_encrypt_der(&point, b""), DataLenRange);
    }

    #[test]
    fn tampered_or_truncated_sm2_ciphertexts_are_refused() {
        let (d, point) = sm2_generate().unwrap();
        let good = sm2_encrypt(&point, b"secret material").unwrap();
        // C1's y, C3, and C2.
        for i in [64, 65, 96, 97, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert_err!(sm2_decrypt(&d[..], &bad), EncryptedDataInvalid, "byte {i}");
        }
        let mut compressed = good.clone();
        compressed[0] = 0x02;
        assert_err!(sm2_decrypt(&d[..], &compressed), EncryptedDataInvalid);
        for len in [0, 65, 96, 97] {
            assert_err!(sm2_decrypt(&d[..], &good[..len]), EncryptedDataLenRange);
        }
        let (other, _) = sm2_generate().unwrap();
        assert_err!(sm2_decrypt(&other[..], &good), EncryptedDataInvalid);

        let der = hex(KEY1_DER_CIPHERTEXT);
        let (d1, _) = key1();
        let last = der.len() - 1;
        for i in [10, 40, 80, last] {
            let mut bad = der.clone();
            bad[i] ^= 0x01;
            assert_err!(sm2_decrypt_der(&d1, &bad), EncryptedDataInvalid, "byte {i}");
        }
        assert_err!(sm2_decrypt_der(&d1, &der[..last]), EncryptedDataInvalid);
        let trailing = [der.clone(), vec![0]].concat();
        assert_err!(sm2_decrypt_der(&d1, &trailing), EncryptedDataInvalid);
    }
}

//! RSA keys and operations: PKCS#1 v1.5 and PSS signatures with any SHA hash, PKCS#1
//! v1.5 and OAEP encryption, key generation, and the RSAPrivateKey and RSAPublicKey
//! encodings (RustCrypto's `pkcs1` types, strict DER).
//!
//! aws-lc does generation and the constant-time modular exponentiation (`raw`); the
//! paddings are ours (`padding`), so every hash and label PKCS#11 allows works.
//! This module must not know about PKCS#11.

mod implicit;
mod keygen;
mod padding;
pub(crate) use implicit::KeyLen;
#[allow(unsafe_code)] // the raw RSA primitive; see raw.rs
mod raw;

use aws_lc_rs::encoding::AsDer;
use der::asn1::UintRef;
use der::Decode;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::asn1;
use super::hash::HashAlg;
use super::pkcs8::{self, KeyAlgorithm};
use crate::error::{Error, Result};
use raw::RawRsa;

/// The integers of an RSA private key, big-endian without leading zeros.
#[derive(Clone, Default)]
pub struct RsaComponents {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Zeroizing<Vec<u8>>,
    pub p: Zeroizing<Vec<u8>>,
    pub q: Zeroizing<Vec<u8>>,
    pub dp: Zeroizing<Vec<u8>>,
    pub dq: Zeroizing<Vec<u8>>,
    pub qinv: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RsaComponents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaComponents({} bits)", bit_len(&self.n))
    }
}

/// Bit length of a big-endian unsigned integer.
pub(crate) fn bit_len(be: &[u8]) -> usize {
    match be.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
    }
}

fn strip(be: &[u8]) -> &[u8] {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    &be[start..]
}

/// A big-endian unsigned integer as a DER INTEGER (zero, even given as no bytes, is
/// `02 01 00`).
fn uint(be: &[u8]) -> Result<UintRef<'_>> {
    let digits = match strip(be) {
        [] => &[0u8][..],
        digits => digits,
    };
    UintRef::new(digits).map_err(|_| Error::Internal("RSA integer length"))
}

/// A decoded INTEGER as the module keeps it: big-endian without leading zeros (so zero
/// is no bytes).
fn magnitude(v: UintRef<'_>) -> &[u8] {
    strip(v.as_bytes())
}

impl RsaComponents {
    /// The DER RSAPrivateKey (PKCS#1 §A.1.2), two-prime.
    pub(crate) fn to_pkcs1_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        asn1::encode_secret(&pkcs1::RsaPrivateKeyRef {
            modulus: uint(&self.n)?,
            public_exponent: uint(&self.e)?,
            private_exponent: uint(&self.d)?,
            prime1: uint(&self.p)?,
            prime2: uint(&self.q)?,
            exponent1: uint(&self.dp)?,
            exponent2: uint(&self.dq)?,
            coefficient: uint(&self.qinv)?,
            other_prime_infos: None,
        })
    }

    /// Decodes a DER RSAPrivateKey: two-prime only (version 0; `pkcs1` is built without
    /// multi-prime support, so version 1 or otherPrimeInfos is refused). The integers
    /// are borrowed from `input` until copied into the zeroizing fields.
    pub fn from_pkcs1_der(input: &[u8]) -> Result<RsaComponents> {
        let key = pkcs1::RsaPrivateKeyRef::from_der(input).map_err(|_| Error::WrappedKeyInvalid)?;
        if key.other_prime_infos.is_some() {
            return Err(Error::WrappedKeyInvalid);
        }
        let secret = |v: UintRef<'_>| Zeroizing::new(magnitude(v).to_vec());
        Ok(RsaComponents {
            n: magnitude(key.modulus).to_vec(),
            e: magnitude(key.public_exponent).to_vec(),
            d: secret(key.private_exponent),
            p: secret(key.prime1),
            q: secret(key.prime2),
            dp: secret(key.exponent1),
            dq: secret(key.exponent2),
            qinv: secret(key.coefficient),
        })
    }

    /// The PKCS#8 PrivateKeyInfo, for `C_WrapKey`.
    pub(crate) fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>> {
        pkcs8::encode_private_key_info(&KeyAlgorithm::Rsa, &self.to_pkcs1_der()?)
    }

    /// A new key pair whose modulus has exactly `bits` bits, public exponent 65537:
    /// aws-lc-rs's generator for 2048, 3072 and 4096, `keygen` for any other length from
    /// 1024 to 16384 (the policy minimum is the mechanism's business).
    pub fn generate(bits: usize) -> Result<RsaComponents> {
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            1024..=16384 => return keygen::generate(bits),
            _ => return Err(Error::KeySizeRange),
        };
        let pair = KeyPair::generate(size).map_err(|_| Error::Internal("RSA key generation"))?;
        let doc = pair
            .as_der()
            .map_err(|_| Error::Internal("RSA key encoding"))?;
        let info = pkcs8::decode_private_key_info(doc.as_ref())
            .map_err(|_| Error::Internal("aws-lc PKCS#8 output"))?;
        RsaComponents::from_pkcs1_der(info.private_key)
    }

    /// The DER RSAPublicKey (PKCS#1 §A.1.1).
    pub fn public_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>> {
        asn1::encode(&pkcs1::RsaPublicKeyRef {
            modulus: uint(n)?,
            public_exponent: uint(e)?,
        })
    }

    /// The modulus and public exponent of a DER RSAPublicKey (big-endian, no leading
    /// zeros); `DataInvalid` if it is not exactly one.
    pub fn from_public_der(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = pkcs1::RsaPublicKeyRef::from_der(input).map_err(|_| Error::DataInvalid)?;
        Ok((
            magnitude(key.modulus).to_vec(),
            magnitude(key.public_exponent).to_vec(),
        ))
    }
}

/// The key of implicit rejection: SHA-256 of the private exponent as a `k`-byte
/// big-endian string (draft-irtf-cfrg-rsa-guidance §7.2, I2OSP(d, k)).
fn rejection_key(d: &[u8], k: usize) -> Zeroizing<Vec<u8>> {
    let d = strip(d);
    let mut padded = Zeroizing::new(vec![0u8; k.saturating_sub(d.len())]);
    padded.extend_from_slice(d);
    Zeroizing::new(HashAlg::Sha256.digest(&padded))
}

/// An RSA private key ready for use.
#[derive(Debug)]
pub struct RsaPrivateKey {
    raw: RawRsa,
    bits: usize,
    /// The key of implicit rejection: SHA-256 of I2OSP(d, k) (`rejection_key`).
    kdk: Zeroizing<Vec<u8>>,
}

/// An RSA public key ready for use.
#[derive(Debug)]
pub struct RsaPublicKey {
    raw: RawRsa,
    bits: usize,
}

impl RsaPrivateKey {
    pub fn new(c: &RsaComponents) -> Result<RsaPrivateKey> {
        let raw = RawRsa::private_from_pkcs1(&c.to_pkcs1_der()?)?;
        Ok(RsaPrivateKey {
            kdk: rejection_key(&c.d, raw.size()),
            raw,
            bits: bit_len(&c.n),
        })
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    pub fn size(&self) -> usize {
        self.raw.size()
    }

    /// Whether this key takes a PSS salt of `salt_len` bytes with `hash` (RFC 8017
    /// §9.1.1): asked at `Init`, so that a salt too long for the key is refused there.
    pub fn takes_pss_salt(&self, hash: HashAlg, salt_len: usize) -> bool {
        padding::pss_salt_fits(self.bits, hash, salt_len)
    }

    fn left_pad(&self, em: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; self.size().saturating_sub(em.len())];
        out.extend_from_slice(em);
        out
    }

    /// PKCS#1 v1.5 signature over a DER DigestInfo (or any short string, for TLS).
    pub(crate) fn sign_pkcs1(&self, digest_info: &[u8]) -> Result<Vec<u8>> {
        let em = padding::emsa_pkcs1_v15(digest_info, self.size())?;
        Ok(self.raw.private_op(&em, Error::DataLenRange)?.to_vec())
    }

    /// PSS signature over a message hash.
    pub(crate) fn sign_pss(
        &self,
        m_hash: &[u8],
        hash: HashAlg,
        salt_len: usize,
    ) -> Result<Vec<u8>> {
        let em = padding::emsa_pss_encode(m_hash, self.bits, hash, salt_len)?;
        Ok(self
            .raw
            .private_op(&self.left_pad(&em), Error::DataLenRange)?
            .to_vec())
    }

    fn decrypt_raw(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if ciphertext.len() != self.size() {
            return Err(Error::EncryptedDataLenRange);
        }
        self.raw.private_op(ciphertext, Error::EncryptedDataInvalid)
    }

    /// RSAES-PKCS1-v1_5 decryption with implicit rejection (`implicit`): a bad padding
    /// gives a synthetic message, never an error, so no padding oracle exists. Only a
    /// ciphertext of the wrong length or not below the modulus (public facts) is refused.
    pub(crate) fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let em = self.decrypt_raw(ciphertext)?;
        Ok(implicit::decode(&em, &self.kdk, ciphertext))
    }

    /// PKCS#1 v1.5 decryption of a wrapped key of a length `want` allows, with implicit
    /// rejection (`implicit::decode_key`): a bad padding, or a message of another length,
    /// gives a useless key of an allowed length, never a distinct error.
    pub(crate) fn unwrap_pkcs1(
        &self,
        ciphertext: &[u8],
        want: KeyLen<'_>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        Ok(self.unwrap_pkcs1_flagged(ciphertext, want)?.0)
    }

    /// `unwrap_pkcs1`, also telling (as a constant-time flag) whether the block was a
    /// real key of an allowed length. The KMS import uses the flag at the very end,
    /// after the same work as for any other material, so that a bad block is refused
    /// exactly like wrong material and never bound to a key.
    pub(crate) fn unwrap_pkcs1_flagged(
        &self,
        ciphertext: &[u8],
        want: KeyLen<'_>,
    ) -> Result<(Zeroizing<Vec<u8>>, subtle::Choice)> {
        if ciphertext.len() != self.size() {
            return Err(Error::WrappedKeyLenRange);
        }
        // No block of this key carries more than k - 11 bytes: a longer key asked for is
        // the caller's own length, refused before anything is decrypted (it tells
        // nothing of the block).
        let most = self.size().saturating_sub(11);
        let too_long = match want {
            KeyLen::Exact(len) => len > most,
            KeyLen::OneOf(lengths) => lengths.iter().any(|len| *len > most),
            KeyLen::Any => false,
        };
        if too_long {
            return Err(Error::TemplateInconsistent);
        }
        // A ciphertext not below the modulus is public knowledge, not a padding oracle.
        let em = self.raw.private_op(ciphertext, Error::WrappedKeyInvalid)?;
        Ok(implicit::decode_key(&em, &self.kdk, ciphertext, want))
    }

    /// Raw RSA (RSADP, `CKM_RSA_X_509` decryption): the ciphertext must be `size()`
    /// bytes and below the modulus; the result is `size()` bytes, leading zeros kept.
    pub(crate) fn decrypt_x509(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypt_raw(ciphertext)
    }

    /// Raw RSA signature (RSASP1, `CKM_RSA_X_509`): `data`, at most `size()` bytes, is
    /// left-padded with zeros to `size()` bytes and must then be below the modulus.
    pub(crate) fn sign_x509(&self, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() > self.size() {
            return Err(Error::DataLenRange);
        }
        let input = Zeroizing::new(self.left_pad(data));
        Ok(self.raw.private_op(&input, Error::DataInvalid)?.to_vec())
    }

    pub(crate) fn decrypt_oaep(
        &self,
        ciphertext: &[u8],
        hash: HashAlg,
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        padding::eme_oaep_decode(&self.decrypt_raw(ciphertext)?, label, hash)
    }
}

impl RsaPublicKey {
    pub fn new(n: &[u8], e: &[u8]) -> Result<RsaPublicKey> {
        let raw = RawRsa::public_from_pkcs1(&RsaComponents::public_der(n, e)?)?;
        Ok(RsaPublicKey {
            raw,
            bits: bit_len(n),
        })
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    pub fn size(&self) -> usize {
        self.raw.size()
    }

    fn open_signature(&self, signature: &[u8]) -> Result<Vec<u8>> {
        if signature.len() != self.size() {
            return Err(Error::SignatureLenRange);
        }
        self.raw.public_op(signature, Error::SignatureInvalid)
    }

    pub(crate) fn verify_pkcs1(&self, digest_info: &[u8], signature: &[u8]) -> Result<()> {
        let em = self.open_signature(signature)?;
        let expected = padding::emsa_pkcs1_v15(digest_info, self.size())?;
        if bool::from(em.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }

    pub(crate) fn verify_pss(
        &self,
        m_hash: &[u8],
        signature: &[u8],
        hash: HashAlg,
        salt_len: usize,
    ) -> Result<()> {
        let em = self.open_signature(signature)?;
        if padding::emsa_pss_verify(m_hash, &em, self.bits, hash, salt_len) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }

    /// `data` left-padded with zeros to the modulus length (at most that long).
    fn left_pad(&self, data: &[u8], too_long: Error) -> Result<Vec<u8>> {
        if data.len() > self.size() {
            return Err(too_long);
        }
        let mut out = vec![0u8; self.size() - data.len()];
        out.extend_from_slice(data);
        Ok(out)
    }

    /// Raw RSA encryption (RSAEP, `CKM_RSA_X_509`): `message`, at most `size()` bytes, is
    /// left-padded with zeros and must then be below the modulus; `size()` bytes out.
    pub(crate) fn encrypt_x509(&self, message: &[u8]) -> Result<Vec<u8>> {
        let input = self.left_pad(message, Error::DataLenRange)?;
        self.raw.public_op(&input, Error::DataInvalid)
    }

    /// Raw RSA verification (RSAVP1, `CKM_RSA_X_509`): the signature opens to `data`
    /// left-padded with zeros.
    pub(crate) fn verify_x509(&self, data: &[u8], signature: &[u8]) -> Result<()> {
        let expected = self.left_pad(data, Error::DataLenRange)?;
        let opened = self.open_signature(signature)?;
        if bool::from(opened.ct_eq(&expected)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }

    pub fn encrypt_pkcs1(&self, message: &[u8]) -> Result<Vec<u8>> {
        let em = padding::eme_pkcs1_v15_encode(message, self.size())?;
        self.raw.public_op(&em, Error::DataLenRange)
    }

    pub fn encrypt_oaep(&self, message: &[u8], hash: HashAlg, label: &[u8]) -> Result<Vec<u8>> {
        let em = padding::eme_oaep_encode(message, label, hash, self.size())?;
        self.raw.public_op(&em, Error::DataLenRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn key() -> &'static RsaComponents {
        static KEY: OnceLock<RsaComponents> = OnceLock::new();
        KEY.get_or_init(|| RsaComponents::generate(2048).unwrap())
    }

    #[test]
    fn integers_round_trip_with_sign_bytes_and_zero_as_no_bytes() {
        for v in [
            &[0x01u8][..],
            &[0x80],
            &[0x00, 0x00, 0x7f],
            &[],
            &[0x00],
            &[0xff, 0x00],
        ] {
            let der = RsaComponents::public_der(v, &[1, 0, 1]).unwrap();
            let (n, e) = RsaComponents::from_public_der(&der).unwrap();
            assert_eq!(n, strip(v), "{v:?}");
            assert_eq!(e, [1, 0, 1]);
        }
        assert_eq!(
            RsaComponents::public_der(&[0x80], &[]).unwrap(),
            [0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x00]
        );
        // An all-zero key still encodes (aws-lc then refuses it) and reads back empty.
        let zero = RsaComponents::default();
        let der = zero.to_pkcs1_der().unwrap();
        assert_eq!(der.len(), 2 + 3 * 9);
        assert!(RsaComponents::from_pkcs1_der(&der).unwrap().d.is_empty());
        assert!(RsaPrivateKey::new(&zero).is_err());
    }

    #[test]
    fn malformed_rsa_keys_are_refused() {
        let int = |v: &[u8]| [&[0x02, v.len() as u8][..], v].concat();
        let seq = |parts: &[Vec<u8>]| {
            let body = parts.concat();
            [&[0x30, body.len() as u8][..], &body].concat()
        };
        let one = int(&[1]);
        let public_cases = [
            seq(&[int(&[0x00, 0x01]), one.clone()]), // non-minimal integer
            seq(&[int(&[0x80]), one.clone()]),       // negative
            seq(&[int(&[]), one.clone()]),           // empty integer
            seq(std::slice::from_ref(&one)),         // missing exponent
            seq(&[one.clone(), one.clone(), one.clone()]), // extra element
            [seq(&[one.clone(), one.clone()]), vec![0]].concat(), // trailing byte
        ];
        for c in &public_cases {
            assert!(
                matches!(RsaComponents::from_public_der(c), Err(Error::DataInvalid)),
                "{c:02x?}"
            );
        }
        let eight = vec![one.clone(); 8];
        let private_cases = [
            seq(&[&[int(&[0])][..], &eight].concat()), // the well-formed one
            seq(&[&[int(&[1])][..], &eight].concat()), // multi-prime version, no primes
            seq(&[&[int(&[2])][..], &eight].concat()), // unknown version
            // Multi-prime with one OtherPrimeInfo: refused (two-prime only).
            seq(&[
                &[int(&[1])][..],
                &eight,
                &[seq(&[seq(&[one.clone(), one.clone(), one.clone()])])],
            ]
            .concat()),
            seq(&[&[int(&[0])][..], &eight[..7]].concat()), // missing coefficient
            seq(&[&[int(&[0])][..], &eight, std::slice::from_ref(&one)].concat()), // extra element
        ];
        assert!(RsaComponents::from_pkcs1_der(&private_cases[0]).is_ok());
        for c in &private_cases[1..] {
            assert!(
                matches!(
                    RsaComponents::from_pkcs1_der(c),
                    Err(Error::WrappedKeyInvalid)
                ),
                "{c:02x?}"
            );
        }
    }

    #[test]
    fn generated_key_has_the_requested_size_and_round_trips_der() {
        let c = key();
        assert_eq!(bit_len(&c.n), 2048);
        assert_eq!(c.e, vec![1, 0, 1]);
        let back = RsaComponents::from_pkcs1_der(&c.to_pkcs1_der().unwrap()).unwrap();
        assert_eq!(back.n, c.n);
        assert_eq!(*back.qinv, *c.qinv);
    }

    #[test]
    fn every_hash_signs_and_verifies_with_pkcs1_and_pss() {
        let c = key();
        let private = RsaPrivateKey::new(c).unwrap();
        let public = RsaPublicKey::new(&c.n, &c.e).unwrap();
        for h in HashAlg::ALL {
            let m = h.digest(b"data");
            let di = [h.digest_info_prefix(), &m].concat();
            let sig = private.sign_pkcs1(&di).unwrap();
            public.verify_pkcs1(&di, &sig).unwrap();
            let pss = private.sign_pss(&m, h, h.output_len()).unwrap();
            public.verify_pss(&m, &pss, h, h.output_len()).unwrap();
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(matches!(
                public.verify_pkcs1(&di, &bad),
                Err(Error::SignatureInvalid)
            ));
        }
    }

    #[test]
    fn aws_lc_verifies_our_pkcs1_sha256_signature() {
        use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
        let c = key();
        let private = RsaPrivateKey::new(c).unwrap();
        let m = HashAlg::Sha256.digest(b"interop");
        let sig = private
            .sign_pkcs1(&[HashAlg::Sha256.digest_info_prefix(), &m].concat())
            .unwrap();
        let public = RsaComponents::public_der(&c.n, &c.e).unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(b"interop", &sig)
            .unwrap();
    }

    #[test]
    fn encryption_round_trips_and_wrong_length_ciphertext_is_refused() {
        let c = key();
        let private = RsaPrivateKey::new(c).unwrap();
        let public = RsaPublicKey::new(&c.n, &c.e).unwrap();
        let ct = public.encrypt_pkcs1(b"hello").unwrap();
        assert_eq!(&private.decrypt_pkcs1(&ct).unwrap()[..], b"hello");
        let ct = public
            .encrypt_oaep(b"hello", HashAlg::Sha256, b"l")
            .unwrap();
        assert_eq!(
            &private.decrypt_oaep(&ct, HashAlg::Sha256, b"l").unwrap()[..],
            b"hello"
        );
        assert!(matches!(
            private.decrypt_pkcs1(&ct[1..]),
            Err(Error::EncryptedDataLenRange)
        ));
    }

    #[test]
    fn raw_rsa_round_trips_and_left_pads() {
        let c = key();
        let private = RsaPrivateKey::new(c).unwrap();
        let public = RsaPublicKey::new(&c.n, &c.e).unwrap();
        let ct = public.encrypt_x509(b"\x00\x00raw").unwrap();
        assert_eq!(ct.len(), 256);
        let pt = private.decrypt_x509(&ct).unwrap();
        assert_eq!(pt.len(), 256);
        assert_eq!(&pt[253..], b"raw");
        assert!(pt[..253].iter().all(|b| *b == 0));
        let sig = private.sign_x509(b"raw").unwrap();
        public.verify_x509(b"raw", &sig).unwrap();
        public.verify_x509(b"\x00raw", &sig).unwrap();
        assert!(matches!(
            public.verify_x509(b"raw!", &sig),
            Err(Error::SignatureInvalid)
        ));
        // Too long, or not below the modulus.
        assert!(matches!(
            private.sign_x509(&[1; 257]),
            Err(Error::DataLenRange)
        ));
        assert!(matches!(
            private.sign_x509(&[0xff; 256]),
            Err(Error::DataInvalid)
        ));
        assert!(matches!(
            public.encrypt_x509(&[0xff; 256]),
            Err(Error::DataInvalid)
        ));
        assert!(matches!(
            private.decrypt_x509(&[0xff; 256]),
            Err(Error::EncryptedDataInvalid)
        ));
        assert!(matches!(
            private.decrypt_x509(&ct[1..]),
            Err(Error::EncryptedDataLenRange)
        ));
    }

    #[test]
    fn inconsistent_components_are_refused() {
        let mut c = key().clone();
        c.p = Zeroizing::new(vec![7; 128]);
        assert!(RsaPrivateKey::new(&c).is_err());
    }
}

//! ECDSA and ECDH on P-256, P-384, P-521 and secp256k1 (aws-lc-rs; signing through
//! aws-lc's own `ECDSA_do_sign` in `ecdsa_sign`; ECDH on secp256k1 through RustCrypto
//! `k256`, which aws-lc-rs lacks), key generation, and the curve OIDs and point
//! encodings PKCS#11 uses. SM2 lives in `sm`.
//!
//! Signatures are the fixed-width r || s of PKCS#11. Signing takes a message hash of
//! any length, brought to the curve's digest length the way ECDSA defines it (leftmost
//! bits; shorter values are the same integer left-padded). No PKCS#11 here.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use der::asn1::ObjectIdentifier;
use der::Decode;
use sec1::{EcParameters, EcPrivateKey as Sec1Encoding};
use zeroize::Zeroizing;

use super::asn1;
use super::ecdsa_sign::EcdsaSigningKey;
use crate::error::{Error, Result};

// The named curves' OIDs as DER elements (tag and length included): `CKA_EC_PARAMS`.
pub const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
pub const OID_SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    Secp256k1,
}

impl Curve {
    pub const ALL: [Curve; 4] = [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1];

    /// The curve named by a DER OID element (`CKA_EC_PARAMS`).
    pub fn from_oid(params: &[u8]) -> Result<Curve> {
        Curve::ALL
            .into_iter()
            .find(|c| c.oid() == params)
            .ok_or(Error::CurveNotSupported)
    }

    pub fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
            Curve::Secp256k1 => OID_SECP256K1,
        }
    }

    /// Bytes of a field element (and of the private scalar).
    pub(crate) fn field_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    pub fn bits(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Curve::Secp256k1 => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
        }
    }

    /// aws-lc's identifier of the curve.
    fn nid(self) -> i32 {
        match self {
            Curve::P256 => aws_lc_sys::NID_X9_62_prime256v1,
            Curve::P384 => aws_lc_sys::NID_secp384r1,
            Curve::P521 => aws_lc_sys::NID_secp521r1,
            Curve::Secp256k1 => aws_lc_sys::NID_secp256k1,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            Curve::Secp256k1 => &signature::ECDSA_P256K1_SHA256_FIXED,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            Curve::P256 | Curve::Secp256k1 => &digest::SHA256,
            Curve::P384 => &digest::SHA384,
            Curve::P521 => &digest::SHA512,
        }
    }

    /// The hash brought to the length aws-lc expects for this curve, as ECDSA reads it.
    /// Nothing is allocated: a signature's hash is taken as it is, or padded on the stack.
    fn digest_of(self, hash: &[u8]) -> Result<Digest> {
        let alg = self.digest_alg();
        let len = alg.output_len();
        let import = |value: &[u8]| {
            Digest::import_less_safe(value, alg).map_err(|_| Error::Internal("digest import"))
        };
        if hash.len() >= len {
            // Leftmost bits. P-521's order has 521 bits: more than 64 bytes of input
            // would need a bit shift that aws-lc's digest form cannot express.
            if self == Curve::P521 && hash.len() > len {
                return Err(Error::DataLenRange);
            }
            return import(&hash[..len]);
        }
        // A shorter value is the same integer, left-padded with zeros.
        let mut padded = [0u8; digest::MAX_OUTPUT_LEN];
        padded[len - hash.len()..len].copy_from_slice(hash);
        import(&padded[..len])
    }
}

/// The SEC1 ECPrivateKey DER of scalar `d` on `curve` (RFC 5915), without public key.
pub(crate) fn sec1_der(curve: Curve, d: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let len = curve.field_len();
    let start = d.iter().position(|b| *b != 0).unwrap_or(d.len());
    let d = &d[start..];
    if d.is_empty() || d.len() > len {
        return Err(Error::AttributeValueInvalid);
    }
    let mut scalar = Zeroizing::new(vec![0u8; len - d.len()]);
    scalar.extend_from_slice(d);
    let named =
        ObjectIdentifier::from_der(curve.oid()).map_err(|_| Error::Internal("curve OID"))?;
    asn1::encode_secret(&Sec1Encoding {
        private_key: &scalar,
        parameters: Some(EcParameters::NamedCurve(named)),
        public_key: None,
    })
}

/// What a SEC1 ECPrivateKey holds that the module uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Sec1Key {
    /// The private scalar as given.
    pub d: Zeroizing<Vec<u8>>,
    /// The `[0]` named curve as a DER element (`CKA_EC_PARAMS`), if present.
    pub curve_oid: Option<Vec<u8>>,
}

/// Reads a SEC1 ECPrivateKey (RFC 5915: version 1, the scalar, optionally `[0]` a named
/// curve and `[1]` the public key; strict DER). The scalar is borrowed from `input` until
/// copied into the zeroizing buffer.
pub fn decode_sec1(input: &[u8]) -> Result<Sec1Key> {
    let key = Sec1Encoding::from_der(input).map_err(|_| Error::WrappedKeyInvalid)?;
    let curve_oid = key
        .parameters
        .and_then(EcParameters::named_curve)
        .map(|oid| asn1::encode(&oid))
        .transpose()?;
    Ok(Sec1Key {
        d: Zeroizing::new(key.private_key.to_vec()),
        curve_oid,
    })
}

/// Reads `d` from a SEC1 ECPrivateKey (as found inside PKCS#8).
pub fn scalar_from_sec1(input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    Ok(decode_sec1(input)?.d)
}

/// An EC private key ready for signing and key agreement.
#[derive(Debug)]
pub struct EcPrivateKey {
    curve: Curve,
    signing: EcdsaSigningKey,
    public: Vec<u8>,
    scalar: Zeroizing<Vec<u8>>,
}

impl EcPrivateKey {
    /// The key with scalar `d` (big-endian) on `curve`; checks 0 < d < n.
    pub fn new(curve: Curve, d: &[u8]) -> Result<EcPrivateKey> {
        let der = sec1_der(curve, d)?;
        let signing = EcdsaSigningKey::from_sec1_der(&der, curve.nid(), curve.field_len())?;
        let public = signing.public_point()?;
        let mut scalar = Zeroizing::new(vec![0u8; curve.field_len()]);
        let start = d.iter().position(|b| *b != 0).unwrap_or(d.len());
        let off = curve.field_len() - (d.len() - start);
        scalar[off..].copy_from_slice(&d[start..]);
        Ok(EcPrivateKey {
            curve,
            signing,
            public,
            scalar,
        })
    }

    /// A new random key: (scalar, uncompressed public point).
    pub fn generate(curve: Curve) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        use aws_lc_rs::encoding::AsBigEndian;
        let pair = EcdsaKeyPair::generate(curve.signing())
            .map_err(|_| Error::Internal("EC key generation"))?;
        let d = pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| Error::Internal("EC key encoding"))?;
        Ok((
            Zeroizing::new(d.as_ref().to_vec()),
            pair.public_key().as_ref().to_vec(),
        ))
    }

    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The uncompressed public point `04 || x || y`.
    pub fn public_point(&self) -> Vec<u8> {
        self.public.clone()
    }

    /// ECDSA over a message hash; r || s.
    pub(crate) fn sign_hash(&self, hash: &[u8]) -> Result<Vec<u8>> {
        let digest = self.curve.digest_of(hash)?;
        let mut sig = vec![0u8; 2 * self.curve.field_len()];
        self.signing.sign_into(digest.as_ref(), &mut sig)?;
        Ok(sig)
    }

    /// The ECDH shared secret (the x coordinate) with `peer`, an uncompressed point.
    pub fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        use aws_lc_rs::agreement;
        let alg = match self.curve {
            Curve::P256 => &agreement::ECDH_P256,
            Curve::P384 => &agreement::ECDH_P384,
            Curve::P521 => &agreement::ECDH_P521,
            Curve::Secp256k1 => return self.agree_secp256k1(peer),
        };
        let private = agreement::PrivateKey::from_private_key(alg, &self.scalar)
            .map_err(|_| Error::Internal("ECDH private key"))?;
        agreement::agree(
            &private,
            agreement::UnparsedPublicKey::new(alg, peer),
            Error::MechanismParamInvalid,
            |secret| Ok(Zeroizing::new(secret.to_vec())),
        )
    }

    fn agree_secp256k1(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let secret = k256::SecretKey::from_slice(&self.scalar)
            .map_err(|_| Error::Internal("secp256k1 scalar"))?;
        let public =
            k256::PublicKey::from_sec1_bytes(peer).map_err(|_| Error::MechanismParamInvalid)?;
        let shared = k256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
        Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
    }
}

/// Verifies an r || s ECDSA signature over a message hash.
pub(crate) fn verify_hash(curve: Curve, point: &[u8], hash: &[u8], sig: &[u8]) -> Result<()> {
    if sig.len() != 2 * curve.field_len() {
        return Err(Error::SignatureLenRange);
    }
    let digest = curve.digest_of(hash)?;
    signature::UnparsedPublicKey::new(curve.verification(), point)
        .verify_digest(&digest, sig)
        .map_err(|_| Error::SignatureInvalid)
}

/// Checks an uncompressed point lies on `curve`.
#[cfg(test)] // used by the tests only
pub(crate) fn check_point(curve: Curve, point: &[u8]) -> Result<()> {
    let ok = point.len() == 1 + 2 * curve.field_len()
        && point.first() == Some(&4)
        && match curve {
            Curve::Secp256k1 => k256::PublicKey::from_sec1_bytes(point).is_ok(),
            _ => {
                // Parsing validates that the point is on the curve.
                signature::UnparsedPublicKey::new(curve.verification(), point)
                    .parse()
                    .is_ok()
            }
        };
    if ok {
        Ok(())
    } else {
        Err(Error::AttributeValueInvalid)
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING holding the point; some callers send it bare
/// (PKCS#11 3.0 §2.3.11 has a token take both for an ECDH peer).
///
/// The length tells the two apart: a bare uncompressed point of a curve the module knows
/// is 1 + 2 × (32, 48 or 66) bytes (SM2's field is 32 bytes too), and the OCTET STRING
/// around any point is two or three bytes longer, which no bare point is. A bare point is
/// never read as DER: one whose x begins `3f 04` parses as an OCTET STRING of the 63
/// bytes after its first two (review 23b: a valid peer point refused, a key's own
/// signatures rejected).
pub fn point_from_attribute(value: &[u8]) -> Vec<u8> {
    let bare_uncompressed = value.first() == Some(&4)
        && Curve::ALL
            .iter()
            .any(|c| value.len() == 1 + 2 * c.field_len());
    if bare_uncompressed {
        return value.to_vec();
    }
    match asn1::octet_string_contents(value) {
        Some(inner) if inner.first() == Some(&4) => inner.to_vec(),
        _ => value.to_vec(),
    }
}

pub fn point_to_attribute(point: &[u8]) -> Vec<u8> {
    asn1::octet_string(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_curve_generates_signs_and_verifies() {
        for curve in Curve::ALL {
            let (d, point) = EcPrivateKey::generate(curve).unwrap();
            let key = EcPrivateKey::new(curve, &d).unwrap();
            assert_eq!(key.public_point(), point);
            check_point(curve, &point).unwrap();
            for hash_len in [20, 32, 48, 64] {
                if curve == Curve::P521 && hash_len > 64 {
                    continue;
                }
                let hash = vec![0x5a; hash_len];
                let sig = key.sign_hash(&hash).unwrap();
                assert_eq!(sig.len(), 2 * curve.field_len());
                verify_hash(curve, &point, &hash, &sig).unwrap();
                let mut bad = sig.clone();
                bad[3] ^= 1;
                assert!(verify_hash(curve, &point, &hash, &bad).is_err());
            }
        }
    }

    #[test]
    fn ecdh_agrees_on_every_curve() {
        for curve in Curve::ALL {
            let (da, pa) = EcPrivateKey::generate(curve).unwrap();
            let (db, pb) = EcPrivateKey::generate(curve).unwrap();
            let a = EcPrivateKey::new(curve, &da).unwrap().agree(&pb).unwrap();
            let b = EcPrivateKey::new(curve, &db).unwrap().agree(&pa).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.len(), curve.field_len());
        }
    }

    #[test]
    fn ec_point_attribute_is_an_octet_string() {
        let p = vec![4u8; 65];
        assert_eq!(point_from_attribute(&point_to_attribute(&p)), p);
        assert_eq!(point_from_attribute(&p), p);
    }

    #[test]
    fn a_bare_point_that_parses_as_der_is_taken_bare() {
        for curve in Curve::ALL {
            let len = 1 + 2 * curve.field_len();
            // 04, then an x beginning like the contents of an OCTET STRING of the rest.
            let mut bare = vec![0x5au8; len];
            bare[0] = 4;
            if len - 2 < 128 {
                bare[1] = (len - 2) as u8;
                bare[2] = 4;
                assert!(asn1::octet_string_contents(&bare).is_some());
            } else {
                bare[1] = 0x81;
                bare[2] = (len - 3) as u8;
                bare[3] = 4;
            }
            assert_eq!(point_from_attribute(&bare), bare, "{curve:?}");
            assert_eq!(point_from_attribute(&point_to_attribute(&bare)), bare);
        }
    }

    #[test]
    fn the_curve_oids_are_their_dotted_names() {
        use der::Encode;
        for (curve, dotted) in [
            (Curve::P256, "1.2.840.10045.3.1.7"),
            (Curve::P384, "1.3.132.0.34"),
            (Curve::P521, "1.3.132.0.35"),
            (Curve::Secp256k1, "1.3.132.0.10"),
        ] {
            let oid = ObjectIdentifier::new(dotted).unwrap();
            assert_eq!(oid.to_der().unwrap(), curve.oid(), "{dotted}");
        }
    }

    #[test]
    fn sec1_round_trips_and_what_rfc_5915_does_not_allow_is_refused() {
        let d = [0x11u8; 32];
        let der = sec1_der(Curve::P256, &d).unwrap();
        // SEQUENCE { 1, OCTET STRING d, [0] prime256v1 }, as OpenSSL writes it less [1].
        assert_eq!(&der[..7], &[0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20]);
        assert_eq!(&der[39..], &[&[0xa0, 0x0a][..], OID_P256].concat()[..]);
        let back = decode_sec1(&der).unwrap();
        assert_eq!(*back.d, d);
        assert_eq!(back.curve_oid.as_deref(), Some(OID_P256));
        // Short scalars are padded to the field length.
        let padded = scalar_from_sec1(&sec1_der(Curve::P256, &[0, 0, 5]).unwrap()).unwrap();
        assert_eq!(padded.len(), 32);
        assert_eq!(padded[31], 5);
        // No parameters, and a [1] public key: both fine.
        let bare = [0x30, 0x07, 0x02, 0x01, 0x01, 0x04, 0x02, 0x01, 0x02];
        assert_eq!(
            decode_sec1(&bare).unwrap(),
            Sec1Key {
                d: Zeroizing::new(vec![1, 2]),
                curve_oid: None
            }
        );
        let with_public = [
            &[0x30, 0x0e, 0x02, 0x01, 0x01, 0x04, 0x02, 0x01, 0x02][..],
            &[0xa1, 0x05, 0x03, 0x03, 0x00, 0x04, 0x09],
        ]
        .concat();
        assert!(decode_sec1(&with_public).is_ok());
        for bad in [
            &[0x30, 0x07, 0x02, 0x01, 0x00, 0x04, 0x02, 0x01, 0x02][..], // version 0
            &[0x30, 0x08, 0x02, 0x01, 0x01, 0x04, 0x02, 0x01, 0x02, 0x00], // length
            &[
                0x30, 0x09, 0x02, 0x01, 0x01, 0x04, 0x02, 0x01, 0x02, 0x05, 0x00,
            ], // trailing
            &[
                0x30, 0x09, 0x02, 0x01, 0x01, 0x04, 0x02, 0x01, 0x02, 0xa0, 0x00,
            ], // empty [0]
            &[0x30, 0x05, 0x02, 0x01, 0x01, 0x05, 0x00],                 // no scalar
        ] {
            assert!(
                matches!(scalar_from_sec1(bad), Err(Error::WrappedKeyInvalid)),
                "{bad:02x?}"
            );
        }
    }

    /// Each curve's group order n, big-endian, at the curve's scalar length.
    fn order(curve: Curve) -> Vec<u8> {
        let hex = match curve {
            Curve::P256 => "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
            Curve::P384 => concat!(
                "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf",
                "581a0db248b0a77aecec196accc52973"
            ),
            Curve::P521 => concat!(
                "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409"
            ),
            Curve::Secp256k1 => "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        };
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn every_curve_takes_scalars_from_1_to_n_minus_1_only() {
        for curve in Curve::ALL {
            let n = order(curve);
            assert_eq!(n.len(), curve.field_len(), "{curve:?}");
            let mut n_minus_1 = n.clone();
            *n_minus_1.last_mut().unwrap() -= 1; // every order here ends in an odd byte
            let one = [1u8];
            let g = EcPrivateKey::new(curve, &one).unwrap().public_point();
            let minus_g = EcPrivateKey::new(curve, &n_minus_1).unwrap().public_point();
            // (n - 1)·G = -G: the same x, the other y.
            let x = 1..1 + curve.field_len();
            assert_eq!(minus_g[x.clone()], g[x], "{curve:?}");
            assert_ne!(minus_g, g, "{curve:?}");
            let sig = EcPrivateKey::new(curve, &n_minus_1)
                .unwrap()
                .sign_hash(&[0x11; 32])
                .unwrap();
            verify_hash(curve, &minus_g, &[0x11; 32], &sig).unwrap();
            assert!(EcPrivateKey::new(curve, &n).is_err(), "{curve:?}: d = n");
            assert!(EcPrivateKey::new(curve, &[0]).is_err(), "{curve:?}: d = 0");
        }
    }

    #[test]
    fn a_signing_key_refuses_another_curve_and_trailing_bytes() {
        let (d, _) = EcPrivateKey::generate(Curve::P256).unwrap();
        let der = sec1_der(Curve::P256, &d).unwrap();
        let p384 = Curve::P384;
        assert!(EcdsaSigningKey::from_sec1_der(&der, p384.nid(), p384.field_len()).is_err());
        let mut trailing = der.to_vec();
        trailing.push(0);
        let p256 = Curve::P256;
        assert!(EcdsaSigningKey::from_sec1_der(&trailing, p256.nid(), 32).is_err());
        let key = EcdsaSigningKey::from_sec1_der(&der, p256.nid(), 32).unwrap();
        assert!(
            key.sign_into(&[0; 32], &mut [0; 63]).is_err(),
            "output too short"
        );
    }

    #[test]
    fn scalar_out_of_range_is_refused() {
        assert!(EcPrivateKey::new(Curve::P256, &[0u8; 32]).is_err());
        assert!(EcPrivateKey::new(Curve::P256, &[0xffu8; 32]).is_err());
        assert!(matches!(
            Curve::from_oid(b"\x06\x01\x00"),
            Err(Error::CurveNotSupported)
        ));
    }
}

//! PKCS#8 PrivateKeyInfo (RFC 5208; RFC 5958's OneAsymmetricKey) and SubjectPublicKeyInfo
//! (RFC 5280 §4.1.2.7) for RSA, EC, Ed25519, X25519, Ed448 and X448 (RFC 8410) keys: what
//! C_UnwrapKey receives, C_WrapKey produces, and CKA_PUBLIC_KEY_INFO holds.
//!
//! The structures are RustCrypto's `pkcs8` and `spki` types over `der`'s strict DER
//! (minimal lengths, no trailing bytes, version 0 or 1 with a public key exactly in 1);
//! this module checks the algorithm on top: a known OID and the parameters its RFC
//! prescribes. Decoding borrows from the input, so the private key is never copied here;
//! encoding writes into a zeroizing buffer (`asn1::encode_secret`). Untrusted input. No
//! PKCS#11 here.

use ::pkcs8::PrivateKeyInfoRef;
use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef};
use der::{Decode, Tag, Tagged};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::asn1;
use super::curve25519;
use super::curve448;
use crate::error::{Error, Result};

/// rsaEncryption (RFC 8017 §A.1).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// id-X25519, id-X448, id-Ed25519, id-Ed448 (RFC 8410 §3).
const X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const X448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.111");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// The algorithm of a key, from its AlgorithmIdentifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    /// id-ecPublicKey with the curve's OID element (tag and length included).
    Ec {
        curve_oid: Vec<u8>,
    },
    /// id-Ed25519 (RFC 8410), no parameters.
    Ed25519,
    /// id-X25519 (RFC 8410), no parameters.
    X25519,
    /// id-Ed448 (RFC 8410), no parameters.
    Ed448,
    /// id-X448 (RFC 8410), no parameters.
    X448,
}

/// A decoded PrivateKeyInfo.
pub struct PrivateKeyInfo<'a> {
    pub algorithm: KeyAlgorithm,
    /// The inner key: an RSAPrivateKey, an ECPrivateKey or a CurvePrivateKey, DER.
    pub private_key: &'a [u8],
}

/// The inner key is shown by its length only (review 22c).
impl std::fmt::Debug for PrivateKeyInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKeyInfo")
            .field("algorithm", &self.algorithm)
            .field("private_key_len", &self.private_key.len())
            .finish()
    }
}

fn bad() -> Error {
    Error::WrappedKeyInvalid
}

/// The key algorithm an AlgorithmIdentifier names, with its parameters checked:
/// rsaEncryption with NULL or none, id-ecPublicKey with a named curve, the RFC 8410
/// algorithms with none (§3: they MUST be absent).
fn algorithm(alg: &AlgorithmIdentifierRef<'_>) -> Option<KeyAlgorithm> {
    let (oid, params) = (alg.oid, alg.parameters);
    if oid == RSA_ENCRYPTION {
        return match params {
            None => Some(KeyAlgorithm::Rsa),
            Some(p) if p == AnyRef::NULL => Some(KeyAlgorithm::Rsa),
            Some(_) => None,
        };
    }
    if oid == EC_PUBLIC_KEY {
        let curve = params.filter(|p| p.tag() == Tag::ObjectIdentifier)?;
        curve.decode_as::<ObjectIdentifier>().ok()?;
        return Some(KeyAlgorithm::Ec {
            curve_oid: asn1::encode(&curve).ok()?,
        });
    }
    if params.is_some() {
        return None;
    }
    [
        (ED25519, KeyAlgorithm::Ed25519),
        (X25519, KeyAlgorithm::X25519),
        (ED448, KeyAlgorithm::Ed448),
        (X448, KeyAlgorithm::X448),
    ]
    .into_iter()
    .find(|(known, _)| *known == oid)
    .map(|(_, alg)| alg)
}

fn algorithm_identifier(alg: &KeyAlgorithm) -> Result<AlgorithmIdentifierRef<'_>> {
    let (oid, parameters) = match alg {
        KeyAlgorithm::Rsa => (RSA_ENCRYPTION, Some(AnyRef::NULL)),
        KeyAlgorithm::Ec { curve_oid } => {
            let curve = AnyRef::from_der(curve_oid).map_err(|_| Error::Internal("curve OID"))?;
            (EC_PUBLIC_KEY, Some(curve))
        }
        KeyAlgorithm::Ed25519 => (ED25519, None),
        KeyAlgorithm::X25519 => (X25519, None),
        KeyAlgorithm::Ed448 => (ED448, None),
        KeyAlgorithm::X448 => (X448, None),
    };
    Ok(AlgorithmIdentifierRef { oid, parameters })
}

/// RFC 8410's CurvePrivateKey: the key (32 bytes, 57 for Ed448, 56 for X448) as an
/// OCTET STRING.
pub fn curve_private_key(key: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = OctetStringRef::new(key).map_err(|_| Error::Internal("curve key length"))?;
    asn1::encode_secret(&key)
}

/// The key in a CurvePrivateKey for `alg`: 32 bytes (Ed25519, X25519), 57 (Ed448) or
/// 56 (X448).
pub fn curve_key_of<'a>(alg: &KeyAlgorithm, inner: &'a [u8]) -> Result<&'a [u8]> {
    let len = match alg {
        KeyAlgorithm::Ed25519 | KeyAlgorithm::X25519 => curve25519::KEY_LEN,
        KeyAlgorithm::Ed448 => curve448::ED448_KEY_LEN,
        KeyAlgorithm::X448 => curve448::X448_KEY_LEN,
        _ => return Err(bad()),
    };
    let key = asn1::octet_string_contents(inner).ok_or_else(bad)?;
    if key.len() != len {
        return Err(bad());
    }
    Ok(key)
}

/// Decodes a PKCS#8 PrivateKeyInfo: version 0, or 1 with its public key; attributes and
/// public key are checked for form and otherwise ignored.
pub fn decode_private_key_info(input: &[u8]) -> Result<PrivateKeyInfo<'_>> {
    let info = PrivateKeyInfoRef::from_der(input).map_err(|_| bad())?;
    let algorithm = algorithm(&info.algorithm).ok_or_else(bad)?;
    Ok(PrivateKeyInfo {
        algorithm,
        private_key: info.private_key.as_bytes(),
    })
}

/// Encodes a PKCS#8 PrivateKeyInfo, version 0.
pub fn encode_private_key_info(
    alg: &KeyAlgorithm,
    private_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = OctetStringRef::new(private_key).map_err(|_| Error::Internal("key length"))?;
    asn1::encode_secret(&PrivateKeyInfoRef::new(algorithm_identifier(alg)?, key))
}

/// Encodes a SubjectPublicKeyInfo; `public_key` is the RSAPublicKey DER or the EC point.
pub fn encode_spki(alg: &KeyAlgorithm, public_key: &[u8]) -> Result<Vec<u8>> {
    let spki = SubjectPublicKeyInfoRef {
        algorithm: algorithm_identifier(alg)?,
        subject_public_key: BitStringRef::from_bytes(public_key)
            .map_err(|_| Error::Internal("public key length"))?,
    };
    asn1::encode(&spki)
}

/// Decodes a SubjectPublicKeyInfo into its algorithm and key bits (a whole number of
/// bytes).
pub fn decode_spki(input: &[u8]) -> Result<(KeyAlgorithm, &[u8])> {
    let spki = SubjectPublicKeyInfoRef::from_der(input).map_err(|_| Error::DataInvalid)?;
    let alg = algorithm(&spki.algorithm).ok_or(Error::DataInvalid)?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or(Error::DataInvalid)?;
    Ok((alg, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn private_key_info_round_trips() {
        let alg = KeyAlgorithm::Ec {
            curve_oid: ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7")
                .to_der()
                .unwrap(),
        };
        let enc = encode_private_key_info(&alg, b"inner").unwrap();
        let dec = decode_private_key_info(&enc).unwrap();
        assert_eq!(dec.algorithm, alg);
        assert_eq!(dec.private_key, b"inner");
    }

    #[test]
    fn an_rfc_8410_ed25519_key_decodes() {
        // RFC 8410 §10.3's example private key.
        let der = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20, 0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1,
            0xf7, 0x69, 0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97,
            0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
        ];
        let info = decode_private_key_info(&der).unwrap();
        assert_eq!(info.algorithm, KeyAlgorithm::Ed25519);
        let key = curve_key_of(&info.algorithm, info.private_key).unwrap();
        assert_eq!(key[0], 0xd4);
        let again =
            encode_private_key_info(&KeyAlgorithm::Ed25519, &curve_private_key(key).unwrap())
                .unwrap();
        assert_eq!(*again, der);
    }

    #[test]
    fn an_ed448_key_round_trips_and_wrong_lengths_are_refused() {
        // What `openssl genpkey -algorithm ED448 -outform DER` writes: 0x30 0x47, version
        // 0, id-Ed448, and the 57-byte key in a CurvePrivateKey.
        let key = [0x5a; 57];
        let der = encode_private_key_info(&KeyAlgorithm::Ed448, &curve_private_key(&key).unwrap())
            .unwrap();
        assert_eq!(
            &der[..16],
            b"\x30\x47\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x71\x04\x3b\x04\x39"
        );
        let info = decode_private_key_info(&der).unwrap();
        assert_eq!(info.algorithm, KeyAlgorithm::Ed448);
        assert_eq!(
            curve_key_of(&info.algorithm, info.private_key).unwrap(),
            key
        );
        // A 32-byte key under id-Ed448, or a 57-byte one under id-Ed25519, is refused.
        assert!(curve_key_of(&KeyAlgorithm::Ed448, &curve_private_key(&[1; 32]).unwrap()).is_err());
        assert!(curve_key_of(&KeyAlgorithm::Ed25519, &curve_private_key(&key).unwrap()).is_err());
        let spki = encode_spki(&KeyAlgorithm::Ed448, &key).unwrap();
        assert_eq!(
            &spki[..12],
            b"\x30\x43\x30\x05\x06\x03\x2b\x65\x71\x03\x3a\x00"
        );
        assert_eq!(decode_spki(&spki).unwrap(), (KeyAlgorithm::Ed448, &key[..]));
        // X448: 56 bytes under id-X448 (1.3.101.111).
        let x = [0x33; 56];
        let der =
            encode_private_key_info(&KeyAlgorithm::X448, &curve_private_key(&x).unwrap()).unwrap();
        assert_eq!(
            &der[..16],
            b"\x30\x46\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x6f\x04\x3a\x04\x38"
        );
        let info = decode_private_key_info(&der).unwrap();
        assert_eq!(info.algorithm, KeyAlgorithm::X448);
        assert_eq!(curve_key_of(&info.algorithm, info.private_key).unwrap(), x);
        assert!(curve_key_of(&KeyAlgorithm::X448, &curve_private_key(&key).unwrap()).is_err());
    }

    #[test]
    fn spki_round_trips() {
        let enc = encode_spki(&KeyAlgorithm::Rsa, b"\x30\x00").unwrap();
        // rsaEncryption with NULL parameters, as every producer writes it.
        assert_eq!(
            enc,
            b"\x30\x14\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x03\x03\x00\x30\x00"
        );
        let (alg, key) = decode_spki(&enc).unwrap();
        assert_eq!(alg, KeyAlgorithm::Rsa);
        assert_eq!(key, b"\x30\x00");
    }

    #[test]
    fn garbage_is_wrapped_key_invalid() {
        assert!(matches!(
            decode_private_key_info(b"\x30\x03\x02\x01\x05"),
            Err(Error::WrappedKeyInvalid)
        ));
        assert!(decode_private_key_info(&[]).is_err());
    }

    #[test]
    fn the_rfc_8410_oids_are_the_curve_modules_params() {
        assert_eq!(ED25519.to_der().unwrap(), curve25519::OID_ED25519);
        assert_eq!(X25519.to_der().unwrap(), curve25519::OID_X25519);
        assert_eq!(ED448.to_der().unwrap(), curve448::OID_ED448);
        assert_eq!(X448.to_der().unwrap(), curve448::OID_X448);
    }

    /// A PrivateKeyInfo of `version`, `alg` (an AlgorithmIdentifier's DER), the key
    /// `02 01 07` and `tail` after it, written out by hand.
    fn info(version: u8, alg: &[u8], tail: &[u8]) -> Vec<u8> {
        let body = [
            &[0x02, 0x01, version][..],
            alg,
            b"\x04\x03\x02\x01\x07",
            tail,
        ]
        .concat();
        [&[0x30, body.len() as u8][..], &body].concat()
    }

    const RSA_NULL: &[u8] = b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00";
    const RSA_BARE: &[u8] = b"\x30\x0b\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01";
    const ED25519_ALG: &[u8] = b"\x30\x05\x06\x03\x2b\x65\x70";

    #[test]
    fn what_the_rfcs_allow_decodes() {
        for (der, alg) in [
            (info(0, RSA_NULL, b""), KeyAlgorithm::Rsa),
            (info(0, RSA_BARE, b""), KeyAlgorithm::Rsa),
            (info(0, ED25519_ALG, b""), KeyAlgorithm::Ed25519),
            // Attributes ([0] SET OF), ignored.
            (info(0, RSA_NULL, b"\xa0\x00"), KeyAlgorithm::Rsa),
            // RFC 5958 version 2 (1) with its public key [1].
            (
                info(1, ED25519_ALG, b"\x81\x03\x00\x01\x02"),
                KeyAlgorithm::Ed25519,
            ),
        ] {
            let got = decode_private_key_info(&der).unwrap();
            assert_eq!(got.algorithm, alg);
            assert_eq!(got.private_key, b"\x02\x01\x07");
        }
    }

    #[test]
    fn what_strict_der_and_the_rfcs_refuse_is_wrapped_key_invalid() {
        let cases = [
            info(2, RSA_NULL, b""),                        // version 3
            info(1, ED25519_ALG, b""),                     // version 2 without public key
            info(0, ED25519_ALG, b"\x81\x03\x00\x01\x02"), // version 1 with public key
            info(0, RSA_NULL, b"\x05\x00"),                // trailing element
            info(
                0,
                b"\x30\x0e\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x01\x00",
                b"",
            ), // NULL with contents
            info(
                0,
                b"\x30\x0f\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x04\x02\x06\x00",
                b"",
            ), // RSA with other parameters
            info(0, b"\x30\x07\x06\x03\x2b\x65\x70\x05\x00", b""), // Ed25519 with parameters
            info(
                0,
                b"\x30\x0b\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x05\x00",
                b"",
            ), // EC without a curve OID
            info(0, b"\x30\x05\x06\x03\x2b\x65\x7f", b""), // unknown algorithm
            [info(0, RSA_NULL, b""), vec![0]].concat(),    // trailing byte
        ];
        for der in &cases {
            assert!(
                matches!(decode_private_key_info(der), Err(Error::WrappedKeyInvalid)),
                "{der:02x?}"
            );
        }
        // A non-minimal length.
        let good = info(0, RSA_NULL, b"");
        let long = [&[0x30, 0x81][..], &good[1..]].concat();
        assert!(decode_private_key_info(&long).is_err());
    }

    #[test]
    fn spki_with_unused_bits_or_garbage_is_data_invalid() {
        let good = encode_spki(&KeyAlgorithm::Ed25519, &[7; 32]).unwrap();
        assert!(decode_spki(&good).is_ok());
        let mut unused = good.clone();
        unused[good.len() - 33] = 1; // the BIT STRING's unused-bits byte
        assert!(matches!(decode_spki(&unused), Err(Error::DataInvalid)));
        let trailing = [&good[..], &[0]].concat();
        assert!(matches!(decode_spki(&trailing), Err(Error::DataInvalid)));
        assert!(matches!(
            decode_spki(&good[..good.len() - 1]),
            Err(Error::DataInvalid)
        ));
    }

    /// Review 22c: the inner key is the private key itself (an RSAPrivateKey, an
    /// ECPrivateKey, a CurvePrivateKey); a `{:?}` of the decoded structure must not show it.
    #[test]
    fn the_debug_form_of_a_private_key_info_hides_the_inner_key() {
        use crate::object::review22c_tests::{shows, SECRET};
        let info = PrivateKeyInfo {
            algorithm: KeyAlgorithm::Rsa,
            private_key: &SECRET,
        };
        let shown = format!("{info:?}");
        assert!(!shows(&shown, &SECRET), "PrivateKeyInfo: {shown}");
    }
}

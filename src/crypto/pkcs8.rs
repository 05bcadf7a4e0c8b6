//! PKCS#8 PrivateKeyInfo (RFC 5208) and SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) for RSA,
//! EC, Ed25519, X25519, Ed448 and X448 (RFC 8410) keys: what C_UnwrapKey receives, C_WrapKey
//! produces, and CKA_PUBLIC_KEY_INFO holds. Untrusted input; decoding is strict. No PKCS#11 here.

use super::curve25519::{OID_ED25519, OID_X25519};
use super::curve448::{OID_ED448, OID_X448};
use super::der::{self, Reader};
use crate::error::{Error, Result};

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
#[derive(Debug)]
pub struct PrivateKeyInfo<'a> {
    pub algorithm: KeyAlgorithm,
    /// The inner key: an RSAPrivateKey, an ECPrivateKey or a CurvePrivateKey, DER.
    pub private_key: &'a [u8],
}

fn bad() -> Error {
    Error::WrappedKeyInvalid
}

fn algorithm(r: &mut Reader<'_>) -> Result<KeyAlgorithm> {
    let mut alg = r.nested(der::SEQUENCE)?;
    let oid = alg.read(der::OID)?;
    let oid = der::tlv(der::OID, oid);
    if oid == der::OID_RSA_ENCRYPTION {
        if !alg.is_empty() {
            alg.read(der::NULL)?;
        }
        alg.finish()?;
        Ok(KeyAlgorithm::Rsa)
    } else if oid == der::OID_EC_PUBLIC_KEY {
        let curve = alg.read(der::OID)?;
        alg.finish()?;
        Ok(KeyAlgorithm::Ec {
            curve_oid: der::tlv(der::OID, curve),
        })
    } else if oid == OID_ED25519 || oid == OID_X25519 || oid == OID_ED448 || oid == OID_X448 {
        // RFC 8410 §3: the parameters MUST be absent.
        alg.finish()?;
        Ok(if oid == OID_ED25519 {
            KeyAlgorithm::Ed25519
        } else if oid == OID_ED448 {
            KeyAlgorithm::Ed448
        } else if oid == OID_X448 {
            KeyAlgorithm::X448
        } else {
            KeyAlgorithm::X25519
        })
    } else {
        Err(bad())
    }
}

fn algorithm_identifier(alg: &KeyAlgorithm) -> Vec<u8> {
    match alg {
        KeyAlgorithm::Rsa => der::sequence(&[der::OID_RSA_ENCRYPTION, &[der::NULL, 0]]),
        KeyAlgorithm::Ec { curve_oid } => der::sequence(&[der::OID_EC_PUBLIC_KEY, curve_oid]),
        KeyAlgorithm::Ed25519 => der::sequence(&[OID_ED25519]),
        KeyAlgorithm::X25519 => der::sequence(&[OID_X25519]),
        KeyAlgorithm::Ed448 => der::sequence(&[OID_ED448]),
        KeyAlgorithm::X448 => der::sequence(&[OID_X448]),
    }
}

/// RFC 8410's CurvePrivateKey: the key (32 bytes, 57 for Ed448, 56 for X448) as an
/// OCTET STRING.
pub fn curve_private_key(key: &[u8]) -> Vec<u8> {
    der::tlv(der::OCTET_STRING, key)
}

/// The key in a CurvePrivateKey for `alg`: 32 bytes (Ed25519, X25519), 57 (Ed448) or
/// 56 (X448).
pub fn curve_key_of<'a>(alg: &KeyAlgorithm, inner: &'a [u8]) -> Result<&'a [u8]> {
    let len = match alg {
        KeyAlgorithm::Ed25519 | KeyAlgorithm::X25519 => super::curve25519::KEY_LEN,
        KeyAlgorithm::Ed448 => super::curve448::ED448_KEY_LEN,
        KeyAlgorithm::X448 => super::curve448::X448_KEY_LEN,
        _ => return Err(bad()),
    };
    let mut r = Reader::new(inner, bad);
    let key = r.read(der::OCTET_STRING)?;
    r.finish()?;
    if key.len() != len {
        return Err(bad());
    }
    Ok(key)
}

/// Decodes a PKCS#8 PrivateKeyInfo (version 0 or 1; attributes and public key ignored).
pub fn decode_private_key_info(input: &[u8]) -> Result<PrivateKeyInfo<'_>> {
    let mut outer = Reader::new(input, bad);
    let mut info = outer.nested(der::SEQUENCE)?;
    outer.finish()?;
    if info.small_uint()? > 1 {
        return Err(bad());
    }
    let algorithm = algorithm(&mut info)?;
    let private_key = info.read(der::OCTET_STRING)?;
    Ok(PrivateKeyInfo {
        algorithm,
        private_key,
    })
}

/// Encodes a PKCS#8 PrivateKeyInfo, version 0.
pub fn encode_private_key_info(alg: &KeyAlgorithm, private_key: &[u8]) -> Vec<u8> {
    der::sequence(&[
        &der::uint(&[0]),
        &algorithm_identifier(alg),
        &der::tlv(der::OCTET_STRING, private_key),
    ])
}

/// Encodes a SubjectPublicKeyInfo; `public_key` is the RSAPublicKey DER or the EC point.
pub fn encode_spki(alg: &KeyAlgorithm, public_key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(public_key);
    der::sequence(&[
        &algorithm_identifier(alg),
        &der::tlv(der::BIT_STRING, &bits),
    ])
}

/// Decodes a SubjectPublicKeyInfo into its algorithm and key bits.
pub fn decode_spki(input: &[u8]) -> Result<(KeyAlgorithm, &[u8])> {
    let mut outer = Reader::new(input, || Error::DataInvalid);
    let mut spki = outer.nested(der::SEQUENCE)?;
    outer.finish()?;
    let alg = algorithm(&mut spki).map_err(|_| Error::DataInvalid)?;
    let bits = spki.read(der::BIT_STRING)?;
    spki.finish()?;
    match bits.split_first() {
        Some((0, key)) => Ok((alg, key)),
        _ => Err(Error::DataInvalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_info_round_trips() {
        let alg = KeyAlgorithm::Ec {
            curve_oid: der::OID_P256.to_vec(),
        };
        let enc = encode_private_key_info(&alg, b"inner");
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
        let again = encode_private_key_info(&KeyAlgorithm::Ed25519, &curve_private_key(key));
        assert_eq!(again, der);
    }

    #[test]
    fn an_ed448_key_round_trips_and_wrong_lengths_are_refused() {
        // What `openssl genpkey -algorithm ED448 -outform DER` writes: 0x30 0x47, version
        // 0, id-Ed448, and the 57-byte key in a CurvePrivateKey.
        let key = [0x5a; 57];
        let der = encode_private_key_info(&KeyAlgorithm::Ed448, &curve_private_key(&key));
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
        assert!(curve_key_of(&KeyAlgorithm::Ed448, &curve_private_key(&[1; 32])).is_err());
        assert!(curve_key_of(&KeyAlgorithm::Ed25519, &curve_private_key(&key)).is_err());
        let spki = encode_spki(&KeyAlgorithm::Ed448, &key);
        assert_eq!(
            &spki[..12],
            b"\x30\x43\x30\x05\x06\x03\x2b\x65\x71\x03\x3a\x00"
        );
        assert_eq!(decode_spki(&spki).unwrap(), (KeyAlgorithm::Ed448, &key[..]));
        // X448: 56 bytes under id-X448 (1.3.101.111).
        let x = [0x33; 56];
        let der = encode_private_key_info(&KeyAlgorithm::X448, &curve_private_key(&x));
        assert_eq!(
            &der[..16],
            b"\x30\x46\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x6f\x04\x3a\x04\x38"
        );
        let info = decode_private_key_info(&der).unwrap();
        assert_eq!(info.algorithm, KeyAlgorithm::X448);
        assert_eq!(curve_key_of(&info.algorithm, info.private_key).unwrap(), x);
        assert!(curve_key_of(&KeyAlgorithm::X448, &curve_private_key(&key)).is_err());
    }

    #[test]
    fn spki_round_trips() {
        let enc = encode_spki(&KeyAlgorithm::Rsa, b"\x30\x00");
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
}

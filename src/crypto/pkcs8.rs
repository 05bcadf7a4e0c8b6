//! PKCS#8 PrivateKeyInfo (RFC 5208) and SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) for RSA
//! and EC keys: what C_UnwrapKey receives, C_WrapKey produces, and CKA_PUBLIC_KEY_INFO
//! holds. Untrusted input; decoding is strict. No PKCS#11 here.

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
}

/// A decoded PrivateKeyInfo.
#[derive(Debug)]
pub struct PrivateKeyInfo<'a> {
    pub algorithm: KeyAlgorithm,
    /// The inner key: an RSAPrivateKey or an ECPrivateKey, DER.
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
    } else {
        Err(bad())
    }
}

fn algorithm_identifier(alg: &KeyAlgorithm) -> Vec<u8> {
    match alg {
        KeyAlgorithm::Rsa => der::sequence(&[der::OID_RSA_ENCRYPTION, &[der::NULL, 0]]),
        KeyAlgorithm::Ec { curve_oid } => der::sequence(&[der::OID_EC_PUBLIC_KEY, curve_oid]),
    }
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

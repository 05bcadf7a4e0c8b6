//! Reading the private key file of `--import`: PEM (RFC 7468) around an unencrypted
//! PKCS#8 PrivateKeyInfo ("PRIVATE KEY"), and also the two OpenSSL "traditional" forms,
//! PKCS#1 ("RSA PRIVATE KEY") and SEC1 ("EC PRIVATE KEY"). A DER file is accepted too.
//! Parsing uses the library's decoders (RustCrypto's `pkcs1`, `pkcs8` and `sec1`, strict
//! DER).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kmshsm::crypto::ec::{self, Curve, EcPrivateKey};
use kmshsm::crypto::pkcs8::{self, KeyAlgorithm};
use kmshsm::crypto::rsa::RsaComponents;
use kmshsm::error::Error;
use zeroize::Zeroizing;

/// The parts of an RSA private key: the library's own type.
pub(crate) type RsaKey = RsaComponents;

pub(crate) struct EcKey {
    /// The curve's OID element (CKA_EC_PARAMS).
    pub params: Vec<u8>,
    /// The private scalar.
    pub d: Zeroizing<Vec<u8>>,
    /// The uncompressed public point (computed from `d`, never trusted from the file).
    pub point: Vec<u8>,
}

pub(crate) enum KeyPair {
    Rsa(RsaKey),
    Ec(EcKey),
}

/// Why a file could not be read as a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeyFileError {
    /// PKCS#8 EncryptedPrivateKeyInfo, or a PEM with `Proc-Type: 4,ENCRYPTED`.
    Encrypted,
    /// Anything else: not PEM/DER, not a key, a curve this module lacks, ...
    Invalid,
}

fn bad(_: Error) -> KeyFileError {
    KeyFileError::Invalid
}

/// The label and the decoded body of the first PEM block in `text`.
fn pem(text: &str) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body = &body[..body.find(&end_marker)?];
    if body.contains("Proc-Type:") {
        return Some((format!("ENCRYPTED {label}"), Zeroizing::new(Vec::new())));
    }
    let b64: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = B64.decode(b64.as_bytes()).ok()?;
    Some((label, Zeroizing::new(der)))
}

pub(crate) fn read(bytes: &[u8]) -> Result<KeyPair, KeyFileError> {
    let (label, der) = match std::str::from_utf8(bytes).ok().and_then(pem) {
        Some(found) => found,
        // A DER SEQUENCE.
        None if bytes.first() == Some(&0x30) => {
            ("PRIVATE KEY".to_string(), Zeroizing::new(bytes.to_vec()))
        }
        None => return Err(KeyFileError::Invalid),
    };
    match label.as_str() {
        "PRIVATE KEY" => from_pkcs8(&der),
        "RSA PRIVATE KEY" => rsa(&der),
        "EC PRIVATE KEY" => ec_sec1(&der, None),
        "ENCRYPTED PRIVATE KEY" => Err(KeyFileError::Encrypted),
        l if l.starts_with("ENCRYPTED ") => Err(KeyFileError::Encrypted),
        _ => Err(KeyFileError::Invalid),
    }
}

fn from_pkcs8(der: &[u8]) -> Result<KeyPair, KeyFileError> {
    let info = pkcs8::decode_private_key_info(der).map_err(bad)?;
    match info.algorithm {
        KeyAlgorithm::Rsa => rsa(info.private_key),
        KeyAlgorithm::Ec { curve_oid } => ec_sec1(info.private_key, Some(curve_oid)),
        // RFC 8410 keys decode since the library learnt to wrap them; this tool imports
        // RSA and EC keys only, as before that (a PKCS#8 it cannot use is Invalid).
        KeyAlgorithm::Ed25519 | KeyAlgorithm::X25519 | KeyAlgorithm::Ed448 | KeyAlgorithm::X448 => {
            Err(KeyFileError::Invalid)
        }
    }
}

/// RSAPrivateKey (RFC 8017 A.1.2), two-prime only, through the library's decoder.
fn rsa(der: &[u8]) -> Result<KeyPair, KeyFileError> {
    let key = RsaComponents::from_pkcs1_der(der).map_err(bad)?;
    if key.n.is_empty() || key.e.is_empty() || key.d.is_empty() {
        return Err(KeyFileError::Invalid);
    }
    Ok(KeyPair::Rsa(key))
}

/// ECPrivateKey (RFC 5915); the curve comes from PKCS#8 or from the [0] parameters.
fn ec_sec1(der: &[u8], curve_oid: Option<Vec<u8>>) -> Result<KeyPair, KeyFileError> {
    let sec1 = ec::decode_sec1(der).map_err(bad)?;
    let d = sec1.d;
    let params = curve_oid.or(sec1.curve_oid).ok_or(KeyFileError::Invalid)?;
    let curve = Curve::from_oid(&params).map_err(bad)?;
    let key = EcPrivateKey::new(curve, &d).map_err(bad)?;
    Ok(KeyPair::Ec(EcKey {
        params,
        d,
        point: key.public_point(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_pem_is_invalid() {
        assert_eq!(read(b"garbage\n").err(), Some(KeyFileError::Invalid));
        assert_eq!(
            read(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n")
                .err(),
            Some(KeyFileError::Encrypted)
        );
    }
}

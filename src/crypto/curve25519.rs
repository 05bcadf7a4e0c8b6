//! Ed25519 signatures (RFC 8032, pure Ed25519 only) and X25519 key agreement (RFC 7748)
//! through aws-lc-rs, with the encodings PKCS#11 3.0 uses for them (§2.3.6, §2.3.7):
//! `CKA_EC_PARAMS` as the RFC 8410 OID or the curve name as a PrintableString,
//! `CKA_EC_POINT` as a DER OCTET STRING of the 32 public bytes (bare 32 bytes accepted),
//! private keys as their 32 raw bytes (Ed25519 seed, X25519 scalar).
//!
//! Plain bytes in and out, nothing of PKCS#11's types; secrets are zeroizing and never
//! logged. Ed25519ctx and Ed25519ph come from `ed25519_variants`. Ed448/X448 are in
//! `curve448` (from the system's libcrypto): aws-lc-rs does not offer them.

use aws_lc_rs::agreement;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use zeroize::Zeroizing;

use super::asn1;
use crate::error::{Error, Result};

/// Bytes of every key (seed, scalar, public key) on either curve.
pub(crate) const KEY_LEN: usize = 32;
/// Bytes of an Ed25519 signature (R || S).
pub(crate) const SIGNATURE_LEN: usize = 64;
// The Ed25519ctx/ph calls use the same lengths (named there, so that the unsafe module
// imports nothing from this one).
const _: () = assert!(
    KEY_LEN == super::ed25519_variants::KEY_LEN
        && SIGNATURE_LEN == super::ed25519_variants::SIGNATURE_LEN
);

/// id-Ed25519, 1.3.101.112 (RFC 8410), as a DER OID element.
pub const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// id-X25519, 1.3.101.110 (RFC 8410).
pub const OID_X25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x6e];
/// The curve name "edwards25519" as a DER PrintableString (PKCS#11 3.0 §2.3.6).
pub const NAME_EDWARDS25519: &[u8] = b"\x13\x0cedwards25519";
/// The curve name "curve25519" as a DER PrintableString (§2.3.7).
pub const NAME_CURVE25519: &[u8] = b"\x13\x0acurve25519";

/// Which of the two curves a key is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve25519 {
    /// edwards25519, for Ed25519 (`CKK_EC_EDWARDS`).
    Edwards,
    /// curve25519, for X25519 (`CKK_EC_MONTGOMERY`).
    Montgomery,
}

impl Curve25519 {
    /// The curve `CKA_EC_PARAMS` names: the OID or the curve name, either curve.
    pub(crate) fn from_params(params: &[u8]) -> Result<Curve25519> {
        match params {
            OID_ED25519 | NAME_EDWARDS25519 => Ok(Curve25519::Edwards),
            OID_X25519 | NAME_CURVE25519 => Ok(Curve25519::Montgomery),
            _ => Err(Error::CurveNotSupported),
        }
    }
}

/// A public key from `CKA_EC_POINT` (or an ECDH peer's public data): a DER OCTET STRING
/// of 32 bytes, or the 32 bytes bare. The two cannot be confused: they differ in length.
pub(crate) fn public_from_attribute(value: &[u8]) -> Result<[u8; KEY_LEN]> {
    let bare = if value.len() == KEY_LEN + 2 {
        asn1::octet_string_contents(value).ok_or(Error::AttributeValueInvalid)?
    } else {
        value
    };
    bare.try_into().map_err(|_| Error::AttributeValueInvalid)
}

/// `CKA_EC_POINT` as the module writes it: DER OCTET STRING.
pub(crate) fn public_to_attribute(public: &[u8; KEY_LEN]) -> Vec<u8> {
    asn1::octet_string(public)
}

/// 32 bytes from the system generator (through aws-lc).
fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(k.as_mut()).map_err(|_| Error::Internal("random"))?;
    Ok(k)
}

fn fixed(bytes: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::AttributeValueInvalid)?;
    Ok(Zeroizing::new(array))
}

/// An Ed25519 private key, from its 32-byte seed (RFC 8032 §5.1.5).
pub struct Ed25519Private {
    pair: Ed25519KeyPair,
    /// The seed again, for the Ed25519ctx/ph variants (`ed25519_variants`).
    seed: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Ed25519Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed25519Private")
    }
}

impl Ed25519Private {
    pub fn from_seed(seed: &[u8]) -> Result<Ed25519Private> {
        let seed = fixed(seed)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .map_err(|_| Error::AttributeValueInvalid)?;
        Ok(Ed25519Private { pair, seed })
    }

    /// A new key: (seed, public key).
    pub fn generate() -> Result<(Zeroizing<[u8; KEY_LEN]>, [u8; KEY_LEN])> {
        let seed = random_key()?;
        let public = Ed25519Private::from_seed(seed.as_ref())?.public();
        Ok((seed, public))
    }

    pub fn public(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Pure Ed25519 over the whole message.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .pair
            .try_sign(message)
            .map_err(|_| Error::Internal("Ed25519 signing"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// Ed25519ctx (RFC 8032 §5.1, a context of 1 to 255 bytes).
    pub(crate) fn sign_ctx(&self, message: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let sig = super::ed25519_variants::ctx_sign(&self.seed, &self.public(), message, context)?;
        Ok(sig.to_vec())
    }

    /// Ed25519ph over a message whose SHA-512 is `digest` (a context of 0 to 255 bytes).
    pub(crate) fn sign_ph_digest(&self, digest: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let digest = digest
            .try_into()
            .map_err(|_| Error::Internal("Ed25519ph digest length"))?;
        let sig =
            super::ed25519_variants::ph_sign_digest(&self.seed, &self.public(), digest, context)?;
        Ok(sig.to_vec())
    }
}

/// Verifies a pure Ed25519 signature.
pub(crate) fn ed25519_verify(public: &[u8; KEY_LEN], message: &[u8], sig: &[u8]) -> Result<()> {
    if sig.len() != SIGNATURE_LEN {
        return Err(Error::SignatureLenRange);
    }
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(message, sig)
        .map_err(|_| Error::SignatureInvalid)
}

/// An X25519 private key: the 32-byte scalar as RFC 7748 gives it (clamped on use).
pub struct X25519Private {
    scalar: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for X25519Private {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("X25519Private")
    }
}

impl X25519Private {
    pub fn from_scalar(scalar: &[u8]) -> Result<X25519Private> {
        let scalar = fixed(scalar)?;
        // Checks aws-lc takes it.
        agreement::PrivateKey::from_private_key(&agreement::X25519, scalar.as_ref())
            .map_err(|_| Error::AttributeValueInvalid)?;
        Ok(X25519Private { scalar })
    }

    /// A new key: (scalar, public key).
    pub fn generate() -> Result<(Zeroizing<[u8; KEY_LEN]>, [u8; KEY_LEN])> {
        let scalar = random_key()?;
        let public = X25519Private::from_scalar(scalar.as_ref())?.public()?;
        Ok((scalar, public))
    }

    fn key(&self) -> Result<agreement::PrivateKey> {
        agreement::PrivateKey::from_private_key(&agreement::X25519, self.scalar.as_ref())
            .map_err(|_| Error::Internal("X25519 private key"))
    }

    /// X25519(scalar, 9).
    pub fn public(&self) -> Result<[u8; KEY_LEN]> {
        let public = self
            .key()?
            .compute_public_key()
            .map_err(|_| Error::Internal("X25519 public key"))?;
        public
            .as_ref()
            .try_into()
            .map_err(|_| Error::Internal("X25519 public key length"))
    }

    /// X25519(scalar, peer). A peer of the wrong length, or one giving the all-zero
    /// secret (a low-order point, RFC 7748 §6.1), is refused.
    pub fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if peer.len() != KEY_LEN {
            return Err(Error::MechanismParamInvalid);
        }
        agreement::agree(
            &self.key()?,
            agreement::UnparsedPublicKey::new(&agreement::X25519, peer),
            Error::MechanismParamInvalid,
            |z| Ok(Zeroizing::new(z.to_vec())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ed25519_matches_rfc_8032_test_1() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let key = Ed25519Private::from_seed(&hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ))
        .unwrap();
        let public = key.public();
        assert_eq!(
            public.to_vec(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = key.sign(b"").unwrap();
        assert_eq!(
            sig,
            hex(concat!(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
                "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            ))
        );
        ed25519_verify(&public, b"", &sig).unwrap();
        assert!(matches!(
            ed25519_verify(&public, b"x", &sig),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            ed25519_verify(&public, b"", &sig[1..]),
            Err(Error::SignatureLenRange)
        ));
    }

    #[test]
    fn x25519_matches_rfc_7748_section_6_1() {
        let alice = X25519Private::from_scalar(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
        .unwrap();
        let bob = X25519Private::from_scalar(&hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ))
        .unwrap();
        let (pa, pb) = (alice.public().unwrap(), bob.public().unwrap());
        assert_eq!(
            pa.to_vec(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            pb.to_vec(),
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let k = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(*alice.agree(&pb).unwrap(), k);
        assert_eq!(*bob.agree(&pa).unwrap(), k);
        // A low-order point gives the zero secret: refused.
        assert!(alice.agree(&[0u8; 32]).is_err());
        assert!(alice.agree(&pb[1..]).is_err());
    }

    #[test]
    fn generated_keys_work_and_encodings_read_back() {
        let (seed, public) = Ed25519Private::generate().unwrap();
        let key = Ed25519Private::from_seed(seed.as_ref()).unwrap();
        assert_eq!(key.public(), public);
        let sig = key.sign(b"m").unwrap();
        ed25519_verify(&public, b"m", &sig).unwrap();
        let attr = public_to_attribute(&public);
        assert_eq!(attr.len(), 34);
        assert_eq!(public_from_attribute(&attr).unwrap(), public);
        assert_eq!(public_from_attribute(&public).unwrap(), public);
        assert!(public_from_attribute(&attr[..33]).is_err());
        assert!(public_from_attribute(&[0x05; 34]).is_err());
        let (scalar, xpub) = X25519Private::generate().unwrap();
        assert_eq!(
            X25519Private::from_scalar(scalar.as_ref())
                .unwrap()
                .public()
                .unwrap(),
            xpub
        );
        assert!(Ed25519Private::from_seed(&[1; 31]).is_err());
        assert!(X25519Private::from_scalar(&[1; 33]).is_err());
    }

    #[test]
    fn curve_parameters_take_the_oid_or_the_name() {
        use Curve25519::*;
        assert_eq!(Curve25519::from_params(OID_ED25519).unwrap(), Edwards);
        assert_eq!(
            Curve25519::from_params(b"\x13\x0cedwards25519").unwrap(),
            Edwards
        );
        assert_eq!(Curve25519::from_params(OID_X25519).unwrap(), Montgomery);
        assert_eq!(
            Curve25519::from_params(b"\x13\x0acurve25519").unwrap(),
            Montgomery
        );
        assert!(matches!(
            Curve25519::from_params(b"\x06\x03\x2b\x65\x71"),
            Err(Error::CurveNotSupported)
        ));
    }
}

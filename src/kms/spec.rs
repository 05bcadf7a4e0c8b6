//! What each key spec is, in one table: the kind and size of its material, the usages
//! it allows, and the wrapping algorithms its material may be imported with (kms-docs
//! 000-004). Every question about a spec is answered from `ROWS`; the PKCS#11 shape of
//! a spec (object class, key type, generation mechanism) is the token's table,
//! `token::kms::shape`, built on this one. No `CK_*` type here.

use super::import::WrappingAlgorithm;
use super::key::{KeySpec, KeyUsage};
use crate::crypto::ec::Curve;

/// The material of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecMaterial {
    /// A symmetric key of exactly `len` bytes.
    Aes {
        len: usize,
    },
    Sm4 {
        len: usize,
    },
    /// An RSA key pair with a modulus of `bits`.
    Rsa {
        bits: usize,
    },
    /// A key pair on one of the curves `crypto::ec` knows.
    Ec(Curve),
    /// An SM2 key pair.
    Sm2,
}

/// One row of the table.
#[derive(Debug)]
pub struct SpecRow {
    pub spec: KeySpec,
    pub material: SpecMaterial,
    /// The usages a key of the spec may have; the first is the one a key waiting for
    /// material takes when none is asked for and it is the only one.
    pub usages: &'static [KeyUsage],
    /// The wrapping algorithms its material may be imported with: symmetric material
    /// is encrypted directly; private keys go in an envelope (kms-docs 004).
    pub wrapping: &'static [WrappingAlgorithm],
}

use KeyUsage::{EncryptDecrypt, SignVerify};
use WrappingAlgorithm::*;

const SYMMETRIC_WRAPPING: &[WrappingAlgorithm] = &[
    RsaesPkcs1V15,
    RsaesOaepSha1,
    RsaesOaepSha256,
    RsaAesKeyWrapSha1,
    RsaAesKeyWrapSha256,
    Sm2Pke,
];
const ENVELOPE_WRAPPING: &[WrappingAlgorithm] = &[
    RsaesOaepSha256Aes256EcbPkcs7Pad,
    RsaAesKeyWrapSha1,
    RsaAesKeyWrapSha256,
];

/// The table, in `KeySpec::ALL` order.
pub static ROWS: [SpecRow; 8] = [
    SpecRow {
        spec: KeySpec::Aes256,
        material: SpecMaterial::Aes { len: 32 },
        usages: &[EncryptDecrypt],
        wrapping: SYMMETRIC_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::Sm4,
        material: SpecMaterial::Sm4 { len: 16 },
        usages: &[EncryptDecrypt],
        wrapping: SYMMETRIC_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::Rsa2048,
        material: SpecMaterial::Rsa { bits: 2048 },
        usages: &[EncryptDecrypt, SignVerify],
        wrapping: ENVELOPE_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::Rsa3072,
        material: SpecMaterial::Rsa { bits: 3072 },
        usages: &[EncryptDecrypt, SignVerify],
        wrapping: ENVELOPE_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::Rsa4096,
        material: SpecMaterial::Rsa { bits: 4096 },
        usages: &[EncryptDecrypt, SignVerify],
        wrapping: ENVELOPE_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::EcP256,
        material: SpecMaterial::Ec(Curve::P256),
        usages: &[SignVerify],
        wrapping: ENVELOPE_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::EcP256K,
        material: SpecMaterial::Ec(Curve::Secp256k1),
        usages: &[SignVerify],
        wrapping: ENVELOPE_WRAPPING,
    },
    SpecRow {
        spec: KeySpec::EcSm2,
        material: SpecMaterial::Sm2,
        usages: &[EncryptDecrypt, SignVerify],
        wrapping: &[Sm2PkeSm4Ecb],
    },
];

impl KeySpec {
    /// The spec's row of the table.
    pub fn row(self) -> &'static SpecRow {
        // The match is exhaustive, so a new spec does not compile without its row; the
        // test below checks each index names its own spec.
        let index = match self {
            KeySpec::Aes256 => 0,
            KeySpec::Sm4 => 1,
            KeySpec::Rsa2048 => 2,
            KeySpec::Rsa3072 => 3,
            KeySpec::Rsa4096 => 4,
            KeySpec::EcP256 => 5,
            KeySpec::EcP256K => 6,
            KeySpec::EcSm2 => 7,
        };
        &ROWS[index]
    }

    /// Symmetric specs and their exact material length in bytes.
    pub fn symmetric_len(self) -> Option<usize> {
        match self.row().material {
            SpecMaterial::Aes { len } | SpecMaterial::Sm4 { len } => Some(len),
            _ => None,
        }
    }

    /// RSA specs and their modulus size in bits.
    pub fn rsa_bits(self) -> Option<usize> {
        match self.row().material {
            SpecMaterial::Rsa { bits } => Some(bits),
            _ => None,
        }
    }

    /// The curve of an EC spec (SM2 is not one of `crypto::ec`'s curves).
    pub fn curve(self) -> Option<Curve> {
        match self.row().material {
            SpecMaterial::Ec(curve) => Some(curve),
            _ => None,
        }
    }

    /// Whether a key of this spec may have `usage`.
    pub fn allows(self, usage: KeyUsage) -> bool {
        self.row().usages.contains(&usage)
    }

    /// The usage a key of this spec has when it can have only one.
    pub fn only_usage(self) -> Option<KeyUsage> {
        match self.row().usages {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// Whether material of this spec can be imported with `alg`.
    pub fn accepts(self, alg: WrappingAlgorithm) -> bool {
        self.row().wrapping.contains(&alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_has_exactly_one_row_in_order() {
        assert_eq!(ROWS.len(), KeySpec::ALL.len());
        for (row, spec) in ROWS.iter().zip(KeySpec::ALL) {
            assert_eq!(row.spec, *spec);
            assert!(std::ptr::eq(spec.row(), row));
        }
    }

    #[test]
    fn the_table_says_what_the_kms_docs_say() {
        assert_eq!(KeySpec::Aes256.symmetric_len(), Some(32));
        assert_eq!(KeySpec::Sm4.symmetric_len(), Some(16));
        assert_eq!(KeySpec::Rsa3072.rsa_bits(), Some(3072));
        assert_eq!(KeySpec::EcP256K.curve(), Some(Curve::Secp256k1));
        assert_eq!(KeySpec::EcSm2.curve(), None);
        assert!(KeySpec::EcSm2.allows(KeyUsage::EncryptDecrypt));
        assert!(!KeySpec::EcP256.allows(KeyUsage::EncryptDecrypt));
        assert_eq!(KeySpec::Aes256.only_usage(), Some(EncryptDecrypt));
        assert_eq!(KeySpec::Rsa2048.only_usage(), None);
        assert!(KeySpec::Aes256.accepts(RsaesPkcs1V15));
        assert!(!KeySpec::Rsa2048.accepts(RsaesPkcs1V15));
        assert!(KeySpec::EcP256K.accepts(RsaesOaepSha256Aes256EcbPkcs7Pad));
        assert!(KeySpec::EcSm2.accepts(Sm2PkeSm4Ecb));
        assert!(!KeySpec::EcP256.accepts(Sm2PkeSm4Ecb));
        assert!(KeySpec::Sm4.accepts(Sm2Pke));
    }
}

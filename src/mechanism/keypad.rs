//! The zero padding of key material that block-cipher wraps without a padding scheme of
//! their own use (PKCS#11 3.0 §2.10.3-4 for ECB and CBC, §2.14 for `CKM_AES_KEY_WRAP`):
//! the value is padded on the trailing end with zero bytes to whole blocks, and an
//! unwrap cuts the result to the key the template describes. Used by the AES and DES
//! families; this module only pads and cuts, it must not encrypt.

use zeroize::Zeroizing;

use super::WrappedLen;
use crate::error::{Error, Result};

/// `material` with up to `block - 1` zero bytes appended to make whole blocks.
pub(super) fn zero_padded(material: &[u8], block: usize) -> Result<Zeroizing<Vec<u8>>> {
    if material.is_empty() {
        return Err(Error::KeySizeRange);
    }
    let len = material.len().div_ceil(block) * block;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(material);
    out.resize(len, 0);
    Ok(out)
}

/// Cuts a zero-padded unwrapped string to the key the template describes (§2.10.3:
/// "truncates the result according to the CKA_KEY_TYPE ... and CKA_VALUE_LEN"): the
/// template's length, a length the key type allows, or a DER private key's own length;
/// never more than `block - 1` bytes are cut.
///
/// The bytes cut are not checked to be zero, on purpose: the caller chooses the length
/// (`CKA_VALUE_LEN`), so a check would tell, for a CBC or ECB blob the caller altered,
/// whether chosen bytes of the *key* decrypt to zero, a padding oracle that recovers the
/// wrapped key byte by byte. Mode without integrity, answer without information.
pub(super) fn trim_zero_padding(
    plain: Zeroizing<Vec<u8>>,
    expected: WrappedLen,
    block: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let keep = match expected {
        WrappedLen::Exact(len) if len <= plain.len() && plain.len() - len < block => len,
        WrappedLen::Exact(_) => return Err(Error::WrappedKeyLenRange),
        WrappedLen::OneOf(lengths) if lengths.contains(&plain.len()) => plain.len(),
        // A key type of several sizes needs CKA_VALUE_LEN to cut the padding.
        WrappedLen::OneOf(_) => return Err(Error::TemplateIncomplete),
        WrappedLen::Any => plain.len(),
        WrappedLen::Encoded => crate::crypto::asn1::sequence_len(&plain)
            .filter(|len| plain.len() - len < block)
            .ok_or(Error::WrappedKeyInvalid)?,
    };
    Ok(Zeroizing::new(plain[..keep].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_reaches_whole_blocks_and_is_cut_back() {
        let padded = zero_padded(&[1, 2, 3], 8).unwrap();
        assert_eq!(&padded[..], &[1, 2, 3, 0, 0, 0, 0, 0]);
        assert_eq!(zero_padded(&[1; 16], 8).unwrap().len(), 16);
        assert!(zero_padded(&[], 8).is_err());
        let cut = trim_zero_padding(padded.clone(), WrappedLen::Exact(3), 8).unwrap();
        assert_eq!(&cut[..], &[1, 2, 3]);
        // More than a block of padding is no padding of ours.
        assert!(trim_zero_padding(padded, WrappedLen::Exact(0), 8).is_err());
    }

    #[test]
    fn a_der_key_is_cut_at_its_own_length() {
        // SEQUENCE { INTEGER 5 } and five zero bytes.
        let plain = Zeroizing::new(vec![0x30, 0x03, 0x02, 0x01, 0x05, 0, 0, 0, 0, 0]);
        let cut = trim_zero_padding(plain.clone(), WrappedLen::Encoded, 8).unwrap();
        assert_eq!(cut.len(), 5);
        assert!(trim_zero_padding(plain, WrappedLen::Encoded, 4).is_err());
    }
}

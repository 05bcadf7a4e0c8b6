//! The module's few uses of RustCrypto's `der` that are not a key structure: encoding
//! into a zeroizing buffer, the DER OCTET STRING that `CKA_EC_POINT` is, and the length
//! of the DER element at the head of padded plaintext. The key structures themselves
//! (PKCS#1, PKCS#8, SEC1, SPKI) are the `pkcs1`, `pkcs8`, `sec1` and `spki` crates' types,
//! used in `pkcs8.rs`, `rsa/` and `ec.rs`.
//!
//! Untrusted input passes through here: `der`'s decoders are strict DER (minimal
//! lengths, no indefinite form, no trailing bytes) and never panic. No PKCS#11 here.

use der::asn1::{AnyRef, OctetStringRef};
use der::{Decode, Encode, Tag, Tagged};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

fn encoding_failed(_: der::Error) -> Error {
    Error::Internal("DER encoding")
}

/// The DER of `msg` in a zeroizing buffer allocated once at the encoding's length and
/// written in place: a private key's encoding leaves no other copy on the heap.
pub fn encode_secret<T: Encode>(msg: &T) -> Result<Zeroizing<Vec<u8>>> {
    let len = msg.encoded_len().map_err(encoding_failed)?;
    let len = usize::try_from(len).map_err(encoding_failed)?;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    msg.encode_to_vec(&mut out).map_err(encoding_failed)?;
    Ok(out)
}

/// The DER of `msg` (public data).
pub fn encode<T: Encode>(msg: &T) -> Result<Vec<u8>> {
    msg.to_der().map_err(encoding_failed)
}

/// A DER OCTET STRING of `bytes`: `CKA_EC_POINT` as the module writes it.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    OctetStringRef::new(bytes)
        .and_then(|s| s.to_der())
        // Invariant: `der` refuses only contents near 4 GiB, and every caller passes a
        // public key or curve point (at most 133 bytes).
        .expect("a public key is far below DER's 4 GiB limit")
}

/// The contents of `value` if it is exactly one DER OCTET STRING.
pub fn octet_string_contents(value: &[u8]) -> Option<&[u8]> {
    <&OctetStringRef>::from_der(value)
        .ok()
        .map(OctetStringRef::as_bytes)
}

/// The length, header included, of the DER SEQUENCE at the head of `input` (`None` if
/// `input` does not start with one): what remains of a block-padded encoding once its
/// trailing padding is cut.
pub fn sequence_len(input: &[u8]) -> Option<usize> {
    let (element, rest) = AnyRef::from_der_partial(input).ok()?;
    (element.tag() == Tag::Sequence).then(|| input.len() - rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_strings_round_trip_with_long_lengths() {
        let body = vec![7u8; 300];
        let enc = octet_string(&body);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(octet_string_contents(&enc), Some(&body[..]));
        assert_eq!(octet_string(&[1, 2]), [0x04, 0x02, 1, 2]);
    }

    #[test]
    fn malformed_octet_strings_are_refused_not_panicking() {
        for c in [
            &[][..],
            &[0x04],
            &[0x04, 0x05, 1, 2],                         // short
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5],          // non-minimal length
            &[0x04, 0x85, 1, 1, 1, 1, 1],                // length of 5 bytes
            &[0x04, 0x80, 1, 0, 0],                      // indefinite length
            &[0x04, 0x01, 1, 0],                         // trailing byte
            &[0x24, 0x03, 0x04, 0x01, 1],                // constructed
            &[0x03, 0x02, 0, 1],                         // another tag
            &[0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 1, 2], // longer than the input
        ] {
            assert_eq!(octet_string_contents(c), None, "{c:?}");
        }
    }

    #[test]
    fn a_sequence_is_measured_and_its_padding_left_out() {
        assert_eq!(sequence_len(&[0x30, 0x02, 0x05, 0x00, 0, 0, 0]), Some(4));
        let long = [&[0x30, 0x81, 0x80][..], &[0u8; 0x80], &[9; 5]].concat();
        assert_eq!(sequence_len(&long), Some(0x83));
        for c in [
            &[][..],
            &[0x30],
            &[0x30, 0x03, 0x05, 0x00],      // short
            &[0x04, 0x02, 0x05, 0x00],      // not a SEQUENCE
            &[0x30, 0x81, 0x02, 0x05, 0x0], // non-minimal length
        ] {
            assert_eq!(sequence_len(c), None, "{c:?}");
        }
    }

    #[test]
    fn secrets_encode_to_exactly_their_length() {
        let enc = encode_secret(&OctetStringRef::new(&[0x5a; 40]).unwrap()).unwrap();
        assert_eq!(enc.len(), 42);
        assert_eq!(enc.capacity(), 42);
        assert_eq!(&enc[..2], &[0x04, 40]);
    }
}

//! The little DER the module needs: PKCS#1 RSA keys, PKCS#8, SEC1 EC keys, SPKI, EC
//! points and OIDs. Strict decoding (definite minimal lengths, no trailing bytes) with
//! every read bounds-checked; encoding of the same structures.
//!
//! This module parses untrusted input (wrapped keys, templates), so it must never panic
//! or index unchecked, and it must not know about PKCS#11.

use crate::error::{Error, Result};

pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;

/// A cursor over DER input. Errors are reported as `err`, chosen by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    input: &'a [u8],
    err: fn() -> Error,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8], err: fn() -> Error) -> Reader<'a> {
        Reader { input, err }
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    /// Reads one element with tag `tag` and returns its contents.
    pub fn read(&mut self, tag: u8) -> Result<&'a [u8]> {
        let bad = self.err;
        let (&t, rest) = self.input.split_first().ok_or_else(bad)?;
        if t != tag {
            return Err(bad());
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad());
            }
            let (len_bytes, tail) = rest.split_at(n);
            rest = tail;
            if len_bytes[0] == 0 {
                return Err(bad()); // not minimal
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            if len < 0x80 {
                return Err(bad()); // not minimal
            }
            len
        };
        if rest.len() < len {
            return Err(bad());
        }
        let (body, tail) = rest.split_at(len);
        self.input = tail;
        Ok(body)
    }

    /// Reads a nested element and returns a reader over its contents.
    pub fn nested(&mut self, tag: u8) -> Result<Reader<'a>> {
        let body = self.read(tag)?;
        Ok(Reader::new(body, self.err))
    }

    /// Reads an unsigned INTEGER as big-endian bytes without leading zeros.
    pub fn uint(&mut self) -> Result<&'a [u8]> {
        let body = self.read(INTEGER)?;
        match body {
            [] => Err((self.err)()),
            [b, ..] if *b & 0x80 != 0 => Err((self.err)()), // negative
            [0, rest @ ..] if rest.is_empty() => Ok(rest),
            [0, next, ..] if *next & 0x80 == 0 => Err((self.err)()), // not minimal
            [0, rest @ ..] => Ok(rest),
            _ => Ok(body),
        }
    }

    /// Reads a small INTEGER (versions).
    pub fn small_uint(&mut self) -> Result<u64> {
        let v = self.uint()?;
        if v.len() > 8 {
            return Err((self.err)());
        }
        Ok(v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Checks that nothing is left.
    pub fn finish(self) -> Result<()> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err((self.err)())
        }
    }
}

/// Encodes one element.
/// The length of the first element of `input`, which must have tag `tag`, header
/// included (`None` if it is not a well-formed element): what remains of a block-padded
/// encoding once its trailing padding is cut.
pub fn element_len(input: &[u8], tag: u8) -> Option<usize> {
    let mut r = Reader::new(input, || Error::WrappedKeyInvalid);
    r.read(tag).ok()?;
    Some(input.len() - r.input.len())
}

pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// Encodes an unsigned big-endian integer (leading zeros stripped, sign byte added).
pub fn uint(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = &be[start..];
    let mut body = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(digits);
    tlv(INTEGER, &body)
}

pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

// ---- object identifiers, as full DER elements (tag and length included)

pub const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
pub const OID_SECP256K1: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
pub const OID_SM2: &[u8] = &[0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];

#[cfg(test)]
mod tests {
    use super::*;

    fn bad() -> Error {
        Error::DataInvalid
    }

    #[test]
    fn integers_round_trip_with_sign_bytes() {
        for v in [
            &[0x01u8][..],
            &[0x80],
            &[0x00, 0x00, 0x7f],
            &[],
            &[0xff, 0x00],
        ] {
            let enc = uint(v);
            let mut r = Reader::new(&enc, bad);
            let back = r.uint().unwrap();
            let start = v.iter().position(|b| *b != 0).unwrap_or(v.len());
            assert_eq!(back, &v[start..]);
            r.finish().unwrap();
        }
    }

    #[test]
    fn long_lengths_round_trip() {
        let body = vec![7u8; 300];
        let enc = tlv(OCTET_STRING, &body);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(
            Reader::new(&enc, bad).read(OCTET_STRING).unwrap(),
            &body[..]
        );
    }

    #[test]
    fn malformed_input_is_refused_not_panicking() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x04],
            &[0x04, 0x05, 1, 2],
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5], // non-minimal length
            &[0x04, 0x85, 1, 1, 1, 1, 1],
            &[0x02, 0x02, 0x00, 0x01], // non-minimal integer
            &[0x02, 0x01, 0x80],       // negative
        ];
        for c in cases {
            let mut r = Reader::new(c, bad);
            assert!(r.read(OCTET_STRING).is_err() || r.uint().is_err(), "{c:?}");
        }
        let mut r = Reader::new(&[0x02, 0x01, 0x80], bad);
        assert!(r.uint().is_err());
    }
}

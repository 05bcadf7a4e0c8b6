//! Attribute values: their typed form, their parsing from caller bytes (by the value kind
//! of each attribute the module knows, `kind`, and the vendor attribute types), and the
//! stored record encoding.
//!
//! The stored encoding is fixed-width little-endian, independent of the host's
//! `CK_ULONG`, so a token file means the same on every machine. This module must not
//! decide which attributes an object may have; that is `policy`'s job.

use crate::ck::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result, StoreError};
use crate::vendor;

pub use crate::ids::AttrType;
use crate::ids::MechType;

/// An attribute's value as the caller sent it: bytes, or (for the template-valued
/// attributes such as `CKA_UNWRAP_TEMPLATE`) a nested list.
#[derive(Debug, Clone)]
pub enum RawValue {
    Bytes(Zeroizing<Vec<u8>>),
    Nested(Vec<RawAttribute>),
}

#[derive(Debug, Clone)]
pub struct RawAttribute {
    pub ty: AttrType,
    pub value: RawValue,
}

/// A typed attribute value.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Ulong(u64),
    Bytes(Vec<u8>),
    Mechanisms(Vec<MechType>),
    Template(Vec<(AttrType, Value)>),
}

/// Bytes are shown by their length only: a template's `CKA_VALUE` (a key) is a
/// `Value::Bytes` until the object splits its secrets off (review 22c).
impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Bool(b) => f.debug_tuple("Bool").field(b).finish(),
            Value::Ulong(v) => f.debug_tuple("Ulong").field(v).finish(),
            Value::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Value::Mechanisms(m) => f.debug_tuple("Mechanisms").field(m).finish(),
            Value::Template(t) => f.debug_tuple("Template").field(t).finish(),
        }
    }
}

/// Byte values may carry secrets on their way between the caller, the sealing layer and
/// zeroizing storage; wiping every one on drop means no such copy outlives its use.
impl Drop for Value {
    fn drop(&mut self) {
        if let Value::Bytes(b) = self {
            zeroize::Zeroize::zeroize(b);
        }
    }
}

impl Value {
    /// Parses a caller-supplied value for attribute `ty`. Wrong sizes give
    /// `AttributeValueInvalid`; unknown attribute types give `AttributeTypeInvalid`.
    pub fn parse(ty: AttrType, raw: &RawValue) -> Result<Value> {
        let kind = kind(ty).ok_or(Error::AttributeTypeInvalid)?;
        match (kind, raw) {
            (Kind::Template, RawValue::Nested(list)) => {
                let mut out = Vec::with_capacity(list.len());
                for a in list {
                    if self::kind(a.ty) == Some(Kind::Template) {
                        return Err(Error::AttributeValueInvalid);
                    }
                    out.push((a.ty, Value::parse(a.ty, &a.value)?));
                }
                Ok(Value::Template(out))
            }
            (Kind::Template, RawValue::Bytes(_)) | (_, RawValue::Nested(_)) => {
                Err(Error::AttributeValueInvalid)
            }
            (Kind::Bool, RawValue::Bytes(b)) => match b.as_slice() {
                [v] => Ok(Value::Bool(*v != 0)),
                _ => Err(Error::AttributeValueInvalid),
            },
            (Kind::Ulong, RawValue::Bytes(b)) => ulong_from_native(b).map(Value::Ulong),
            (Kind::Mechanisms, RawValue::Bytes(b)) => {
                if b.len() % ULONG_LEN != 0 {
                    return Err(Error::AttributeValueInvalid);
                }
                b.chunks(ULONG_LEN)
                    .map(|m| ulong_from_native(m).map(MechType::new))
                    .collect::<Result<Vec<_>>>()
                    .map(Value::Mechanisms)
            }
            (Kind::Date, RawValue::Bytes(b)) => {
                if b.is_empty() || (b.len() == 8 && b.iter().all(u8::is_ascii_digit)) {
                    Ok(Value::Bytes(b.to_vec()))
                } else {
                    Err(Error::AttributeValueInvalid)
                }
            }
            (Kind::Bytes, RawValue::Bytes(b)) => Ok(Value::Bytes(b.to_vec())),
        }
    }

    /// The value as `C_GetAttributeValue` returns it (host `CK_ULONG` width and order).
    /// Template values are returned by the FFI layer, which owns nested pointers.
    pub fn to_native(&self) -> Vec<u8> {
        match self {
            Value::Bool(b) => vec![u8::from(*b)],
            Value::Ulong(v) => ulong_to_native(*v),
            Value::Bytes(b) => b.clone(),
            Value::Mechanisms(list) => list.iter().flat_map(|m| ulong_to_native(m.get())).collect(),
            Value::Template(_) => Vec::new(),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_ulong(&self) -> Option<u64> {
        match self {
            Value::Ulong(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

const ULONG_LEN: usize = std::mem::size_of::<cryptoki_sys::CK_ULONG>();

fn ulong_from_native(b: &[u8]) -> Result<u64> {
    let arr: [u8; ULONG_LEN] = b.try_into().map_err(|_| Error::AttributeValueInvalid)?;
    Ok(cryptoki_sys::CK_ULONG::from_ne_bytes(arr) as u64)
}

fn ulong_to_native(v: u64) -> Vec<u8> {
    (v as cryptoki_sys::CK_ULONG).to_ne_bytes().to_vec()
}

// ---- stored encoding: [FORMAT] then entries of (type u64, tag u8, len u32, payload).

const FORMAT: u8 = 1;
const TAG_BOOL: u8 = 0;
const TAG_ULONG: u8 = 1;
const TAG_BYTES: u8 = 2;
const TAG_MECHS: u8 = 3;
const TAG_TEMPLATE: u8 = 4;

/// Encodes attributes for the store.
pub fn encode<'a>(attrs: impl IntoIterator<Item = (AttrType, &'a Value)>) -> Vec<u8> {
    let attrs: Vec<(AttrType, &Value)> = attrs.into_iter().collect();
    // Written into one buffer of its final size, with no copy on the way: the values may
    // be secret, and a buffer outgrown or a value copied out would be freed unwiped
    // (review 17c found an RSA key's private exponent left so in freed heap). The
    // caller wipes the result.
    let len = 1 + attrs.iter().map(|(_, v)| encoded_len(v)).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(FORMAT);
    for (ty, value) in attrs {
        encode_one(&mut out, ty, value);
    }
    debug_assert_eq!(out.len(), len, "encoded_len counts what encode_one writes");
    out
}

/// The bytes `encode_one` writes for one attribute: type, tag, length, payload.
fn encoded_len(value: &Value) -> usize {
    8 + 1 + 4 + payload_len(value)
}

fn payload_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 1,
        Value::Ulong(_) => 8,
        Value::Bytes(b) => b.len(),
        Value::Mechanisms(list) => 8 * list.len(),
        Value::Template(list) => list.iter().map(|(_, v)| encoded_len(v)).sum(),
    }
}

fn encode_one(out: &mut Vec<u8>, ty: AttrType, value: &Value) {
    out.extend_from_slice(&ty.get().to_le_bytes());
    out.push(match value {
        Value::Bool(_) => TAG_BOOL,
        Value::Ulong(_) => TAG_ULONG,
        Value::Bytes(_) => TAG_BYTES,
        Value::Mechanisms(_) => TAG_MECHS,
        Value::Template(_) => TAG_TEMPLATE,
    });
    // Attribute values are far below 4 GiB; the FFI layer caps input sizes.
    out.extend_from_slice(&(payload_len(value) as u32).to_le_bytes());
    match value {
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Ulong(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Mechanisms(list) => {
            for m in list {
                out.extend_from_slice(&m.get().to_le_bytes());
            }
        }
        Value::Template(list) => {
            for (t, v) in list {
                encode_one(out, *t, v);
            }
        }
    }
}

/// Decodes what `encode` produced; anything else is `StoreError::Malformed`.
pub fn decode(bytes: &[u8]) -> Result<Vec<(AttrType, Value)>> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => decode_entries(rest, 0),
        _ => Err(malformed()),
    }
}

fn malformed() -> Error {
    StoreError::Malformed("attribute record").into()
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(malformed());
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn u64_le(b: &[u8]) -> Result<u64> {
    Ok(u64::from_le_bytes(b.try_into().map_err(|_| malformed())?))
}

fn decode_entries(mut input: &[u8], depth: u8) -> Result<Vec<(AttrType, Value)>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let ty = AttrType::new(u64_le(take(&mut input, 8)?)?);
        let tag = take(&mut input, 1)?[0];
        let len_bytes: [u8; 4] = take(&mut input, 4)?.try_into().map_err(|_| malformed())?;
        let payload = take(&mut input, u32::from_le_bytes(len_bytes) as usize)?;
        let value = match tag {
            TAG_BOOL if payload.len() == 1 => Value::Bool(payload[0] != 0),
            TAG_ULONG => Value::Ulong(u64_le(payload)?),
            TAG_BYTES => Value::Bytes(payload.to_vec()),
            TAG_MECHS if payload.len() % 8 == 0 => {
                let mechs = payload.chunks(8).map(|m| u64_le(m).map(MechType::new));
                Value::Mechanisms(mechs.collect::<Result<Vec<_>>>()?)
            }
            TAG_TEMPLATE if depth == 0 => Value::Template(decode_entries(payload, 1)?),
            _ => return Err(malformed()),
        };
        out.push((ty, value));
    }
    Ok(out)
}

/// How an attribute's value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Ulong,
    Bytes,
    Date,
    Mechanisms,
    Template,
}

// The vendor attributes of the KMS key model (include/kmshsm.h).
pub(crate) const KEY_ID: AttrType = vendor::CKA_KMSHSM_KEY_ID;
pub(crate) const ORIGIN: AttrType = vendor::CKA_KMSHSM_ORIGIN;
pub(crate) const KEY_STATE: AttrType = vendor::CKA_KMSHSM_KEY_STATE;
pub(crate) const KEY_SPEC: AttrType = vendor::CKA_KMSHSM_KEY_SPEC;
pub(crate) const KEY_USAGE: AttrType = vendor::CKA_KMSHSM_KEY_USAGE;
pub(crate) const MATERIAL_EXPIRY: AttrType = vendor::CKA_KMSHSM_MATERIAL_EXPIRY;
pub(crate) const IMPORT_TARGET: AttrType = vendor::CKA_KMSHSM_IMPORT_TARGET;
pub(crate) const WRAPPING_ALGORITHM: AttrType = vendor::CKA_KMSHSM_WRAPPING_ALGORITHM;
pub(crate) const IMPORT_TOKEN: AttrType = vendor::CKA_KMSHSM_IMPORT_TOKEN;
pub(crate) const TOKEN_EXPIRY: AttrType = vendor::CKA_KMSHSM_TOKEN_EXPIRY;
pub(crate) const DESCRIPTION: AttrType = vendor::CKA_KMSHSM_DESCRIPTION;
/// Internal (never answered): the keyed fingerprint of the bound material.
pub(crate) const MATERIAL_FINGERPRINT: AttrType = vendor::KMSHSM_INTERNAL_MATERIAL_FINGERPRINT;

fn vendor_kind(ty: AttrType) -> Option<Kind> {
    match ty {
        KEY_ID | IMPORT_TARGET | IMPORT_TOKEN | DESCRIPTION => Some(Kind::Bytes),
        ORIGIN | KEY_STATE | KEY_SPEC | KEY_USAGE | MATERIAL_EXPIRY | WRAPPING_ALGORITHM
        | TOKEN_EXPIRY => Some(Kind::Ulong),
        _ => None,
    }
}

/// The encoding of `ty`, or `None` for attributes the module does not know.
pub(crate) fn kind(ty: AttrType) -> Option<Kind> {
    use Kind::*;
    if let Some(k) = vendor_kind(ty) {
        return Some(k);
    }
    Some(match ty {
        CKA_TOKEN
        | CKA_PRIVATE
        | CKA_MODIFIABLE
        | CKA_COPYABLE
        | CKA_DESTROYABLE
        | CKA_TRUSTED
        | CKA_SENSITIVE
        | CKA_ENCRYPT
        | CKA_DECRYPT
        | CKA_WRAP
        | CKA_UNWRAP
        | CKA_SIGN
        | CKA_SIGN_RECOVER
        | CKA_VERIFY
        | CKA_VERIFY_RECOVER
        | CKA_DERIVE
        | CKA_EXTRACTABLE
        | CKA_LOCAL
        | CKA_NEVER_EXTRACTABLE
        | CKA_ALWAYS_SENSITIVE
        | CKA_WRAP_WITH_TRUSTED
        | CKA_ALWAYS_AUTHENTICATE => Bool,
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_CERTIFICATE_TYPE
        | CKA_CERTIFICATE_CATEGORY
        | CKA_JAVA_MIDP_SECURITY_DOMAIN
        | CKA_NAME_HASH_ALGORITHM
        | CKA_VALUE_LEN
        | CKA_MODULUS_BITS
        | CKA_KEY_GEN_MECHANISM => Ulong,
        CKA_START_DATE | CKA_END_DATE => Date,
        CKA_ALLOWED_MECHANISMS => Mechanisms,
        CKA_WRAP_TEMPLATE | CKA_UNWRAP_TEMPLATE | CKA_DERIVE_TEMPLATE => Template,
        CKA_LABEL
        | CKA_APPLICATION
        | CKA_VALUE
        | CKA_OBJECT_ID
        | CKA_ISSUER
        | CKA_SERIAL_NUMBER
        | CKA_SUBJECT
        | CKA_ID
        | CKA_CHECK_VALUE
        | CKA_URL
        | CKA_HASH_OF_SUBJECT_PUBLIC_KEY
        | CKA_HASH_OF_ISSUER_PUBLIC_KEY
        | CKA_UNIQUE_ID
        | CKA_PUBLIC_KEY_INFO
        | CKA_MODULUS
        | CKA_PUBLIC_EXPONENT
        | CKA_PRIVATE_EXPONENT
        | CKA_PRIME_1
        | CKA_PRIME_2
        | CKA_EXPONENT_1
        | CKA_EXPONENT_2
        | CKA_COEFFICIENT
        | CKA_EC_PARAMS
        | CKA_EC_POINT => Bytes,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ck::*;

    fn raw(b: &[u8]) -> RawValue {
        RawValue::Bytes(Zeroizing::new(b.to_vec()))
    }

    /// The bytes of a record are the stored format: written in one pass now, they must be
    /// what records were always written as (type, tag, length, payload; a template's
    /// payload its entries).
    #[test]
    fn record_encoding_is_the_stored_format() {
        let template = Value::Template(vec![(CKA_TOKEN, Value::Bool(true))]);
        let mechs = Value::Mechanisms(vec![MechType::new(7)]);
        let label = Value::Bytes(b"abc".to_vec());
        let got = encode([
            (CKA_LABEL, &label),
            (CKA_ALLOWED_MECHANISMS, &mechs),
            (CKA_WRAP_TEMPLATE, &template),
        ]);
        let entry = |ty: AttrType, tag: u8, payload: &[u8]| {
            let mut e = ty.get().to_le_bytes().to_vec();
            e.push(tag);
            e.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            e.extend_from_slice(payload);
            e
        };
        let mut want = vec![FORMAT];
        want.extend(entry(CKA_LABEL, TAG_BYTES, b"abc"));
        want.extend(entry(
            CKA_ALLOWED_MECHANISMS,
            TAG_MECHS,
            &7u64.to_le_bytes(),
        ));
        want.extend(entry(
            CKA_WRAP_TEMPLATE,
            TAG_TEMPLATE,
            &entry(CKA_TOKEN, TAG_BOOL, &[1]),
        ));
        assert_eq!(got, want);
        assert_eq!(got.capacity(), got.len(), "one buffer of the final size");
    }

    #[test]
    fn record_encoding_round_trips_every_kind() {
        let attrs = vec![
            (CKA_TOKEN, Value::Bool(true)),
            (CKA_CLASS, Value::Ulong(3)),
            (CKA_LABEL, Value::Bytes(b"x".to_vec())),
            (
                CKA_ALLOWED_MECHANISMS,
                Value::Mechanisms(vec![MechType::new(1), MechType::new(2)]),
            ),
            (
                CKA_UNWRAP_TEMPLATE,
                Value::Template(vec![(CKA_SENSITIVE, Value::Bool(true))]),
            ),
        ];
        let bytes = encode(attrs.iter().map(|(t, v)| (*t, v)));
        assert_eq!(decode(&bytes).unwrap(), attrs);
    }

    #[test]
    fn truncated_or_unknown_records_are_refused() {
        let bytes = encode([(CKA_LABEL, &Value::Bytes(b"abc".to_vec()))]);
        for cut in 2..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[2]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn bool_of_wrong_length_is_invalid() {
        assert!(matches!(
            Value::parse(CKA_TOKEN, &raw(&[1, 0])),
            Err(Error::AttributeValueInvalid)
        ));
        assert_eq!(
            Value::parse(CKA_TOKEN, &raw(&[1])).unwrap(),
            Value::Bool(true)
        );
    }

    #[test]
    fn ulong_must_be_native_width() {
        assert!(Value::parse(CKA_CLASS, &raw(&[1, 0, 0, 0])).is_err());
        let v = CKO_DATA.raw().to_ne_bytes();
        assert_eq!(Value::parse(CKA_CLASS, &raw(&v)).unwrap(), Value::Ulong(0));
    }

    #[test]
    fn dates_are_empty_or_eight_digits() {
        assert!(Value::parse(CKA_START_DATE, &raw(b"20261122")).is_ok());
        assert!(Value::parse(CKA_START_DATE, &raw(b"")).is_ok());
        assert!(Value::parse(CKA_START_DATE, &raw(b"2026-11-2")).is_err());
    }

    #[test]
    fn unknown_attribute_type_is_type_invalid() {
        assert!(matches!(
            Value::parse(AttrType::new(0x7fff_0000), &raw(b"")),
            Err(Error::AttributeTypeInvalid)
        ));
    }
}

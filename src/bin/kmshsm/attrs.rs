//! Building PKCS#11 templates and reading attributes for the command line, over the
//! library's safe types (no C ABI is involved).

use kmshsm::ck::*;
use kmshsm::object::attr::{AttrType, RawAttribute, RawValue};
use kmshsm::object::Read;
use zeroize::Zeroizing;

pub(crate) fn raw(ty: AttrType, bytes: Vec<u8>) -> RawAttribute {
    RawAttribute {
        ty,
        value: RawValue::Bytes(Zeroizing::new(bytes)),
    }
}

pub(crate) fn ulong(ty: AttrType, v: u64) -> RawAttribute {
    raw(ty, (v as CK_ULONG).to_ne_bytes().to_vec())
}

pub(crate) fn boolean(ty: AttrType, v: bool) -> RawAttribute {
    raw(ty, vec![u8::from(v)])
}

pub(crate) fn bytes(ty: AttrType, v: &[u8]) -> RawAttribute {
    raw(ty, v.to_vec())
}

/// A read attribute's bytes, if it has any.
pub(crate) fn value_of(read: &Read) -> Option<&[u8]> {
    match read {
        Read::Value(v) => Some(v),
        _ => None,
    }
}

pub(crate) fn ulong_of(read: &Read) -> Option<u64> {
    let v = value_of(read)?;
    let arr: [u8; std::mem::size_of::<CK_ULONG>()] = v.try_into().ok()?;
    Some(CK_ULONG::from_ne_bytes(arr) as u64)
}

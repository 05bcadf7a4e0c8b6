//! Template rules: building a new object from a caller's template (`C_CreateObject`),
//! changing one (`C_SetAttributeValue`) and copying one (`C_CopyObject`), with the return
//! codes of PKCS#11 3.0 §5.7 and §4.1. This module checks templates against `policy`;
//! it must not decide who may see or store the result.

use std::collections::BTreeMap;

use crate::ck::*;
use zeroize::Zeroizing;

use super::attr::{AttrType, RawAttribute, Value};
use super::key::{CKK_SM2, CKK_SM4};
use super::policy::{self, Mutability};
use super::{new_uid, unique_id_of, Object, Values};
use crate::crypto::curve25519::{self, Curve25519};
use crate::crypto::curve448;
use crate::error::{Error, Result};

/// Parses a template; the same attribute twice with different values is inconsistent.
pub fn parse(template: &[RawAttribute]) -> Result<BTreeMap<AttrType, Value>> {
    let mut out = BTreeMap::new();
    for raw in template {
        let value = Value::parse(raw.ty, &raw.value)?;
        if let Some(previous) = out.insert(raw.ty, value) {
            if out.get(&raw.ty) != Some(&previous) {
                return Err(Error::TemplateInconsistent);
            }
        }
    }
    Ok(out)
}

/// Parses a search template: unknown attribute types match nothing rather than fail. An
/// attribute given twice is compared once, and given with two values matches nothing (an
/// object has one value of each): the comparisons a search makes, under the table's
/// lock for its candidates, do not grow with repeats (review 24a: 4,096 copies of one
/// 64 KiB label).
pub fn parse_search(template: &[RawAttribute]) -> Result<Option<Vec<(AttrType, Value)>>> {
    let mut out: Vec<(AttrType, Value)> = Vec::with_capacity(template.len());
    for raw in template {
        let value = match Value::parse(raw.ty, &raw.value) {
            Ok(v) => v,
            Err(Error::AttributeTypeInvalid) => return Ok(None),
            Err(e) => return Err(e),
        };
        // A look along what is kept (no map to allocate on every search): at most
        // `MAX_TEMPLATE_LEN` distinct types.
        match out.iter().find(|(ty, _)| *ty == raw.ty) {
            Some((_, seen)) if *seen == value => {}
            Some(_) => return Ok(None),
            None => out.push((raw.ty, value)),
        }
    }
    Ok(Some(out))
}

fn ulong_of(attrs: &BTreeMap<AttrType, Value>, ty: AttrType) -> Result<Option<u64>> {
    match attrs.get(&ty) {
        None => Ok(None),
        Some(v) => v.as_ulong().map(Some).ok_or(Error::AttributeValueInvalid),
    }
}

fn bytes_of(attrs: &BTreeMap<AttrType, Value>, ty: AttrType) -> Option<&[u8]> {
    attrs.get(&ty).and_then(Value::as_bytes)
}

/// Bit length of a big-endian unsigned integer.
fn bit_len(be: &[u8]) -> u64 {
    match be.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (be.len() - i) as u64 * 8 - u64::from(be[i].leading_zeros()),
    }
}

/// Ed25519 and X25519 keys (PKCS#11 3.0 §2.3.6, §2.3.7): `CKA_EC_PARAMS` must name the
/// key type's curve, the public key is 32 bytes (bare or a DER OCTET STRING), the
/// private key 32 bytes.
fn check_curve25519(
    class: ObjectClass,
    key_type: KeyType,
    attrs: &BTreeMap<AttrType, Value>,
) -> Result<()> {
    let params = bytes_of(attrs, CKA_EC_PARAMS).unwrap_or(&[]);
    if curve448::is_ed448_params(params) || curve448::is_x448_params(params) {
        return check_curve448(class, key_type, curve448::is_ed448_params(params), attrs);
    }
    let curve = Curve25519::from_params(bytes_of(attrs, CKA_EC_PARAMS).unwrap_or(&[]))?;
    let expected = match key_type {
        CKK_EC_EDWARDS => Curve25519::Edwards,
        _ => Curve25519::Montgomery,
    };
    if curve != expected {
        return Err(Error::TemplateInconsistent);
    }
    match class {
        CKO_PUBLIC_KEY => {
            curve25519::public_from_attribute(bytes_of(attrs, CKA_EC_POINT).unwrap_or(&[]))?;
        }
        _ => {
            if bytes_of(attrs, CKA_VALUE).map(<[u8]>::len) != Some(curve25519::KEY_LEN) {
                return Err(Error::AttributeValueInvalid);
            }
        }
    }
    Ok(())
}

/// Ed448 and X448 keys (§2.3.6, §2.3.7 with RFC 8032 §5.2.5 and RFC 7748 §5):
/// `CKA_EC_PARAMS` must name the key type's curve (edwards448 for `CKK_EC_EDWARDS`,
/// curve448 for `CKK_EC_MONTGOMERY`); the public key is 57 or 56 bytes (bare or a DER
/// OCTET STRING), the private key as long. Without libcrypto.so.3 no such key is made:
/// `CKR_CURVE_NOT_SUPPORTED`, as for any curve the module cannot use.
fn check_curve448(
    class: ObjectClass,
    key_type: KeyType,
    edwards: bool,
    attrs: &BTreeMap<AttrType, Value>,
) -> Result<()> {
    if edwards != (key_type == CKK_EC_EDWARDS) {
        return Err(Error::TemplateInconsistent);
    }
    if !curve448::available() {
        return Err(Error::CurveNotSupported);
    }
    let point = bytes_of(attrs, CKA_EC_POINT).unwrap_or(&[]);
    let len = if edwards {
        curve448::ED448_KEY_LEN
    } else {
        curve448::X448_KEY_LEN
    };
    match class {
        CKO_PUBLIC_KEY if edwards => {
            curve448::public_from_attribute::<{ curve448::ED448_KEY_LEN }>(point)?;
        }
        CKO_PUBLIC_KEY => {
            curve448::public_from_attribute::<{ curve448::X448_KEY_LEN }>(point)?;
        }
        _ => {
            if bytes_of(attrs, CKA_VALUE).map(<[u8]>::len) != Some(len) {
                return Err(Error::AttributeValueInvalid);
            }
        }
    }
    Ok(())
}

/// Checks class-specific values and fills the attributes derived from them.
fn check_values(
    class: ObjectClass,
    key_type: Option<KeyType>,
    attrs: &mut BTreeMap<AttrType, Value>,
) -> Result<()> {
    match (class, key_type) {
        (CKO_SECRET_KEY, Some(kt)) => {
            let len = bytes_of(attrs, CKA_VALUE).map_or(0, <[u8]>::len) as u64;
            let ok = match kt {
                CKK_AES => matches!(len, 16 | 24 | 32),
                CKK_SM4 => len == 16,
                CKK_DES => len == 8,
                CKK_DES2 => len == 16,
                CKK_DES3 => len == 24,
                _ => len > 0,
            };
            if !ok {
                return Err(Error::AttributeValueInvalid);
            }
            // DES keys must have their parity bits set (PKCS#11 3.0: creating or
            // unwrapping one of incorrect parity is an error).
            if matches!(kt, CKK_DES | CKK_DES2 | CKK_DES3)
                && !crate::crypto::des::has_odd_parity(bytes_of(attrs, CKA_VALUE).unwrap_or(&[]))
            {
                return Err(Error::AttributeValueInvalid);
            }
            match ulong_of(attrs, CKA_VALUE_LEN)? {
                Some(given) if given != len => return Err(Error::TemplateInconsistent),
                _ => {}
            }
            attrs.insert(CKA_VALUE_LEN, Value::Ulong(len));
        }
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, Some(CKK_RSA)) => {
            let bits = bit_len(bytes_of(attrs, CKA_MODULUS).unwrap_or(&[]));
            if bits == 0 || bit_len(bytes_of(attrs, CKA_PUBLIC_EXPONENT).unwrap_or(&[1])) == 0 {
                return Err(Error::AttributeValueInvalid);
            }
            if class == CKO_PUBLIC_KEY {
                match ulong_of(attrs, CKA_MODULUS_BITS)? {
                    Some(given) if given != bits => return Err(Error::TemplateInconsistent),
                    _ => {}
                }
                attrs.insert(CKA_MODULUS_BITS, Value::Ulong(bits));
            }
        }
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, Some(CKK_EC | CKK_SM2)) => {
            let params_ok = bytes_of(attrs, CKA_EC_PARAMS).is_some_and(|p| p.len() >= 2);
            let point_ok = class == CKO_PRIVATE_KEY
                || bytes_of(attrs, CKA_EC_POINT).is_some_and(|p| !p.is_empty());
            let value_ok = class == CKO_PUBLIC_KEY
                || bytes_of(attrs, CKA_VALUE).is_some_and(|v| !v.is_empty());
            if !(params_ok && point_ok && value_ok) {
                return Err(Error::AttributeValueInvalid);
            }
            // An SM2 public key must be a point of the curve: refused here, not at each
            // use (review 23b).
            if (class, key_type) == (CKO_PUBLIC_KEY, Some(CKK_SM2)) {
                let point = crate::crypto::ec::point_from_attribute(
                    bytes_of(attrs, CKA_EC_POINT).unwrap_or(&[]),
                );
                crate::crypto::sm::sm2_check_public(&point)
                    .map_err(|_| Error::AttributeValueInvalid)?;
            }
        }
        (
            CKO_PUBLIC_KEY | CKO_PRIVATE_KEY,
            Some(key_type @ (CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)),
        ) => {
            check_curve25519(class, key_type, attrs)?;
        }
        (CKO_CERTIFICATE, _) => {
            if ulong_of(attrs, CKA_CERTIFICATE_TYPE)? != Some(CKC_X_509 as u64) {
                return Err(Error::AttributeValueInvalid);
            }
            if policy::X509_REQUIRED
                .iter()
                .any(|ty| !attrs.contains_key(ty))
            {
                return Err(Error::TemplateIncomplete);
            }
        }
        _ => {}
    }
    Ok(())
}

/// What kind of call is creating the object; it decides the provenance attributes
/// (`CKA_LOCAL`, `CKA_KEY_GEN_MECHANISM`, `CKA_ALWAYS_SENSITIVE`,
/// `CKA_NEVER_EXTRACTABLE`, PKCS#11 3.0 §4.7-4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// `C_CreateObject`: the caller supplied the values.
    Supplied,
    /// `C_GenerateKey` / `C_GenerateKeyPair` with this mechanism.
    Generated(MechType),
    /// `C_UnwrapKey`: the material came from outside, encrypted.
    Unwrapped,
    /// `C_DeriveKey` from a base key with these provenance flags.
    Derived {
        always_sensitive: bool,
        never_extractable: bool,
    },
    /// `C_CreateObject` of an EXTERNAL KMS key without material: it waits for an
    /// import (PendingImport), so no key value is required yet.
    Pending,
}

/// Builds a new object from a `C_CreateObject` template.
pub fn build(
    template: &[RawAttribute],
    provenance: Provenance,
    module: Vec<(AttrType, Value)>,
) -> Result<Object> {
    let given = parse(template)?;
    let class = ulong_of(&given, CKA_CLASS)?
        .map(ObjectClass::new)
        .ok_or(Error::TemplateIncomplete)?;
    build_from(class, given, module, provenance)
}

/// Builds a key made by the module: `class` and `key_type` are fixed by the mechanism,
/// `module` holds the values the module computed (key material and derived values). A
/// template that names one of those with another value is inconsistent.
pub(crate) fn build_key(
    class: ObjectClass,
    key_type: KeyType,
    template: &[RawAttribute],
    module: Vec<(AttrType, Value)>,
    provenance: Provenance,
) -> Result<Object> {
    let given = parse(template)?;
    let mut module = module;
    module.push((CKA_CLASS, Value::Ulong(class.get())));
    module.push((CKA_KEY_TYPE, Value::Ulong(key_type.get())));
    build_from(class, given, module, provenance)
}

/// Builds an object from the caller's attributes (`given`, checked against what a
/// caller may set) and the module's (`module`, trusted; a caller value that differs
/// from one of them is inconsistent).
fn build_from(
    class: ObjectClass,
    mut given: BTreeMap<AttrType, Value>,
    module: Vec<(AttrType, Value)>,
    provenance: Provenance,
) -> Result<Object> {
    for ty in given.keys() {
        if policy::mutability(class, *ty) == Mutability::ModuleOnly {
            return Err(Error::AttributeReadOnly);
        }
    }
    for (ty, value) in module {
        if given.get(&ty).is_some_and(|v| *v != value) {
            return Err(Error::TemplateInconsistent);
        }
        given.insert(ty, value);
    }
    if !matches!(
        class,
        CKO_DATA | CKO_CERTIFICATE | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY
    ) {
        return Err(Error::AttributeValueInvalid);
    }
    let is_key = matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY);
    let key_type = match ulong_of(&given, CKA_KEY_TYPE)? {
        Some(kt) if is_key => {
            if !policy::key_type_supported(class, KeyType::new(kt)) {
                return Err(Error::AttributeValueInvalid);
            }
            Some(KeyType::new(kt))
        }
        Some(_) => return Err(Error::AttributeTypeInvalid),
        None if is_key => return Err(Error::TemplateIncomplete),
        None => None,
    };
    for ty in given.keys() {
        if !policy::carries(class, key_type, *ty) {
            return Err(Error::AttributeTypeInvalid);
        }
    }
    if provenance != Provenance::Pending {
        if policy::required(class, key_type)
            .iter()
            .any(|ty| !given.contains_key(ty))
        {
            return Err(Error::TemplateIncomplete);
        }
        check_values(class, key_type, &mut given)?;
    } else if !given.contains_key(&CKA_KEY_TYPE) {
        return Err(Error::TemplateIncomplete);
    }

    let mut attrs = BTreeMap::new();
    for (ty, v) in policy::defaults(class, key_type) {
        attrs.insert(ty, v);
    }
    attrs.extend(given);
    let uid = new_uid()?;
    attrs.insert(CKA_UNIQUE_ID, Value::Bytes(unique_id_of(&uid)));
    if is_key {
        let flag = |attrs: &BTreeMap<AttrType, Value>, ty| {
            attrs.get(&ty).and_then(Value::as_bool).unwrap_or(false)
        };
        let sensitive = flag(&attrs, CKA_SENSITIVE);
        let extractable = flag(&attrs, CKA_EXTRACTABLE);
        let (local, mechanism, always_sensitive, never_extractable) = match provenance {
            Provenance::Supplied | Provenance::Unwrapped | Provenance::Pending => {
                (false, CK_UNAVAILABLE_INFORMATION as u64, false, false)
            }
            Provenance::Generated(m) => (true, m.get(), sensitive, !extractable),
            Provenance::Derived {
                always_sensitive,
                never_extractable,
            } => (
                false,
                CK_UNAVAILABLE_INFORMATION as u64,
                always_sensitive && sensitive,
                never_extractable && !extractable,
            ),
        };
        attrs.insert(CKA_LOCAL, Value::Bool(local));
        attrs.insert(CKA_KEY_GEN_MECHANISM, Value::Ulong(mechanism));
        if class != CKO_PUBLIC_KEY {
            attrs.insert(CKA_ALWAYS_SENSITIVE, Value::Bool(always_sensitive));
            attrs.insert(CKA_NEVER_EXTRACTABLE, Value::Bool(never_extractable));
        }
    }
    assemble(uid, class, attrs)
}

/// The object with `values` added or replaced (the module's own changes: vendor
/// attributes, imported or wiped material). `all` holds its current attributes.
pub(crate) fn merge(
    object: &Object,
    all: Values,
    values: Vec<(AttrType, Value)>,
) -> Result<Object> {
    let (mut attrs, secrets) = all;
    attrs.extend(
        secrets
            .into_iter()
            .map(|(t, v)| (t, Value::Bytes(v.to_vec()))),
    );
    attrs.extend(values);
    assemble(object.uid, object.class, attrs)
}

/// Splits attributes into plain and sealed ones and makes the object.
fn assemble(
    uid: crate::store::ObjectUid,
    class: ObjectClass,
    mut attrs: BTreeMap<AttrType, Value>,
) -> Result<Object> {
    let private = attrs
        .get(&CKA_PRIVATE)
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let secret_types: Vec<AttrType> = attrs
        .keys()
        .copied()
        .filter(|ty| policy::sealed_at_rest(class, private, *ty))
        .collect();
    let mut secrets = BTreeMap::new();
    for ty in secret_types {
        if let Some(Value::Bytes(b)) = attrs.get_mut(&ty) {
            secrets.insert(ty, Zeroizing::new(std::mem::take(b)));
        }
        attrs.remove(&ty);
    }
    Object::new(uid, attrs, secrets)
}

fn check_change(class: ObjectClass, ty: AttrType, old: Option<&Value>, new: &Value) -> Result<()> {
    let allowed = match policy::mutability(class, ty) {
        Mutability::ModuleOnly | Mutability::Fixed => false,
        Mutability::Free => true,
        Mutability::OnlyToTrue => new.as_bool() == Some(true) || old == Some(new),
        Mutability::OnlyToFalse => new.as_bool() == Some(false) || old == Some(new),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::AttributeReadOnly)
    }
}

/// The object after `C_SetAttributeValue` with `template`. `all` holds the object's
/// current attributes and opened secrets.
/// The result is judged as `object` was read (`Object::judged_as`).
pub fn apply(object: &Object, all: Values, template: &[RawAttribute]) -> Result<Object> {
    if object.bool_attr(CKA_MODIFIABLE) == Some(false) {
        return Err(Error::ActionProhibited);
    }
    let changes = parse(template)?;
    let (mut attrs, secrets) = all;
    for (ty, new) in &changes {
        if !policy::carries(object.class, object.key_type, *ty) {
            return Err(Error::AttributeTypeInvalid);
        }
        let old = attrs.get(ty);
        check_change(object.class, *ty, old, new)?;
    }
    attrs.extend(
        secrets
            .into_iter()
            .map(|(t, v)| (t, Value::Bytes(v.to_vec()))),
    );
    attrs.extend(changes);
    Ok(assemble(object.uid, object.class, attrs)?.judged_as(object))
}

/// The new object made by `C_CopyObject` with `template`, judged as `object` was read.
pub fn copy(object: &Object, all: Values, template: &[RawAttribute]) -> Result<Object> {
    if object.bool_attr(CKA_COPYABLE) == Some(false) {
        return Err(Error::ActionProhibited);
    }
    let changes = parse(template)?;
    let (mut attrs, secrets) = all;
    for (ty, new) in &changes {
        if !policy::carries(object.class, object.key_type, *ty) {
            return Err(Error::AttributeTypeInvalid);
        }
        // §5.7 C_CopyObject: the storage attributes may change in the copy, the rest
        // as C_SetAttributeValue allows.
        let storage = matches!(*ty, CKA_TOKEN | CKA_PRIVATE);
        let narrowing = *ty == CKA_MODIFIABLE && new.as_bool() == Some(false);
        if !(storage || narrowing) {
            check_change(object.class, *ty, attrs.get(ty), new)?;
        }
    }
    attrs.extend(
        secrets
            .into_iter()
            .map(|(t, v)| (t, Value::Bytes(v.to_vec()))),
    );
    attrs.extend(changes);
    let uid = new_uid()?;
    attrs.insert(CKA_UNIQUE_ID, Value::Bytes(unique_id_of(&uid)));
    Ok(assemble(uid, object.class, attrs)?.judged_as(object))
}

#[cfg(test)]
mod tests {
    use super::super::attr::RawValue;
    use super::*;

    fn ulong(ty: AttrType, v: CK_ULONG) -> RawAttribute {
        RawAttribute {
            ty,
            value: RawValue::Bytes(Zeroizing::new(v.to_ne_bytes().to_vec())),
        }
    }
    fn bytes(ty: AttrType, v: &[u8]) -> RawAttribute {
        RawAttribute {
            ty,
            value: RawValue::Bytes(Zeroizing::new(v.to_vec())),
        }
    }
    fn boolean(ty: AttrType, v: bool) -> RawAttribute {
        bytes(ty, &[u8::from(v)])
    }
    fn aes(len: usize) -> Vec<RawAttribute> {
        vec![
            ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
            ulong(CKA_KEY_TYPE, CKK_AES.raw()),
            bytes(CKA_VALUE, &vec![7; len]),
        ]
    }

    #[test]
    fn a_search_compares_a_repeated_attribute_once_and_two_values_of_one_match_nothing() {
        let label = |v: &[u8]| bytes(CKA_LABEL, v);
        let once = parse_search(&[label(b"a"), ulong(CKA_CLASS, 3), label(b"a"), label(b"a")])
            .unwrap()
            .unwrap();
        assert_eq!(
            once,
            vec![
                (CKA_LABEL, Value::Bytes(b"a".to_vec())),
                (CKA_CLASS, Value::Ulong(3))
            ]
        );
        assert_eq!(parse_search(&[label(b"a"), label(b"b")]).unwrap(), None);
    }

    #[test]
    fn aes_key_gets_defaults_and_sealed_value() {
        let o = build(&aes(32), Provenance::Supplied, vec![]).unwrap();
        assert_eq!(o.class, CKO_SECRET_KEY);
        assert_eq!(o.bool_attr(CKA_PRIVATE), Some(true));
        assert_eq!(o.bool_attr(CKA_LOCAL), Some(false));
        assert_eq!(o.value(CKA_VALUE_LEN), Some(&Value::Ulong(32)));
        assert!(
            o.value(CKA_VALUE).is_none(),
            "value is held apart as a secret"
        );
        assert!(o.has(CKA_VALUE));
    }

    #[test]
    fn aes_key_of_fifteen_bytes_is_invalid() {
        assert!(matches!(
            build(&aes(15), Provenance::Supplied, vec![]),
            Err(Error::AttributeValueInvalid)
        ));
    }

    #[test]
    fn missing_class_or_key_type_is_incomplete() {
        assert!(matches!(
            build(&[], Provenance::Supplied, vec![]),
            Err(Error::TemplateIncomplete)
        ));
        let t2 = vec![
            ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
            bytes(CKA_VALUE, &[1; 16]),
        ];
        assert!(matches!(
            build(&t2, Provenance::Supplied, vec![]),
            Err(Error::TemplateIncomplete)
        ));
    }

    #[test]
    fn conflicting_duplicate_is_inconsistent() {
        let mut t2 = aes(16);
        t2.push(ulong(CKA_CLASS, CKO_DATA.raw()));
        assert!(matches!(
            build(&t2, Provenance::Supplied, vec![]),
            Err(Error::TemplateInconsistent)
        ));
    }

    #[test]
    fn value_len_disagreeing_with_value_is_inconsistent() {
        let mut t2 = aes(16);
        t2.push(ulong(CKA_VALUE_LEN, 32));
        assert!(matches!(
            build(&t2, Provenance::Supplied, vec![]),
            Err(Error::TemplateInconsistent)
        ));
    }

    #[test]
    fn module_only_attribute_in_template_is_read_only() {
        let mut t2 = aes(16);
        t2.push(boolean(CKA_LOCAL, true));
        assert!(matches!(
            build(&t2, Provenance::Supplied, vec![]),
            Err(Error::AttributeReadOnly)
        ));
    }

    #[test]
    fn attribute_foreign_to_the_class_is_type_invalid() {
        let t2 = vec![ulong(CKA_CLASS, CKO_DATA.raw()), bytes(CKA_MODULUS, &[1])];
        assert!(matches!(
            build(&t2, Provenance::Supplied, vec![]),
            Err(Error::AttributeTypeInvalid)
        ));
    }

    #[test]
    fn sensitive_goes_only_to_true_and_extractable_only_to_false() {
        let o = build(&aes(16), Provenance::Supplied, vec![]).unwrap();
        let all = || o.all_values("s", None).unwrap();
        assert!(apply(&o, all(), &[boolean(CKA_SENSITIVE, true)]).is_ok());
        assert!(apply(&o, all(), &[boolean(CKA_EXTRACTABLE, false)]).is_ok());
        let s = apply(&o, all(), &[boolean(CKA_SENSITIVE, true)]).unwrap();
        let all_s = s.all_values("s", None).unwrap();
        assert!(matches!(
            apply(&s, all_s, &[boolean(CKA_SENSITIVE, false)]),
            Err(Error::AttributeReadOnly)
        ));
        assert!(matches!(
            apply(&o, all(), &[ulong(CKA_CLASS, CKO_DATA.raw())]),
            Err(Error::AttributeReadOnly)
        ));
    }

    #[test]
    fn unmodifiable_object_refuses_changes() {
        let mut t2 = aes(16);
        t2.push(boolean(CKA_MODIFIABLE, false));
        let o = build(&t2, Provenance::Supplied, vec![]).unwrap();
        let all = o.all_values("s", None).unwrap();
        assert!(matches!(
            apply(&o, all, &[bytes(CKA_LABEL, b"x")]),
            Err(Error::ActionProhibited)
        ));
    }

    #[test]
    fn copy_gets_a_new_unique_id_and_may_change_token() {
        let o = build(&aes(16), Provenance::Supplied, vec![]).unwrap();
        let c = copy(
            &o,
            o.all_values("s", None).unwrap(),
            &[boolean(CKA_TOKEN, true)],
        )
        .unwrap();
        assert_ne!(c.uid, o.uid);
        assert_ne!(c.value(CKA_UNIQUE_ID), o.value(CKA_UNIQUE_ID));
        assert!(c.is_token());
    }

    #[test]
    fn rsa_public_key_gets_modulus_bits() {
        let t2 = vec![
            ulong(CKA_CLASS, CKO_PUBLIC_KEY.raw()),
            ulong(CKA_KEY_TYPE, CKK_RSA.raw()),
            bytes(CKA_MODULUS, &[0x00, 0x80, 0, 0]),
            bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
        ];
        let o = build(&t2, Provenance::Supplied, vec![]).unwrap();
        assert_eq!(o.value(CKA_MODULUS_BITS), Some(&Value::Ulong(24)));
    }
}

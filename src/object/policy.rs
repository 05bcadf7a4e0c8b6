//! The attribute policy table: for every attribute the module knows, which object
//! classes carry it, whether it is secret, and how it may change (its value kind is
//! `attr`'s, which decodes by it).
//!
//! One place answers "may this attribute be here, be read, be set?" (PKCS#11 3.0 §4 and
//! the per-mechanism key attribute tables). This module holds rules only; it must not
//! touch objects, sessions or the store.

use crate::ck::*;

// The value kinds and the vendor attribute types live with the values (`attr`); named
// here too, where most users look for them.
pub(crate) use super::attr::{
    kind, DESCRIPTION, IMPORT_TARGET, IMPORT_TOKEN, KEY_ID, KEY_SPEC, KEY_STATE, KEY_USAGE,
    MATERIAL_EXPIRY, MATERIAL_FINGERPRINT, ORIGIN, TOKEN_EXPIRY, WRAPPING_ALGORITHM,
};
use super::attr::{AttrType, Value};
use super::key::{CKK_SM2, CKK_SM4};

/// How an attribute may change once the object exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutability {
    /// Set by the module only; a template naming it gets `CKR_ATTRIBUTE_READ_ONLY`.
    ModuleOnly,
    /// Given at creation (or defaulted), read-only afterwards.
    Fixed,
    /// `C_SetAttributeValue` may change it freely.
    Free,
    /// May change from false to true only (`CKA_SENSITIVE`, `CKA_WRAP_WITH_TRUSTED`).
    OnlyToTrue,
    /// May change from true to false only (`CKA_EXTRACTABLE`, `CKA_COPYABLE`, ...).
    OnlyToFalse,
}

const KMS_KEY: &[AttrType] = &[
    KEY_ID,
    ORIGIN,
    KEY_STATE,
    KEY_SPEC,
    KEY_USAGE,
    MATERIAL_EXPIRY,
    DESCRIPTION,
    // Internal: callers can neither read nor write it (it has no kind), but the
    // module's own values may carry it onto every object of a key.
    MATERIAL_FINGERPRINT,
];
const KMS_WRAPPING: &[AttrType] = &[
    IMPORT_TARGET,
    WRAPPING_ALGORITHM,
    IMPORT_TOKEN,
    TOKEN_EXPIRY,
];

/// The usage flags of PKCS#11 keys, each naming one kind of use: the seven a use is
/// judged on (`KEY_USES`), then the two recover forms, set and cleared with them.
pub(crate) const USAGE_FLAGS: [AttrType; 9] = [
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
    CKA_SIGN_RECOVER,
    CKA_VERIFY_RECOVER,
];

/// The usage flags a use of a key is judged on (`mechanism::Usage`), and that a derived
/// key has only when its template asks for them.
pub(crate) const KEY_USES: &[AttrType] = USAGE_FLAGS.split_at(7).0;

const COMMON: &[AttrType] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_LABEL,
    CKA_UNIQUE_ID,
];
const DATA: &[AttrType] = &[CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE];
const CERTIFICATE: &[AttrType] = &[
    CKA_CERTIFICATE_TYPE,
    CKA_TRUSTED,
    CKA_CERTIFICATE_CATEGORY,
    CKA_CHECK_VALUE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_PUBLIC_KEY_INFO,
    CKA_SUBJECT,
    CKA_ID,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_VALUE,
    CKA_URL,
    CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
    CKA_HASH_OF_ISSUER_PUBLIC_KEY,
    CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_NAME_HASH_ALGORITHM,
];
const KEY: &[AttrType] = &[
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_DERIVE,
    CKA_LOCAL,
    CKA_KEY_GEN_MECHANISM,
    CKA_ALLOWED_MECHANISMS,
];
const PUBLIC_KEY: &[AttrType] = &[
    CKA_SUBJECT,
    CKA_ENCRYPT,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_PUBLIC_KEY_INFO,
];
const PRIVATE_KEY: &[AttrType] = &[
    CKA_SUBJECT,
    CKA_SENSITIVE,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_UNWRAP_TEMPLATE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_PUBLIC_KEY_INFO,
    CKA_DERIVE_TEMPLATE,
];
const SECRET_KEY: &[AttrType] = &[
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_CHECK_VALUE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_VALUE,
    CKA_VALUE_LEN,
];
const RSA_PUBLIC: &[AttrType] = &[CKA_MODULUS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT];
const RSA_PRIVATE: &[AttrType] = &[
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
];
const EC_PUBLIC: &[AttrType] = &[CKA_EC_PARAMS, CKA_EC_POINT];
const EC_PRIVATE: &[AttrType] = &[CKA_EC_PARAMS, CKA_VALUE];
/// SM2 private keys also keep their public point: the signature's Z_A needs it.
const SM2_PRIVATE: &[AttrType] = &[CKA_EC_PARAMS, CKA_VALUE, CKA_EC_POINT];

/// Key types the object layer accepts, by class.
pub(crate) fn key_type_supported(class: ObjectClass, key_type: KeyType) -> bool {
    match class {
        CKO_SECRET_KEY => {
            matches!(
                key_type,
                CKK_AES
                    | CKK_GENERIC_SECRET
                    | CKK_SHA_1_HMAC
                    | CKK_SHA224_HMAC
                    | CKK_SHA256_HMAC
                    | CKK_SHA384_HMAC
                    | CKK_SHA512_HMAC
                    | CKK_SM4
                    | CKK_HKDF
            ) || (matches!(key_type, CKK_DES | CKK_DES2 | CKK_DES3) && crate::legacy::enabled())
        }
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => matches!(
            key_type,
            CKK_RSA | CKK_EC | CKK_SM2 | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY
        ),
        _ => false,
    }
}

/// Whether objects of `class` (and `key_type`, for keys) carry attribute `ty`.
pub(crate) fn carries(class: ObjectClass, key_type: Option<KeyType>, ty: AttrType) -> bool {
    let is_key = matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY);
    if KMS_KEY.contains(&ty) {
        return is_key;
    }
    if KMS_WRAPPING.contains(&ty) {
        return matches!(class, CKO_PRIVATE_KEY | CKO_PUBLIC_KEY);
    }
    if COMMON.contains(&ty) {
        return true;
    }
    let in_all = |lists: &[&[AttrType]]| lists.iter().any(|l| l.contains(&ty));
    match (class, key_type) {
        (CKO_DATA, _) => in_all(&[DATA]),
        (CKO_CERTIFICATE, _) => in_all(&[CERTIFICATE]),
        (CKO_SECRET_KEY, _) => in_all(&[KEY, SECRET_KEY]),
        (CKO_PUBLIC_KEY, Some(CKK_RSA)) => in_all(&[KEY, PUBLIC_KEY, RSA_PUBLIC]),
        (CKO_PUBLIC_KEY, Some(CKK_EC | CKK_SM2 | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)) => {
            in_all(&[KEY, PUBLIC_KEY, EC_PUBLIC])
        }
        (CKO_PRIVATE_KEY, Some(CKK_RSA)) => in_all(&[KEY, PRIVATE_KEY, RSA_PRIVATE]),
        (CKO_PRIVATE_KEY, Some(CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)) => {
            in_all(&[KEY, PRIVATE_KEY, EC_PRIVATE])
        }
        (CKO_PRIVATE_KEY, Some(CKK_SM2)) => in_all(&[KEY, PRIVATE_KEY, SM2_PRIVATE]),
        _ => false,
    }
}

/// Attributes a template must give for an object of this class and key type.
pub(crate) fn required(class: ObjectClass, key_type: Option<KeyType>) -> &'static [AttrType] {
    match (class, key_type) {
        (CKO_CERTIFICATE, _) => &[CKA_CERTIFICATE_TYPE],
        (CKO_SECRET_KEY, _) => &[CKA_KEY_TYPE, CKA_VALUE],
        (CKO_PUBLIC_KEY, Some(CKK_RSA)) => &[CKA_KEY_TYPE, CKA_MODULUS, CKA_PUBLIC_EXPONENT],
        (CKO_PUBLIC_KEY, Some(CKK_EC | CKK_SM2 | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)) => {
            &[CKA_KEY_TYPE, CKA_EC_PARAMS, CKA_EC_POINT]
        }
        (CKO_PRIVATE_KEY, Some(CKK_RSA)) => &[CKA_KEY_TYPE, CKA_MODULUS, CKA_PRIVATE_EXPONENT],
        (CKO_PRIVATE_KEY, Some(CKK_EC | CKK_SM2 | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY)) => {
            &[CKA_KEY_TYPE, CKA_EC_PARAMS, CKA_VALUE]
        }
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, _) => &[CKA_KEY_TYPE],
        _ => &[],
    }
}

/// X.509 certificates also need a subject and a value (PKCS#11 3.0 §4.6.3).
pub(crate) const X509_REQUIRED: &[AttrType] = &[CKA_SUBJECT, CKA_VALUE];

/// Whether the attribute holds secret material: sealed at rest, and unreadable when the
/// key is sensitive or unextractable. `CKA_VALUE` of a private data object or certificate
/// is sealed too (see `sealed_at_rest`) but readable by its logged-in owner.
pub(crate) fn is_key_secret(class: ObjectClass, ty: AttrType) -> bool {
    match class {
        CKO_SECRET_KEY => ty == CKA_VALUE,
        CKO_PRIVATE_KEY => matches!(
            ty,
            CKA_VALUE
                | CKA_PRIVATE_EXPONENT
                | CKA_PRIME_1
                | CKA_PRIME_2
                | CKA_EXPONENT_1
                | CKA_EXPONENT_2
                | CKA_COEFFICIENT
        ),
        _ => false,
    }
}

/// Whether the attribute is kept sealed under the token master key on disk.
pub(crate) fn sealed_at_rest(class: ObjectClass, private: bool, ty: AttrType) -> bool {
    is_key_secret(class, ty) || (private && ty == CKA_VALUE)
}

/// How `ty` may change on an existing object of `class`.
pub(crate) fn mutability(class: ObjectClass, ty: AttrType) -> Mutability {
    use Mutability::*;
    match ty {
        // The key state changes only through the KMS lifecycle (token::kms), which
        // handles it before these rules; everything else the module sets itself. The
        // import target and wrapping algorithm are GetParametersForImport's request, which
        // the module writes on the pair it makes: on no object may a caller set them.
        KEY_ID | KEY_STATE | MATERIAL_EXPIRY | IMPORT_TOKEN | TOKEN_EXPIRY
        | MATERIAL_FINGERPRINT | IMPORT_TARGET | WRAPPING_ALGORITHM => return ModuleOnly,
        ORIGIN | KEY_SPEC | KEY_USAGE => return Fixed,
        DESCRIPTION => return Free,
        _ => {}
    }
    match ty {
        CKA_LOCAL
        | CKA_ALWAYS_SENSITIVE
        | CKA_NEVER_EXTRACTABLE
        | CKA_KEY_GEN_MECHANISM
        | CKA_UNIQUE_ID => ModuleOnly,
        CKA_LABEL | CKA_ID | CKA_START_DATE | CKA_END_DATE | CKA_DERIVE | CKA_ENCRYPT
        | CKA_DECRYPT | CKA_SIGN | CKA_VERIFY | CKA_SIGN_RECOVER | CKA_VERIFY_RECOVER
        | CKA_WRAP | CKA_UNWRAP | CKA_SUBJECT | CKA_APPLICATION | CKA_OBJECT_ID | CKA_ISSUER
        | CKA_SERIAL_NUMBER => Free,
        CKA_VALUE if class == CKO_DATA => Free,
        CKA_SENSITIVE | CKA_WRAP_WITH_TRUSTED => OnlyToTrue,
        CKA_EXTRACTABLE | CKA_COPYABLE | CKA_DESTROYABLE => OnlyToFalse,
        _ => Fixed,
    }
}

/// Defaults filled in when a template leaves an attribute out.
pub(crate) fn defaults(class: ObjectClass, key_type: Option<KeyType>) -> Vec<(AttrType, Value)> {
    let b = |ty: AttrType, v: bool| (ty, Value::Bool(v));
    let bytes = |ty: AttrType| (ty, Value::Bytes(Vec::new()));
    let is_key = matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY);
    let mut out = vec![
        b(CKA_TOKEN, false),
        b(CKA_PRIVATE, is_key),
        b(CKA_MODIFIABLE, true),
        b(CKA_COPYABLE, true),
        b(CKA_DESTROYABLE, true),
        bytes(CKA_LABEL),
    ];
    let key_common = |out: &mut Vec<(AttrType, Value)>| {
        out.extend([
            bytes(CKA_ID),
            bytes(CKA_START_DATE),
            bytes(CKA_END_DATE),
            b(CKA_DERIVE, false),
            // An empty list: no restriction. PKCS#11 3.0 §4.7 gives no default, and
            // leaving the attribute out (CKR_ATTRIBUTE_TYPE_INVALID) is also allowed, but
            // pkcs11-provider then decides the token has no CKA_ALLOWED_MECHANISMS at all
            // and stops telling RSA-PSS-only keys from RSA keys (its TLS test fails);
            // SoftHSMv2 answers an empty list too.
            (CKA_ALLOWED_MECHANISMS, Value::Mechanisms(Vec::new())),
        ]);
    };
    match class {
        CKO_DATA => out.extend([
            bytes(CKA_APPLICATION),
            bytes(CKA_OBJECT_ID),
            bytes(CKA_VALUE),
        ]),
        CKO_CERTIFICATE => out.extend([
            b(CKA_TRUSTED, false),
            (CKA_CERTIFICATE_CATEGORY, Value::Ulong(0)),
            bytes(CKA_START_DATE),
            bytes(CKA_END_DATE),
            bytes(CKA_ID),
            bytes(CKA_ISSUER),
            bytes(CKA_SERIAL_NUMBER),
            bytes(CKA_URL),
            bytes(CKA_HASH_OF_SUBJECT_PUBLIC_KEY),
            bytes(CKA_HASH_OF_ISSUER_PUBLIC_KEY),
            (CKA_JAVA_MIDP_SECURITY_DOMAIN, Value::Ulong(0)),
        ]),
        CKO_SECRET_KEY => {
            key_common(&mut out);
            out.extend([
                b(CKA_SENSITIVE, false),
                b(CKA_ENCRYPT, true),
                b(CKA_DECRYPT, true),
                b(CKA_SIGN, true),
                b(CKA_VERIFY, true),
                b(CKA_WRAP, true),
                b(CKA_UNWRAP, true),
                b(CKA_EXTRACTABLE, false),
                b(CKA_WRAP_WITH_TRUSTED, false),
                b(CKA_TRUSTED, false),
            ]);
        }
        CKO_PUBLIC_KEY => {
            key_common(&mut out);
            out.extend([
                bytes(CKA_SUBJECT),
                b(CKA_ENCRYPT, true),
                b(CKA_VERIFY, true),
                b(CKA_VERIFY_RECOVER, key_type == Some(CKK_RSA)),
                b(CKA_WRAP, true),
                b(CKA_TRUSTED, false),
            ]);
        }
        CKO_PRIVATE_KEY => {
            key_common(&mut out);
            out.extend([
                bytes(CKA_SUBJECT),
                b(CKA_SENSITIVE, false),
                b(CKA_DECRYPT, true),
                b(CKA_SIGN, true),
                b(CKA_SIGN_RECOVER, key_type == Some(CKK_RSA)),
                b(CKA_UNWRAP, true),
                b(CKA_EXTRACTABLE, false),
                b(CKA_WRAP_WITH_TRUSTED, false),
                b(CKA_ALWAYS_AUTHENTICATE, false),
            ]);
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_carried_attribute_has_a_kind() {
        for list in [
            COMMON,
            DATA,
            CERTIFICATE,
            KEY,
            PUBLIC_KEY,
            PRIVATE_KEY,
            SECRET_KEY,
            RSA_PUBLIC,
            RSA_PRIVATE,
            EC_PUBLIC,
            EC_PRIVATE,
        ] {
            for ty in list {
                assert!(kind(*ty).is_some(), "attribute {ty:#x} has no kind");
            }
        }
    }

    #[test]
    fn every_default_is_carried_by_its_class() {
        for (class, kt) in [
            (CKO_DATA, None),
            (CKO_CERTIFICATE, None),
            (CKO_SECRET_KEY, Some(CKK_AES)),
            (CKO_PUBLIC_KEY, Some(CKK_RSA)),
            (CKO_PRIVATE_KEY, Some(CKK_EC)),
        ] {
            for (ty, _) in defaults(class, kt) {
                assert!(carries(class, kt, ty), "class {class} default {ty:#x}");
            }
        }
    }

    #[test]
    fn key_secrets_are_sealed_but_public_values_are_not() {
        assert!(sealed_at_rest(CKO_SECRET_KEY, false, CKA_VALUE));
        assert!(sealed_at_rest(CKO_PRIVATE_KEY, false, CKA_PRIME_1));
        assert!(!sealed_at_rest(CKO_PRIVATE_KEY, true, CKA_MODULUS));
        assert!(sealed_at_rest(CKO_DATA, true, CKA_VALUE));
        assert!(!sealed_at_rest(CKO_DATA, false, CKA_VALUE));
    }
}

//! Review 22c: the `Debug` forms of the types that hold key material, template values or
//! sealed blobs must not show those bytes, in any encoding a `{:?}` could give them
//! (a decimal list, hex, raw text): a `{:?}` of one of them in a log line, an error or a
//! panic message would otherwise print the secret.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::attr::{RawAttribute, RawValue, Value};
use super::key::{Key, Material, Prepared};
use super::{Object, Read};
use crate::ck::*;
use crate::store::seal::MasterKey;

/// 32 bytes no `Debug` form of anything else would contain by chance.
pub(crate) const SECRET: [u8; 32] = [
    0xa5, 0x5a, 0xc3, 0x3c, 0x96, 0x69, 0x0f, 0xf0, 0x5c, 0x3a, 0x7e, 0x81, 0x2d, 0xd2, 0x4b, 0xb4,
    0x17, 0x71, 0xe8, 0x8e, 0x39, 0x93, 0x62, 0x26, 0xca, 0xac, 0x15, 0x51, 0xf7, 0x7f, 0x0b, 0xb0,
];

/// Whether `text` shows any 4-byte run of `secret` as a decimal list (`[165, 90, ...]`),
/// as hex with or without separators or prefixes (`a55ac33c`, `a5, 5a`, `0xa5, 0x5a`), in
/// either case, or as raw text.
pub(crate) fn shows(text: &str, secret: &[u8]) -> bool {
    let lower = text.to_ascii_lowercase();
    let compact: String = lower
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == 'x')
        .collect::<String>()
        .replace("0x", "");
    secret.windows(4).any(|w| {
        let decimal = w.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        let raw = String::from_utf8_lossy(w);
        text.contains(&decimal)
            || lower.contains(&hex)
            || compact.contains(&hex)
            || (raw.chars().all(|c| !c.is_control() && c != '\u{fffd}') && text.contains(&*raw))
    })
}

#[test]
fn the_check_itself_sees_the_usual_encodings() {
    let v = SECRET.to_vec();
    for text in [
        format!("{v:?}"),
        format!("{v:x?}"),
        format!("{v:#x?}"),
        format!("{:02X?}", v),
        v.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ] {
        assert!(shows(&text, &SECRET), "{text}");
    }
    assert!(!shows("Secret(32 bytes)", &SECRET));
}

fn aes_object() -> Object {
    let attrs = BTreeMap::from([
        (CKA_CLASS, Value::Ulong(CKO_SECRET_KEY.get())),
        (CKA_KEY_TYPE, Value::Ulong(CKK_AES.get())),
        (CKA_TOKEN, Value::Bool(true)),
        (CKA_PRIVATE, Value::Bool(true)),
        (CKA_SENSITIVE, Value::Bool(false)),
        (CKA_EXTRACTABLE, Value::Bool(true)),
    ]);
    let secrets = BTreeMap::from([(CKA_VALUE, Zeroizing::new(SECRET.to_vec()))]);
    Object::new([7; 16], attrs, secrets).unwrap()
}

#[test]
fn the_debug_form_of_a_parsed_key_hides_its_material() {
    let object = aes_object();
    let key = object.key("serial", None).unwrap();
    let shown = format!("{key:?}");
    assert!(!shows(&shown, &SECRET), "Key: {shown}");
    let shown = format!("{:?}", key.material);
    assert!(!shows(&shown, &SECRET), "Material: {shown}");
    // An SM2 private key's scalar is a field of its own.
    let sm2 = Key {
        class: CKO_PRIVATE_KEY,
        key_type: super::key::CKK_SM2,
        material: Material::Sm2Private {
            d: Zeroizing::new(SECRET.to_vec()),
            point: vec![4; 65],
        },
        prepared: Prepared::default(),
    };
    let shown = format!("{sm2:?}");
    assert!(!shows(&shown, &SECRET), "SM2 key: {shown}");
}

#[test]
fn the_debug_form_of_an_object_hides_its_parsed_key() {
    let object = aes_object();
    object.key("serial", None).unwrap();
    assert!(object.has_parsed_key());
    let shown = format!("{object:?}");
    assert!(!shows(&shown, &SECRET), "Object: {shown}");
}

#[test]
fn the_debug_form_of_an_object_read_from_its_record_hides_the_sealed_blob() {
    let master = MasterKey::generate().unwrap();
    let record = aes_object().to_record("serial", Some(&master)).unwrap();
    let sealed = record.sealed.clone().expect("a sealed part");
    let object = Object::from_record(&record).unwrap();
    let shown = format!("{object:?}");
    assert!(!shows(&shown, &sealed), "Object from a record: {shown}");
}

#[test]
fn the_debug_form_of_a_caller_template_hides_its_values() {
    let attribute = RawAttribute {
        ty: CKA_VALUE,
        value: RawValue::Bytes(Zeroizing::new(SECRET.to_vec())),
    };
    let shown = format!("{attribute:?}");
    assert!(!shows(&shown, &SECRET), "RawAttribute: {shown}");
    let nested = RawValue::Nested(vec![attribute]);
    let shown = format!("{nested:?}");
    assert!(!shows(&shown, &SECRET), "nested RawValue: {shown}");
}

#[test]
fn the_debug_form_of_a_typed_value_hides_its_bytes() {
    // `Value::parse` of a template's CKA_VALUE holds the key in a `Value::Bytes`.
    let value = Value::parse(CKA_VALUE, &RawValue::Bytes(Zeroizing::new(SECRET.to_vec()))).unwrap();
    let shown = format!("{value:?}");
    assert!(!shows(&shown, &SECRET), "Value: {shown}");
    let template = Value::Template(vec![(CKA_VALUE, Value::Bytes(SECRET.to_vec()))]);
    let shown = format!("{template:?}");
    assert!(!shows(&shown, &SECRET), "Value::Template: {shown}");
}

#[test]
fn the_debug_form_of_a_read_attribute_hides_its_value() {
    let read = aes_object().read(CKA_VALUE, "serial", None).unwrap();
    assert!(
        matches!(&read, Read::Value(v) if **v == SECRET),
        "the key is extractable"
    );
    let shown = format!("{read:?}");
    assert!(!shows(&shown, &SECRET), "Read: {shown}");
}

/// The types above that derive `Debug` over a `Zeroizing` buffer of key material
/// (`Material`, `RawValue`, `Read`, `operation::Output`, the RSA and EC private keys) hide
/// it only because `Zeroizing`'s own `Debug` is opaque, which it is from zeroize 1.9.1
/// (the workspace asks for no older one).
#[test]
fn a_zeroizing_buffer_does_not_show_its_contents() {
    let shown = format!("{:?}", Zeroizing::new(SECRET.to_vec()));
    assert!(!shows(&shown, &SECRET), "Zeroizing: {shown}");
    let shown = format!("{:?}", Zeroizing::new(SECRET));
    assert!(!shows(&shown, &SECRET), "Zeroizing array: {shown}");
}

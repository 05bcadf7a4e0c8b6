//! ImportKeyMaterial with a template of standard attributes only, as pkcs11-tool,
//! python-pkcs11 and Java send it (docs/key-model.md, "The import with unmodified
//! tools"): the wrapping key's own token is used; `CKA_CLASS`, `CKA_KEY_TYPE` and
//! `CKA_VALUE_LEN` must fit the target; the attributes of a new object change nothing;
//! `CKA_END_DATE` gives the expiry; a token other than the key's own is refused.
//! Run with `cargo nextest run --test kms_import_standard`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::types::Date;
use cryptoki_sys::*;

/// What `pkcs11-tool --unwrap --key-type AES:32 --application-label L` sends.
fn tool_template() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(true),
        Attribute::KeyType(KeyType::AES),
        Attribute::Sensitive(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Extractable(true),
        Attribute::ValueLen(32.into()),
        Attribute::Label(b"a new label".to_vec()),
        Attribute::Id(vec![0xee]),
    ]
}

#[test]
fn standard_attributes_import_into_the_bound_key_and_change_nothing_else() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "standard");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let described = |session: &cryptoki::session::Session| {
        [CKA_LABEL, CKA_ID, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_TOKEN]
            .map(|ty| read_bytes(session, key, ty))
    };
    let before = described(&session);
    let imported = unwrap_raw(
        &session,
        &mechanism_of(params.alg),
        params.private,
        &wrapped,
        &tool_template(),
    )
    .expect("import with standard attributes");
    assert_eq!(imported, key, "the import returns the target's handle");
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_eq!(
        described(&session),
        before,
        "the import changed the key's attributes"
    );
    assert_eq!(read_bytes(&session, key, CKA_LABEL).unwrap(), b"standard");
    assert_eq!(vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY), 0);
    assert_works_like(&session, &work, key, &material);
    // An empty template is the same import.
    let again = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(again.alg, &again.spki, &material.bytes);
    let imported = unwrap_raw(
        &session,
        &mechanism_of(again.alg),
        again.private,
        &wrapped,
        &[],
    )
    .expect("import with an empty template");
    assert_eq!(imported, key);
}

#[test]
fn the_wrapping_pair_is_named_after_its_target_and_each_pair_has_its_own_id() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "named");
    let id = key_id(&session, key);
    let first = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let second = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let label = format!("import:{id}").into_bytes();
    let uuid: Vec<u8> = id
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .into_bytes();
    let mut ids = Vec::new();
    for params in [&first, &second] {
        let private_id = read_bytes(&session, params.private, CKA_ID).unwrap();
        assert_eq!(
            read_bytes(&session, params.public, CKA_ID).unwrap(),
            private_id
        );
        for half in [params.private, params.public] {
            assert_eq!(read_bytes(&session, half, CKA_LABEL).unwrap(), label);
        }
        assert_eq!(private_id.len(), 24);
        assert_eq!(to_hex(&private_id[..16]).into_bytes(), uuid);
        ids.push(private_id);
    }
    assert_ne!(ids[0], ids[1]);
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(ids[0].clone()),
        ])
        .unwrap();
    assert_eq!(found, vec![first.private]);
}

#[test]
fn attributes_that_do_not_fit_the_target_are_template_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "misfit");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    for misfit in [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(16.into()),
    ] {
        let mut template = tool_template();
        template.retain(|a| a.attribute_type() != misfit.attribute_type());
        template.push(misfit.clone());
        assert_rv!(
            unwrap_raw(
                &session,
                &mechanism_of(params.alg),
                params.private,
                &wrapped,
                &template
            ),
            RvError::TemplateInconsistent,
            "{misfit:?}"
        );
    }
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
}

#[test]
fn a_token_in_the_template_must_be_the_wrapping_keys_own() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "own-token");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let first = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let second = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(second.alg, &second.spki, &material.bytes);
    let mut template = tool_template();
    template.extend(import_template(&first.token, None));
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism_of(second.alg),
            second.private,
            &wrapped,
            &template
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
}

fn date(text: &str) -> Attribute {
    Attribute::EndDate(Date::new_from_str_slice(&text[..4], &text[4..6], &text[6..]).unwrap())
}

#[test]
fn the_end_date_is_the_material_expiry_at_the_start_of_the_next_day_utc() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "dated");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let unwrap = |template: &[Attribute]| {
        unwrap_raw(
            &session,
            &mechanism_of(params.alg),
            params.private,
            &wrapped,
            template,
        )
    };
    // A day already over, an impossible day, and a vendor expiry that disagrees.
    assert_rv!(unwrap(&[date("20000101")]), RvError::AttributeValueInvalid);
    assert_rv!(unwrap(&[date("20300230")]), RvError::AttributeValueInvalid);
    assert_rv!(
        unwrap(&[
            date("20301231"),
            vendor_ulong(CKA_KMSHSM_MATERIAL_EXPIRY, 1_924_991_999)
        ]),
        RvError::TemplateInconsistent
    );
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    // 2030-12-31 is usable through the day: it expires at 2031-01-01T00:00:00Z.
    let mut template = tool_template();
    template.push(date("20301231"));
    assert_eq!(unwrap(&template).expect("import with an end date"), key);
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY),
        1_924_992_000
    );
    assert_eq!(state(&session, key), STATE_ENABLED);
}

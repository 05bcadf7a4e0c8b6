//! The rules of imported material (kms-docs 000, 004; DESIGN.md §2): re-import of the
//! same material, refusal of different material, one material in several keys, material
//! expiry (moved with KMSHSM_TEST_CLOCK_OFFSET, no sleeping), DeleteKeyMaterial, the
//! state changes through CKA_KMSHSM_KEY_STATE, and destruction. Material is wrapped by
//! `openssl`. Run with `cargo nextest run --test kms_rules`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;

#[test]
fn the_same_material_reimports_any_number_of_times_and_resets_the_expiry() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "reimport");
    let material = work.material(Spec::Aes256);
    let expiry = system_now() + 1000;
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(expiry),
    )
    .expect("first import");
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY),
        expiry
    );
    let before = encrypt_with(&session, Spec::Aes256, key).unwrap();

    // Again, with other wrapping algorithms and without expiry: never expires now.
    for alg in [
        WRAP_RSAES_PKCS1_V1_5,
        WRAP_RSA_AES_KEY_WRAP_SHA_1,
        WRAP_SM2PKE,
    ] {
        let again = import_with(&session, &work, key, alg, &material.bytes, None)
            .unwrap_or_else(|e| panic!("re-import with algorithm {alg}: {e}"));
        assert_eq!(again, key);
        assert_eq!(state(&session, key), STATE_ENABLED);
        assert_eq!(vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY), 0);
    }
    // The same import parameters serve more than once while the token is valid.
    let params = get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_1);
    for _ in 0..2 {
        let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
        import(&session, &params, &wrapped, Some(expiry + 5)).expect("token reuse");
    }
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY),
        expiry + 5
    );
    assert_eq!(encrypt_with(&session, Spec::Aes256, key).unwrap(), before);
    assert_works_like(&session, &work, key, &material);
}

#[test]
fn different_material_is_refused_and_the_key_keeps_its_own() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    for spec in [Spec::Aes256, Spec::Sm4] {
        let key = create_external(&session, spec, "bound");
        let material = work.material(spec);
        import_with(
            &session,
            &work,
            key,
            WRAP_RSAES_OAEP_SHA_256,
            &material.bytes,
            None,
        )
        .expect("first import");
        let other = work.material(spec);
        assert_rv!(
            import_with(
                &session,
                &work,
                key,
                WRAP_RSAES_OAEP_SHA_256,
                &other.bytes,
                None
            ),
            CKR_KMSHSM_INVALID_KEY_MATERIAL,
            "{spec:?}: different material was not refused"
        );
        assert_eq!(state(&session, key), STATE_ENABLED);
        assert_works_like(&session, &work, key, &material);
    }
}

#[test]
fn different_asymmetric_material_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::EcP256, "bound");
    let material = work.material(Spec::EcP256);
    let alg = WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD;
    import_with(&session, &work, key, alg, &material.bytes, None).expect("first import");
    import_with(&session, &work, key, alg, &material.bytes, None).expect("same material again");
    let other = work.material(Spec::EcP256);
    assert_rv!(
        import_with(&session, &work, key, alg, &other.bytes, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    assert_works_like(&session, &work, key, &material);
}

#[test]
fn the_same_material_goes_into_several_keys_each_with_its_own_parameters() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    let keys: Vec<_> = (0..3)
        .map(|i| create_external(&session, Spec::Aes256, &format!("shared-{i}")))
        .collect();
    for (key, alg) in keys.iter().zip([1, 3, 5]) {
        import_with(&session, &work, *key, alg, &material.bytes, None).expect("import");
    }
    let ids: std::collections::BTreeSet<String> =
        keys.iter().map(|k| key_id(&session, *k)).collect();
    assert_eq!(ids.len(), 3, "each key keeps its own KeyId");
    for key in &keys {
        assert_works_like(&session, &work, *key, &material);
    }
}

#[test]
fn parameters_of_one_key_do_not_import_into_another() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let a = create_external(&session, Spec::Aes256, "a");
    let b = create_external(&session, Spec::Aes256, "b");
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &key_id(&session, a), WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let mut template = import_template(&params.token, None);
    template.push(vendor_bytes(
        CKA_KMSHSM_KEY_ID,
        key_id(&session, b).as_bytes(),
    ));
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism_of(params.alg),
            params.private,
            &wrapped,
            &template
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
    assert_eq!(state(&session, b), STATE_PENDING_IMPORT);
    assert_eq!(import(&session, &params, &wrapped, None).unwrap(), a);
    assert_eq!(state(&session, b), STATE_PENDING_IMPORT);
}

#[test]
fn expired_material_returns_the_key_to_pending_import_until_the_same_material_returns() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::Aes256, "expiring");
    template.extend([Attribute::Sensitive(false), Attribute::Extractable(true)]);
    let key = session.create_object(&template).unwrap();
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    import(&session, &params, &wrapped, Some(system_now() + 100)).expect("import");
    assert_eq!(
        read_bytes(&session, key, CKA_VALUE).as_deref(),
        Some(&material.bytes[..])
    );
    let ciphertext = encrypt_with(&session, Spec::Aes256, key).unwrap();

    set_clock_offset(200);
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    assert!(
        read_bytes(&session, key, CKA_VALUE).is_none(),
        "the expired material was not wiped"
    );
    assert_rv!(
        decrypt_with(&session, Spec::Aes256, key, &ciphertext),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );

    // Different material is still refused; the same comes back (the token, 24 h, is valid).
    let other = work.material(Spec::Aes256);
    let wrong = work.wrap(params.alg, &params.spki, &other.bytes);
    assert_rv!(
        import(&session, &params, &wrong, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    let back = import(&session, &params, &wrapped, None).expect("re-import after expiry");
    assert_eq!(back, key, "the key keeps its handle");
    assert_eq!(key_id(&session, key), id, "the key keeps its KeyId");
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_eq!(
        decrypt_with(&session, Spec::Aes256, key, &ciphertext).unwrap(),
        PLAINTEXT,
        "data encrypted before the expiry does not decrypt again"
    );
    set_clock_offset(0);
}

#[test]
fn material_expiry_is_noticed_without_using_the_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Sm4, "swept");
    let material = work.material(Spec::Sm4);
    import_with(
        &session,
        &work,
        key,
        WRAP_SM2PKE,
        &material.bytes,
        Some(system_now() + 50),
    )
    .expect("import");
    set_clock_offset(100);
    // Any object operation sweeps; the state then reads PendingImport.
    let _ = session.find_objects(&[]).unwrap();
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    set_clock_offset(0);
}

/// More keys expire at one instant than the sweep decides in one store transaction
/// (256), one of them a session key (decided on its own): every one is wiped and back to
/// PendingImport, with its KeyMaterialExpired event; a key due later is left alone.
#[test]
fn many_materials_expiring_at_once_are_all_swept_and_a_later_one_is_not() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    let expiry = system_now() + 3600; // far enough ahead for 300 imports on a loaded machine
    let mut expiring = Vec::new();
    for i in 0..300 {
        let mut template = external_template(Spec::Aes256, &format!("batch-{i}"));
        if i == 7 {
            template.retain(|a| !matches!(a, Attribute::Token(_)));
            template.push(Attribute::Token(false));
        }
        let key = session.create_object(&template).unwrap();
        import_with(
            &session,
            &work,
            key,
            WRAP_SM2PKE,
            &material.bytes,
            Some(expiry),
        )
        .expect("import");
        expiring.push(key);
    }
    let later = create_external(&session, Spec::Aes256, "later");
    import_with(
        &session,
        &work,
        later,
        WRAP_SM2PKE,
        &material.bytes,
        Some(expiry + 1000),
    )
    .expect("import");
    for key in &expiring {
        assert_eq!(state(&session, *key), STATE_ENABLED);
    }

    set_clock_offset(3700);
    // One object operation runs the sweep; afterwards every due key is PendingImport.
    let _ = session.find_objects(&[]).unwrap();
    set_clock_offset(0);
    for key in &expiring {
        assert_eq!(state(&session, *key), STATE_PENDING_IMPORT);
        assert_rv!(
            encrypt_with(&session, Spec::Aes256, *key),
            CKR_KMSHSM_INCORRECT_KEY_STATE
        );
    }
    assert_eq!(state(&session, later), STATE_ENABLED);
    encrypt_with(&session, Spec::Aes256, later).expect("the later key still works");
}

#[test]
fn a_due_key_whose_record_cannot_be_read_does_not_hold_back_the_sweep_of_the_others() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    let expiry = system_now() + 3600;
    let mut expiring = Vec::new();
    for i in 0..20 {
        let key = create_external(&session, Spec::Aes256, &format!("spoilt-{i}"));
        import_with(
            &session,
            &work,
            key,
            WRAP_SM2PKE,
            &material.bytes,
            Some(expiry),
        )
        .expect("import");
        expiring.push(key);
    }
    // One due record made unreadable behind the module's back: its batch cannot be
    // decided as a whole.
    {
        let db = rusqlite::Connection::open(env.token_database()).unwrap();
        let spoilt = db
            .execute(
                "UPDATE objects SET plain = x'00' \
                 WHERE uid = (SELECT uid FROM objects WHERE due IS NOT NULL LIMIT 1)",
                [],
            )
            .unwrap();
        assert_eq!(spoilt, 1);
    }
    set_clock_offset(3700);
    // The sweep answers the spoilt key's failure, after deciding every other key.
    let _ = session.find_objects(&[]);
    set_clock_offset(0);
    let swept = expiring
        .iter()
        .filter(|k| state(&session, **k) == STATE_PENDING_IMPORT)
        .count();
    assert_eq!(
        swept,
        expiring.len() - 1,
        "every readable due key was swept"
    );
}

#[test]
fn deleting_the_material_returns_the_key_to_pending_import_until_it_is_imported_again() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::Aes256, "deleted");
    template.extend([Attribute::Sensitive(false), Attribute::Extractable(true)]);
    let key = session.create_object(&template).unwrap();
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_1,
        &material.bytes,
        None,
    )
    .unwrap();
    let ciphertext = encrypt_with(&session, Spec::Aes256, key).unwrap();

    set_state(&session, key, STATE_PENDING_IMPORT).expect("DeleteKeyMaterial");
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    assert!(
        read_bytes(&session, key, CKA_VALUE).is_none(),
        "material not wiped"
    );
    assert_rv!(
        decrypt_with(&session, Spec::Aes256, key, &ciphertext),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        set_state(&session, key, STATE_ENABLED),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );

    let other = work.material(Spec::Aes256);
    assert_rv!(
        import_with(
            &session,
            &work,
            key,
            WRAP_RSAES_OAEP_SHA_1,
            &other.bytes,
            None
        ),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    import_with(
        &session,
        &work,
        key,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        None,
    )
    .expect("the same material again");
    assert_eq!(
        decrypt_with(&session, Spec::Aes256, key, &ciphertext).unwrap(),
        PLAINTEXT
    );
}

#[test]
fn deleting_the_material_of_a_kms_key_is_unsupported_origin() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::ValueLen(32.into()), Attribute::Token(true)],
        )
        .unwrap();
    assert_rv!(
        set_state(&session, key, STATE_PENDING_IMPORT),
        CKR_KMSHSM_UNSUPPORTED_ORIGIN
    );
    assert_eq!(state(&session, key), STATE_ENABLED);
}

#[test]
fn a_disabled_key_refuses_use_until_enabled_again() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "toggled");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        None,
    )
    .unwrap();
    set_state(&session, key, STATE_DISABLED).expect("DisableKey");
    assert_eq!(state(&session, key), STATE_DISABLED);
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    // Re-import into a Disabled key keeps it Disabled.
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        None,
    )
    .unwrap();
    assert_eq!(state(&session, key), STATE_DISABLED);
    set_state(&session, key, STATE_ENABLED).expect("EnableKey");
    assert_works_like(&session, &work, key, &material);
}

#[test]
fn disabling_one_half_of_a_key_pair_disables_both() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::EcParams(OID_P256.to_vec()),
                Attribute::Verify(true),
            ],
            &[Attribute::Sign(true)],
        )
        .unwrap();
    let signature = session
        .sign(&Mechanism::EcdsaSha256, private, b"m")
        .unwrap();
    set_state(&session, private, STATE_DISABLED).unwrap();
    assert_eq!(state(&session, public), STATE_DISABLED);
    assert_rv!(
        session.verify(&Mechanism::EcdsaSha256, public, b"m", &signature),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        session.sign(&Mechanism::EcdsaSha256, private, b"m"),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    set_state(&session, public, STATE_ENABLED).unwrap();
    assert_eq!(state(&session, private), STATE_ENABLED);
    session
        .verify(&Mechanism::EcdsaSha256, public, b"m", &signature)
        .unwrap();
}

#[test]
fn deleting_the_material_of_an_imported_pair_reaches_both_halves() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::EcP256, "pair");
    let material = work.material(Spec::EcP256);
    let alg = WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD;
    import_with(&session, &work, key, alg, &material.bytes, None).expect("import");
    let public = public_half(&session, &key_id(&session, key));
    set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
    assert_eq!(state(&session, public), STATE_PENDING_IMPORT);
    assert_rv!(
        sign_with(&session, Spec::EcP256, key, b"m"),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    import_with(&session, &work, key, alg, &material.bytes, None).expect("re-import");
    assert_eq!(state(&session, public), STATE_ENABLED);
    assert_works_like(&session, &work, key, &material);
}

#[test]
fn scheduled_deletion_refuses_use_and_import_and_can_be_cancelled_to_disabled() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "doomed");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        None,
    )
    .unwrap();
    let params = get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_256);
    set_state(&session, key, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    assert_eq!(state(&session, key), STATE_PENDING_DELETION);
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        set_state(&session, key, STATE_ENABLED),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    assert_rv!(
        import(&session, &params, &wrapped, None),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    set_state(&session, key, STATE_DISABLED).expect("CancelKeyDeletion");
    assert_eq!(state(&session, key), STATE_DISABLED);
}

#[test]
fn an_unknown_state_is_attribute_value_invalid_and_a_read_only_session_is_refused() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::ValueLen(32.into()), Attribute::Token(true)],
        )
        .unwrap();
    assert_rv!(set_state(&session, key, 9), RvError::AttributeValueInvalid);
    let ro = ctx.open_ro_session(slot).unwrap();
    assert_rv!(
        set_state(&ro, key, STATE_DISABLED),
        RvError::SessionReadOnly
    );
    assert_eq!(state(&session, key), STATE_ENABLED);
}

#[test]
fn destroying_a_key_removes_it_and_its_import_parameters_no_longer_import() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "destroyed");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    session.destroy_object(key).expect("C_DestroyObject");
    assert!(objects_of_key(&session, &id).is_empty());
    assert_rv!(
        import(&session, &params, &wrapped, None),
        CKR_KMSHSM_KEY_NOT_FOUND
    );
}

#[test]
fn destroying_the_wrapping_key_makes_its_token_unusable() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let doomed = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(doomed.alg, &doomed.spki, &material.bytes);
    session.destroy_object(doomed.private).unwrap();
    let got = rv(import(&session, &doomed, &wrapped, None));
    assert!(
        matches!(
            got,
            RvError::UnwrappingKeyHandleInvalid | RvError::ObjectHandleInvalid
        ),
        "unwrapping with a destroyed wrapping key gave {got:?}"
    );
    // Its token with the key of fresh parameters is not valid either.
    let fresh = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let rewrapped = work.wrap(fresh.alg, &fresh.spki, &material.bytes);
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism_of(fresh.alg),
            fresh.private,
            &rewrapped,
            &import_template(&doomed.token, None)
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    import(&session, &fresh, &rewrapped, None).expect("import with the fresh parameters");
}

#[test]
fn expired_import_parameters_are_purged() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let by_target = [vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, id.as_bytes())];
    assert_eq!(session.find_objects(&by_target).unwrap().len(), 2);
    set_clock_offset(TOKEN_LIFETIME as i64 + 1);
    let _ = session.find_objects(&[]).unwrap();
    assert!(
        session.find_objects(&by_target).unwrap().is_empty(),
        "expired wrapping pairs are still there"
    );
    assert_eq!(
        session
            .find_objects(&[Attribute::Label(b"target".to_vec())])
            .unwrap()
            .len(),
        1,
        "the target key itself stays"
    );
    set_clock_offset(0);
}

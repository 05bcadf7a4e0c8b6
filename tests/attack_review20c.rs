//! An attacker's review (branch attack20c) of the fixes after reviews 20a and 20b:
//! c712784 and 2d54842 (under the separation-of-duties policy, `C_WrapKey` refuses a
//! wrapping key the policy never judged: a token object whose record is unauthenticated,
//! or a session object the policy would not let be made now, `Token::authorise_wrapping_key`)
//! and 90f63b2 (GetParametersForImport judged again on the target's current version).
//! Each test asserts what the project's documents promise and fails against the module as
//! reviewed (d546312); its doc comment says what is wrong and what a correct module
//! answers.
//!
//! Run with `cargo build --lib --bins && cargo nextest run --test attack_review20c`.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]
// test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::duties::*;
use common::records::{edit_plain, set_attr, uid_of};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use kmshsm::object::attr::Value;

/// A session that is not logged in makes a public key of `values` labelled `planted`
/// (it only encrypts: allowed under the policy); offline, without a PIN, a writer of the
/// token file turns its `CKA_WRAP` and `CKA_LOCAL` on. The record is one a session that
/// is not logged in writes (unauthenticated), so the edit is not detected; the policy's
/// row is left in place throughout.
fn plant_a_wrapping_public_key(env: &TestEnv, values: &[Attribute]) {
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let public = ctx.open_rw_session(slot).unwrap();
    let planted = public
        .create_object(&rsa_public_template(values, "planted", false))
        .expect("a public key that does not wrap, from a public session");
    let uid = uid_of(&public, planted);
    drop(public);
    ctx.finalize().unwrap();
    edit_plain(&env.token_database(), &uid, |a| {
        set_attr(a, CKA_WRAP, Value::Bool(true));
        set_attr(a, CKA_LOCAL, Value::Bool(true));
    });
}

/// Wraps the victim under `wrapping` (RSA-OAEP) and decrypts the result with the pair's
/// private half: `Ok(true)` when the victim's value came out.
fn extract_under(session: &Session, wrapping: ObjectHandle) -> Result<bool, String> {
    let wrapped = session
        .wrap_key(&oaep_sha256(), wrapping, one_labelled(session, "victim"))
        .map_err(|e| format!("C_WrapKey refused: {:?}", rv::<()>(Err(e))))?;
    let plain = session
        .decrypt(
            &oaep_sha256(),
            one_labelled(session, "decrypting half"),
            &wrapped,
        )
        .map_err(|e| format!("C_Decrypt refused: {:?}", rv::<()>(Err(e))))?;
    Ok(plain == VICTIM)
}

/// c712784 refuses a session key made before the process knew the policy when it is
/// the wrapping key of `C_WrapKey` ("a session object that the policy would not let be
/// made now"), but not its copy. The restrained user deletes the policy's row offline
/// and, before logging in, makes a session AES key that wraps and decrypts (generated,
/// never extractable). After the login the policy is back and the key itself is refused
/// as a wrapping key (control); the user then copies it (`C_CopyObject`) with
/// `CKA_DECRYPT` false, wraps the victim under the copy and decrypts the result with the
/// original: the extraction review 20a showed, with one more call.
///
/// The copy is judged only as a new key (`authorise_new`: it wraps and no more, and is
/// generated and never extractable) and as a copy (`authorise_copied`: it drops a duty,
/// adds none). Neither asks whether the bits it holds also decrypt, though
/// docs/security.md ("Separation of duties") judges a key "over everything that holds
/// its bits" and names copies among them. A correct module refuses the copy that wraps
/// of a key that decrypts (`CKR_TEMPLATE_INCONSISTENT`), or the wrap
/// (`CKR_KEY_FUNCTION_NOT_PERMITTED`); either way the victim does not come out.
#[test]
fn a_copy_of_a_session_key_made_before_the_login_does_not_wrap_what_the_original_decrypts() {
    let env = TestEnv::new();
    let (_ctx, session, both) = session_key_made_before_the_login(
        &env,
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(false),
            Attribute::Unwrap(false),
        ],
    );
    let victim = one_labelled(&session, "victim");
    assert_rv!(
        session.wrap_key(&Mechanism::AesEcb, both, victim),
        RvError::KeyFunctionNotPermitted,
        "control: the login put the policy back and the key itself does not wrap"
    );

    let copy = session.copy_object(both, &[Attribute::Decrypt(false)]);
    let extracted = copy
        .map_err(|e| format!("C_CopyObject refused: {:?}", rv::<()>(Err(e))))
        .and_then(|copy| {
            session
                .wrap_key(&Mechanism::AesEcb, copy, victim)
                .map_err(|e| format!("C_WrapKey refused: {:?}", rv::<()>(Err(e))))
        })
        .and_then(|wrapped| {
            session
                .decrypt(&Mechanism::AesEcb, both, &wrapped)
                .map_err(|e| format!("C_Decrypt refused: {:?}", rv::<()>(Err(e))))
        })
        .map(|plain| plain == VICTIM);
    assert!(
        extracted != Ok(true),
        "on a sealed token, a copy (CKA_DECRYPT false) of a session key made before the \
         login wrapped the user's extractable key and the original decrypted it to the \
         victim's value"
    );
}

/// c712784 refuses an unauthenticated token record as a wrapping key, which closed
/// review 20a's public key given `CKA_WRAP` offline. Its copy into a session object is
/// not refused: the copy is a session object, so `authorise_wrapping_key` judges it by
/// its flags (`may_wrap`: an RSA public key that wraps must be `CKA_LOCAL`), and those
/// flags are the unauthenticated record's, forged offline. `authorise_new` judges the
/// copy on the same forged `CKA_LOCAL`. The user wraps their extractable key under the
/// copy and decrypts the result with the pair's private half.
///
/// docs/security.md, "Separation of duties": under the policy "an RSA or SM2 public key
/// that wraps must come from `C_GenerateKeyPair`"; `C_WrapKey` refuses "a token object
/// read without authentication ... given `CKA_WRAP` by an edit of the file". A correct
/// module does not let an object made from an unauthenticated record inherit what the
/// policy trusts of it (`CKA_LOCAL`, `CKA_WRAP`): it refuses the copy
/// (`CKR_TEMPLATE_INCONSISTENT`) or the wrap (`CKR_KEY_FUNCTION_NOT_PERMITTED`).
#[test]
fn a_session_copy_of_a_public_key_given_cka_wrap_offline_does_not_wrap_under_the_policy() {
    let env = TestEnv::new();
    let values = token_under_the_policy_with_a_victim(&env);
    plant_a_wrapping_public_key(&env, &values);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let planted = one_labelled(&session, "planted");
    let control = extract_under(&session, planted);
    assert!(
        control
            .as_ref()
            .is_err_and(|e| e.contains("C_WrapKey") && e.contains("KeyFunctionNotPermitted")),
        "control: the planted record itself does not wrap (c712784): {control:?}"
    );
    let extracted = session
        .copy_object(planted, &[Attribute::Token(false)])
        .map_err(|e| format!("C_CopyObject refused: {:?}", rv::<()>(Err(e))))
        .and_then(|copy| extract_under(&session, copy));
    assert!(
        extracted != Ok(true),
        "on a token under the policy, a session copy of a public key record given CKA_WRAP \
         and CKA_LOCAL offline wrapped the user's extractable key and its private half \
         decrypted it to the victim's value"
    );
}

/// As above, with the copy a token object: the copy of the unauthenticated record is
/// written by the logged-in process as an authenticated record (`Object::to_record`
/// lets a record that "may be unauthenticated anyway" be rewritten authenticated), so
/// the forged `CKA_WRAP` and `CKA_LOCAL` are now sealed under the master key and the
/// copy passes `authorise_wrapping_key` as a token object "the policy judged", in this
/// process and every later one.
///
/// A correct module does not authenticate what it read without authentication (the
/// copy keeps the source's standing, or is refused under the policy), and the wrap below
/// is refused (`CKR_KEY_FUNCTION_NOT_PERMITTED`) or the copy
/// (`CKR_TEMPLATE_INCONSISTENT`).
#[test]
fn a_token_copy_of_a_public_key_given_cka_wrap_offline_does_not_wrap_under_the_policy() {
    let env = TestEnv::new();
    let values = token_under_the_policy_with_a_victim(&env);
    plant_a_wrapping_public_key(&env, &values);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let planted = one_labelled(&session, "planted");
    assert!(
        extract_under(&session, planted).is_err(),
        "control: the planted record itself does not wrap (c712784)"
    );
    let copied = session.copy_object(
        planted,
        &[
            Attribute::Token(true),
            Attribute::Label(b"laundered".to_vec()),
        ],
    );
    drop(session);
    ctx.finalize().unwrap();
    let Ok(_) = copied else { return };

    // A later process: the copy is an authenticated token record.
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let extracted = extract_under(&session, one_labelled(&session, "laundered"));
    assert!(
        extracted != Ok(true),
        "on a token under the policy, a token copy of a public key record given CKA_WRAP \
         and CKA_LOCAL offline was written authenticated, wrapped the user's extractable \
         key in a later process, and its private half decrypted it to the victim's value"
    );
}

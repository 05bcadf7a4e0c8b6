//! A third attacker's review of the fixes made on 2026-12-06, chiefly of 4c0042c, which
//! judged a session half of a key pair by its token half's state. The review found four
//! ways around it, all on such a split pair (public half in the token, private half in a
//! session), when another process changes the key through the one half it can see:
//! - the session half, though refused for use, still handed out its material
//!   (`C_GetAttributeValue`, a search by `CKA_VALUE`);
//! - `C_CopyObject` of the session half made an Enabled copy of the disabled key;
//! - destroying the token half elsewhere made the disabled session half usable again;
//! - an EnableKey elsewhere answered `CKR_OK` and was audited for the key, while the
//!   session half here stayed disabled.
//!
//! Each needs a key whose halves live apart. They are not patched one by one: 4c0042c is
//! reverted and such a pair is no longer made. `C_GenerateKeyPair` refuses templates whose
//! halves differ in `CKA_TOKEN` (`CKR_TEMPLATE_INCONSISTENT`, which pkcs11test accepts for
//! exactly this request), so a key's objects are all in the token, seen and decided
//! together by every process, or all in one session. The second review's test of the
//! same split (`attack_review13b.rs`) is replaced by these.
//! Run with `cargo nextest run --test attack_review13c`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::key_id;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::Session;

fn ec_pair(
    session: &Session,
    public_token: Option<bool>,
    private_token: Option<bool>,
) -> cryptoki::error::Result<(
    cryptoki::object::ObjectHandle,
    cryptoki::object::ObjectHandle,
)> {
    let mut public = vec![
        Attribute::Verify(true),
        Attribute::EcParams(common::kms::OID_P256.to_vec()),
    ];
    public.extend(public_token.map(Attribute::Token));
    let mut private = vec![Attribute::Private(true), Attribute::Sign(true)];
    private.extend(private_token.map(Attribute::Token));
    session.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
}

/// A key pair with one half in the token and the other in the session is refused, either
/// way round, and with `CKA_TOKEN` given for one half only (the other then defaults to a
/// session object); a pair kept together is made as before, in the token or the session,
/// its halves one key.
#[test]
fn a_key_pair_split_between_token_and_session_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (public, private) in [
        (Some(true), Some(false)),
        (Some(false), Some(true)),
        (Some(true), None),
        (None, Some(true)),
    ] {
        match ec_pair(&session, public, private) {
            Err(Error::Pkcs11(RvError::TemplateInconsistent, _)) => {}
            other => panic!("public {public:?}, private {private:?}: {other:?}"),
        }
    }
    for (public, private) in [
        (Some(true), Some(true)),
        (Some(false), Some(false)),
        (None, None),
    ] {
        let (p, q) = ec_pair(&session, public, private).unwrap();
        assert_eq!(key_id(&session, p), key_id(&session, q));
    }
    // Nothing of the refused requests was left in the token.
    let token_keys = session
        .find_objects(&[Attribute::Token(true)])
        .unwrap()
        .len();
    assert_eq!(token_keys, 2, "the one pair made in the token");
}

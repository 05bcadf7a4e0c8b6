//! An attacker's review (branch attack17b) of time in the KMS decisions: where the
//! module reads its clock for a rule, and whether the time that counts is the time the
//! decision is written. A step armed before a transaction (`test_store::At::Transact`)
//! that moves a `FixedClock` on stands for the wait a real transaction can have before it
//! decides (a PostgreSQL row lock held by another host, up to `statement_timeout_ms`;
//! SQLite's busy wait), where a real test would need luck.

use std::sync::Arc;

use super::test_store::{token_on_a_fixed_clock, At, PreparedImport};
use crate::error::Error;

/// Defect: ImportKeyMaterial judges the import token's 24 hours at the start of the call
/// (`token/kms/import.rs` `import_decided`: `ImportToken::open(token, mac_key, now)`),
/// and the material expiry against a time read before the store transaction
/// (`KeyModel::import_material` reads `now` before `decide_on`). The transaction that
/// actually binds and installs the material is then entered without looking at the clock
/// again: an import whose transaction waits past the token's expiry (here, the 24 hours
/// end while it waits for the store's lock) is written all the same, and answers
/// `CKR_OK` — the token has been used after it expired, and the key is Enabled with
/// material that arrived after its parameters lapsed.
///
/// Expected (docs/key-model.md, "Exactly once": "the answer that counts is the
/// transaction's", the decision "a pure function of the key's facts, the request and the
/// time" made inside the transaction; "The rules, each enforced": the token "is valid for
/// 24 hours (`CKR_KMSHSM_EXPIRED_IMPORT_TOKEN`)"): the rule is judged at the time the
/// decision is made and written, so an import decided after the token's expiry is
/// refused with `CKR_KMSHSM_EXPIRED_IMPORT_TOKEN` and nothing is installed.
#[test]
fn an_import_whose_transaction_starts_after_its_token_expired_is_still_written() {
    use crate::kms::import::TOKEN_LIFETIME;
    use crate::kms::key::KeyState;
    use crate::object::attr::KEY_STATE;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock, hooks) = token_on_a_fixed_clock(dir.path(), "review17b1");
    // CreateKey(Origin EXTERNAL, AES_256), GetParametersForImport, the material wrapped.
    let prepared = PreparedImport::new(&token);
    let key = prepared.key;

    // 10 seconds before the token expires, the import is made; its transaction waits 20
    // seconds for the store's lock, and begins 10 seconds after the token expired.
    clock.advance(TOKEN_LIFETIME - 10);
    let waiting = Arc::clone(&clock);
    hooks.arm(At::Transact, move || waiting.advance(20));
    let result = prepared.import(&token, &[]);
    assert_eq!(
        hooks.armed(),
        0,
        "the import reached its transaction (the clock was moved on there)"
    );
    let state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert!(
        matches!(
            result,
            Err(Error::Kms(crate::error::KmsError::ExpiredImportToken))
        ),
        "an import decided 10 s after its token expired answered {:?}; the key is now in \
         state {state:?} (Enabled is {})",
        result.as_ref().map(|_| "CKR_OK"),
        KeyState::Enabled.code()
    );
    assert_eq!(state, Some(KeyState::PendingImport.code()));
}

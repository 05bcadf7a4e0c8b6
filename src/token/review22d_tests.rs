//! Review 22d (attacker's review of 36bdb7c): a commit of this process's whose read-back
//! never happened must still reach its object cache. 36bdb7c notes a failed read in
//! `commit_decided_on` only; the KMS decisions (`decide_on_key`, the expiry sweep's
//! batches) call `Store::transact` themselves, and a `transact` that fails once its
//! commit is made (SQLite: the fsync the commit waits for fails; PostgreSQL: the
//! connection is lost after the COMMIT was sent) returns before their `sync`, leaving
//! nothing to make the next call read: the store counts the handle's own commit as seen.

use super::test_store::{token_on_a_fixed_clock, ulong, PreparedImport, CALLER};
use super::Token;
use crate::kms::key::KeyState;
use crate::object::attr::KEY_STATE;

fn cached_state(token: &Token, key: crate::object::table::ObjectHandle) -> Option<u64> {
    token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE))
}

/// Defect: a DisableKey committed here whose transaction then reported an error leaves
/// this process using the key as Enabled, while the store (and every other process)
/// holds it Disabled. Expected: as for a failed read-back (review 22b), the next call
/// reads the store again and finds the key Disabled.
#[test]
fn a_disable_whose_transaction_failed_after_its_commit_still_reaches_the_cache() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, hooks) = token_on_a_fixed_clock(dir.path(), "review22d1");
    let prepared = PreparedImport::new(&token);
    let key = prepared.key;
    prepared.import(&token, &[]).expect("ImportKeyMaterial");
    assert_eq!(cached_state(&token, key), Some(KeyState::Enabled.code()));

    hooks.fail_after_next_commit();
    let disabled =
        token.set_attributes(CALLER, key, &[ulong(KEY_STATE, KeyState::Disabled.code())]);
    assert!(
        disabled.is_err(),
        "the transaction reported its failure: {disabled:?}"
    );

    // Another process finds the key Disabled: the commit was made.
    let path = crate::store::Backend::file_of(dir.path(), "review22d1");
    let elsewhere =
        Token::open(&path, super::shared_for_tests(dir.path())).expect("another process");
    let stored = elsewhere
        .store
        .read(0, 0, crate::store::Scope::All)
        .expect("read");
    let states: Vec<Option<u64>> = stored
        .objects
        .iter()
        .filter_map(|r| crate::object::Object::from_record(r).ok())
        .filter(|o| o.bytes(crate::object::attr::KEY_ID).is_some())
        .map(|o| o.ulong(KEY_STATE))
        .collect();
    assert!(
        states.contains(&Some(KeyState::Disabled.code())),
        "the store holds the key Disabled: {states:?}"
    );

    // The next call of this process picks up what the store holds.
    token.refresh().expect("refresh");
    assert_eq!(
        cached_state(&token, key),
        Some(KeyState::Disabled.code()),
        "this process keeps the key Enabled after its own DisableKey was committed"
    );
}

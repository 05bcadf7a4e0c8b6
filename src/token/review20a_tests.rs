//! An attacker's review (branch attack20a) of 1b1c9ff, the separation-of-duties policy
//! sealed into the record-authentication marker: what needs two processes placed at
//! exact moments of one another's login, shown with two `Token`s of one store (each one
//! process's view), and the store edited as a writer of the file without a PIN would
//! (rusqlite, no key). Each test fails against the module as reviewed; its doc comment
//! says what is wrong and what a correct module answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::test_store::{self, marker_covers_the_policy};
use super::*;
use crate::config::KdfConfig;

const SO_PIN: &[u8] = b"so-pin-1234";
const USER_PIN: &[u8] = b"user-pin-5678";
const SESSION: SessionHandle = SessionHandle::new(1);

/// What a process shares: configured with the policy or without it, its new PIN records
/// derived with `kdf`.
fn shared(dir: &Path, separation_of_duties: bool, kdf: KdfConfig) -> Arc<Shared> {
    test_store::configured(dir, separation_of_duties, Some(kdf))
}

/// The tests' cheap PIN derivation.
fn cheap() -> KdfConfig {
    shared_for_tests(Path::new("/")).config.kdf
}

/// A PIN derivation that takes seconds here: a process rewrapping a PIN record under it
/// stays between its read of the marker and its adoption's transaction that long.
fn slow() -> KdfConfig {
    KdfConfig {
        memory_kib: 16 * 1024,
        iterations: 8,
        parallelism: 1,
    }
}

/// A token as kmshsm wrote it before records were authenticated, not under the policy
/// (made by a process configured without it; `test_store::legacy_token`). Its database's
/// path.
fn legacy_token(dir: &Path) -> std::path::PathBuf {
    test_store::legacy_token(dir, &shared(dir, false, cheap()), "review20a", SO_PIN, &[])
}

/// Two logins adopt one old-format token at once: the user's, in a process configured
/// without the policy, and the SO's, in a process configured with it (the administrator
/// putting the upgraded token under the policy). Each read the marker missing and
/// decided its adoption then; the user's rewraps its PIN record with a slow derivation
/// before its transaction, and the SO's login commits the covering marker and the row
/// meanwhile. The user's adoption then writes the marker it decided before — the plain
/// one — over the covering one: `settle_record_format` checks the epoch and the objects
/// in its transaction, never the marker. The row is left, so nothing shows until the
/// row goes: deleted offline (no PIN), the next login finds a plain, authentic marker
/// and no row, and the token is out of the policy for good.
///
/// docs/security.md, "Separation of duties": the marker "covers [the policy] from the
/// first login of a process that finds the token under the policy, so a writer of the
/// token file without a PIN cannot take it off by deleting the metadata row". A correct
/// module decides the adoption's marker inside its transaction (an authentic marker
/// found there is kept, a covering one never replaced by a plain one), so the login
/// below keeps the policy.
#[test]
fn a_concurrent_adoption_does_not_overwrite_the_covering_marker_with_a_plain_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = legacy_token(dir.path());
    let a_second = Duration::from_millis(1000);
    let (user_result, so_done_at, user_done_at) = std::thread::scope(|scope| {
        let user = scope.spawn(|| {
            // The user's process: no policy, new PIN records under the slow derivation.
            let token = Token::open(&path, shared(dir.path(), false, slow())).unwrap();
            token.add_session(SESSION, true).unwrap();
            let result = token.login(SESSION, UserKind::User, USER_PIN);
            (result, Instant::now())
        });
        // The SO's process, configured with the policy, logs in while the user's
        // adoption derives its new PIN record.
        std::thread::sleep(a_second);
        let so = Token::open(&path, shared(dir.path(), true, cheap())).unwrap();
        so.add_session(SESSION, true).unwrap();
        so.login(SESSION, UserKind::So, SO_PIN).unwrap();
        assert_eq!(
            marker_covers_the_policy(&so),
            Some(true),
            "the SO's login sealed the policy"
        );
        let so_done_at = Instant::now();
        let (result, user_done_at) = user.join().unwrap();
        (result, so_done_at, user_done_at)
    });
    user_result.expect("the user's login");
    assert!(
        so_done_at < user_done_at,
        "premise: the SO's login ended while the user's adoption was still deriving (make \
         `slow()` slower on this machine)"
    );

    // Offline, no PIN: the row goes.
    let db = rusqlite::Connection::open(&path).unwrap();
    let n = db
        .execute(
            "DELETE FROM meta WHERE name = ?1",
            [META_SEPARATION_OF_DUTIES],
        )
        .unwrap();
    assert_eq!(n, 1, "the SO's login wrote the row");
    drop(db);

    // A later process, configured without the policy, logs in.
    let later = Token::open(&path, shared(dir.path(), false, cheap())).unwrap();
    later.add_session(SESSION, true).unwrap();
    later.login(SESSION, UserKind::User, USER_PIN).unwrap();
    let marker = marker_covers_the_policy(&later);
    assert!(
        later.separating_duties().unwrap(),
        "a token the SO's login put under the policy is out of it after the row was \
         deleted: the user's concurrent adoption replaced the covering marker (does the \
         stored marker cover the policy: {marker:?})"
    );
}

//! Review 21b of the object table, its index and the records loaded on demand: the
//! moments between a read of the store and its application to the table, where only a
//! unit test can put another process's act (`test_store.rs`'s store, its steps armed
//! after a whole read and before a lookup by index key).

use std::sync::mpsc;
use std::sync::Arc;

use super::test_store::{bytes, created_then_wrapped, At, StoreHooks, CALLER};
use super::*;
use crate::ck::*;
use crate::ids::SessionHandle;
use crate::object::attr::RawAttribute;

/// A public token data object labelled `label`.
fn data_object(label: &[u8]) -> [RawAttribute; 4] {
    [
        bytes(CKA_CLASS, &CKO_DATA.raw().to_ne_bytes()),
        bytes(CKA_TOKEN, &[1]),
        bytes(CKA_LABEL, label),
        bytes(CKA_VALUE, b"x"),
    ]
}

/// Token `serial` in `dir`, opened twice: by this process through a `TestStore`
/// ([`created_then_wrapped`]), and by another process directly; a read/write session 1 in
/// each.
fn two_processes(dir: &std::path::Path, serial: &str) -> (Arc<Token>, Arc<Token>, StoreHooks) {
    let (here, hooks, path) = created_then_wrapped(dir, serial, &shared_for_tests(dir));
    let here = Arc::new(here);
    let elsewhere =
        Arc::new(Token::open(&path, shared_for_tests(dir)).expect("the other process's token"));
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    (here, elsewhere, hooks)
}

/// DEFECT: a handle a search answered stops naming its object while the object exists,
/// and the object comes back under another handle.
///
/// How: thread A's search names no indexed attribute (by CKA_CLASS), so the token reads
/// every object (`load_all`, `Scope::All`) as of store sequence S1; before A applies that
/// read, another process creates an object labelled "late" (S2), and thread B's search by
/// that label loads it through the index (`load_matching` → `ObjectTable::add_loaded`,
/// which accepts records newer than the table) and answers its handle. Then A applies its
/// whole read of S1: `ObjectTable::apply` takes the table for current to S1 (its own
/// sequence was never moved past S1 by `add_loaded`) and drops every token object missing
/// from the read, the new one included — with its handle (`token_handles`). The next
/// refresh brings the object back from the changes since S1 under a fresh handle.
///
/// PKCS#11 3.0 §4.4.1 / src/object/table.rs: a handle stays valid for its object while it
/// exists, and handles are never reused; docs/architecture.md: the table is a cache of
/// the store kept current from snapshots. A correct module keeps `B`'s handle valid: a
/// whole read older than a record the table holds must not remove it (apply only what
/// the read can speak for, or read again).
#[test]
fn a_whole_read_applied_late_drops_an_object_loaded_meanwhile_and_its_handle() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, elsewhere, hooks) = two_processes(dir.path(), "r21b00001");
    here.create_object(CALLER, &data_object(b"before"))
        .expect("an object here");
    here.refresh().expect("refresh");

    // Thread A's whole read, held before it is applied.
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    hooks.arm(At::ReadAll, move || {
        paused_tx.send(()).expect("the test waits");
        resume_rx.recv().expect("the test resumes");
    });
    let lister = {
        let here = Arc::clone(&here);
        std::thread::spawn(move || here.find(&[bytes(CKA_CLASS, &CKO_DATA.raw().to_ne_bytes())]))
    };
    paused_rx.recv().expect("the whole read paused");

    // Thread B (this one): the other process creates "late" just before B's lookup.
    {
        let elsewhere = Arc::clone(&elsewhere);
        hooks.arm(At::LoadByKey, move || {
            elsewhere
                .create_object(CALLER, &data_object(b"late"))
                .expect("created elsewhere");
        });
    }
    let found = here
        .find(&[bytes(CKA_LABEL, b"late")])
        .expect("find by label");
    assert_eq!(found.len(), 1, "B finds the new object");
    let handle = found[0];

    resume_tx.send(()).expect("resume");
    lister.join().expect("lister").expect("A's search");

    // The object exists (the other process still finds it) ...
    assert_eq!(
        elsewhere
            .find(&[bytes(CKA_LABEL, b"late")])
            .expect("find elsewhere")
            .len(),
        1
    );
    // ... so the handle B was given must still name it, and a search must answer it.
    let use_now = here.entry(handle).map(|_| ());
    let again = here.find(&[bytes(CKA_LABEL, b"late")]).expect("find again");
    assert!(
        use_now.is_ok(),
        "the handle of an existing object became invalid: {use_now:?}"
    );
    assert_eq!(
        again,
        vec![handle],
        "the object came back under another handle"
    );
}

/// DEFECT (resource use): every distinct value searched for by an indexed attribute is
/// kept in the object table for good (`ObjectTable::resolved`, `Token::load_matching` →
/// `mark_resolved`), however long it is and whether or not any object has it, until the
/// whole token is loaded — on a token of a million objects, only after 125,000 such
/// searches (`MIN_COLD_LOOKUPS`, one per `FULL_LOAD_PER_LOOKUPS` objects). A session that
/// is not even logged in can search by labels of up to 1 GiB each (`MAX_INPUT_LEN`), so
/// the process keeps the sum of everything it was asked for: here 96 searches by distinct
/// 1 MiB labels that name nothing leave 96 MiB held after the searches have ended.
///
/// docs/performance.md ("A million keys") promises a token that holds a million keys
/// without keeping them in memory; a search's working memory should end with the
/// search. A correct module bounds what it remembers of past lookups (a cap on the set
/// or on the key length remembered, or nothing remembered for a key no object has).
#[test]
fn searches_by_long_labels_that_name_nothing_are_remembered_without_bound() {
    const SEARCHES: usize = 96;
    const LEN: usize = 1 << 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _elsewhere, hooks) = two_processes(dir.path(), "r21b00002");
    // A token of a million objects, as the store's count says.
    hooks.set_count_hint(Some(1_000_000));
    let label = |i: usize| {
        let mut l = vec![b'x'; LEN];
        l[..8].copy_from_slice(&(i as u64).to_be_bytes());
        l
    };
    for i in 0..SEARCHES {
        let found = here.find(&[bytes(CKA_LABEL, &label(i))]).expect("find");
        assert!(found.is_empty());
    }
    let kept = (0..SEARCHES)
        .filter(|i| {
            let key = crate::object::index::lookup_key(CKA_LABEL, &label(*i));
            here.objects.read().is_resolved(&key)
        })
        .count();
    let held = kept * LEN;
    assert!(
        held <= 16 << 20,
        "{kept} search values of {LEN} bytes, none naming an object, are still held \
         ({held} bytes) after their searches ended"
    );
}

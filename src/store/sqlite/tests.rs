//! Unit tests of the SQLite store (the store contract, schema, WAL and concurrency).

use super::*;
use std::os::unix::fs::PermissionsExt;

fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::create(&dir.path().join("t.db"), vec![]).unwrap();
    (dir, store)
}

/// A new database and a second handle on it, as another process would open it.
fn two_handles() -> (tempfile::TempDir, SqliteStore, SqliteStore) {
    let (dir, first) = fresh();
    let second = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    (dir, first, second)
}

#[test]
fn sqlite_store_meets_the_store_contract() {
    let (_dir, first, second) = two_handles();
    crate::store::contract::run(&first, &second);
}

#[test]
fn sqlite_store_keeps_the_audit_trail_contract() {
    let (dir, first, second) = two_handles();
    crate::store::contract::audit(&first, &second);
    let restored = SqliteStore::create(&dir.path().join("r.db"), vec![]).unwrap();
    crate::store::contract::audit_restore(&restored);
}

#[test]
fn racing_decisions_on_one_record_have_one_winner_across_handles() {
    let (_dir, first, second) = two_handles();
    // Two handles on one file, as two processes; four threads on each.
    crate::store::contract::race(&[&first, &second], 4, 50);
}

#[test]
fn database_file_is_created_owner_only() {
    let (dir, store) = fresh();
    store
        .commit(vec![Change::PutMeta("x".into(), vec![1])])
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn creating_over_an_existing_file_is_refused() {
    let (dir, _store) = fresh();
    assert!(SqliteStore::create(&dir.path().join("t.db"), vec![]).is_err());
}

#[test]
fn newer_schema_is_refused() {
    let (dir, store) = fresh();
    store
        .lock()
        .unwrap()
        .db
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    drop(store);
    assert!(matches!(
        SqliteStore::open(&dir.path().join("t.db")),
        Err(StoreError::SchemaVersion(99))
    ));
    // Nor does an upgrade write into it when a newer build has upgraded the file between
    // an older one's look at the version and its upgrade transaction.
    let mut db = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    assert!(matches!(
        schema::upgrade(&mut db),
        Err(StoreError::SchemaVersion(99))
    ));
}

#[test]
fn a_commit_elsewhere_is_seen_at_once_through_the_mapped_wal_index_header() {
    let (dir, first) = fresh();
    assert!(first.shm_page.is_some(), "the -shm page is mapped");
    commits_elsewhere_are_seen_at_once(&dir, first);
}

#[test]
fn a_commit_elsewhere_is_seen_at_once_through_the_wal_index_header_read_from_the_file() {
    let (dir, mut first) = fresh();
    // No mapping: neither the lock-free first look nor the locked check has one.
    first.shm_page = None;
    assert!(first.lock().unwrap().shm.is_some(), "the -shm file is read");
    commits_elsewhere_are_seen_at_once(&dir, first);
}

fn commits_elsewhere_are_seen_at_once(dir: &tempfile::TempDir, first: SqliteStore) {
    let second = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let s = first.read(0, 0, Scope::Changes).unwrap();
    first.applied(&s.mark).unwrap();
    for n in 0..20u8 {
        // Back to back, well inside FULL_CHECK_EVERY: only the header can tell.
        assert!(!first.changed_elsewhere().unwrap());
        second
            .commit(vec![Change::PutMeta("n".into(), vec![n])])
            .unwrap();
        assert!(first.changed_elsewhere().unwrap(), "commit {n} seen");
        let (seq, epoch) = {
            let s = first.read(0, 0, Scope::Changes).unwrap();
            assert!(first.changed_elsewhere().unwrap(), "commit {n} unapplied");
            first.applied(&s.mark).unwrap();
            (s.seq, s.epoch)
        };
        assert!(seq > 0 && epoch > 0);
        first
            .commit(vec![Change::PutMeta("own".into(), vec![n])])
            .unwrap();
        assert!(!first.changed_elsewhere().unwrap(), "own commit {n}");
    }
}

#[test]
fn the_wal_is_emptied_but_kept_when_the_last_connection_closes() {
    let (dir, store) = fresh();
    store
        .commit(vec![Change::PutMeta("k".into(), vec![1; 5000])])
        .unwrap();
    let wal = dir.path().join("t.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    drop(store);
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "checkpointed");
    assert!(dir.path().join("t.db-shm").exists());
    let again = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let snap = again.read(0, 0, Scope::All).unwrap();
    assert_eq!(snap.meta.get("k"), Some(&vec![1; 5000]));
}

#[test]
fn closing_does_not_wait_for_another_connections_transaction() {
    let (dir, store) = fresh();
    store
        .commit(vec![Change::PutMeta("k".into(), vec![1])])
        .unwrap();
    let other = Connection::open(dir.path().join("t.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    drop(store);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    other.execute_batch("COMMIT").unwrap();
    let again = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    assert_eq!(
        again.read(0, 0, Scope::All).unwrap().meta.get("k"),
        Some(&vec![1])
    );
}

/// The -wal and -shm files now outlive connections, so a deleted token's may be left
/// beside a new database of the same name; SQLite discards a WAL found beside an
/// empty database file, which is what `create` makes first.
#[test]
fn a_new_database_does_not_inherit_a_leftover_wal() {
    let dir = tempfile::tempdir().unwrap();
    let old = SqliteStore::create(&dir.path().join("old.db"), vec![]).unwrap();
    old.commit(vec![Change::PutMeta("stale".into(), vec![7])])
        .unwrap();
    // A copy of the old token's WAL, taken while it still holds the commit.
    let wal = std::fs::read(dir.path().join("old.db-wal")).unwrap();
    assert!(!wal.is_empty());
    drop(old);
    std::fs::write(dir.path().join("t.db-wal"), &wal).unwrap();
    std::fs::write(dir.path().join("t.db-shm"), [0u8; 32768]).unwrap();
    let store = SqliteStore::create(&dir.path().join("t.db"), vec![]).unwrap();
    let snap = store.read(0, 0, Scope::All).unwrap();
    assert!(!snap.meta.contains_key("stale"));
    store.check_integrity().unwrap();
}

/// The value of `PRAGMA name` on the store's connection.
fn pragma<T: rusqlite::types::FromSql>(store: &SqliteStore, name: &str) -> T {
    store
        .lock()
        .unwrap()
        .db
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn journal_is_wal_and_integrity_check_passes() {
    let (_dir, store) = fresh();
    let mode: String = pragma(&store, "journal_mode");
    assert_eq!(mode, "wal");
    store.check_integrity().unwrap();
}

#[test]
fn group_commit_is_on_and_a_read_of_another_handles_unsynced_commit_waits_for_a_sync() {
    let (_dir, first, second) = two_handles();
    for store in [&first, &second] {
        let sync: i64 = pragma(store, "synchronous");
        assert_eq!(sync, 1, "the connection commits with synchronous=NORMAL");
        let checkpoint_every: i64 = pragma(store, "wal_autocheckpoint");
        assert_eq!(checkpoint_every, schema::WAL_AUTOCHECKPOINT);
        assert!(store.sync.is_some(), "group commit is on");
    }
    second.read(0, 0, Scope::All).unwrap();
    let second_sync = second.sync.as_ref().unwrap();
    // Another handle (as another process) writes its frames but has not synced yet.
    {
        let mut conn = first.lock().unwrap();
        commit_locked(&mut conn, vec![Change::PutMeta("x".into(), vec![1])]).unwrap();
    }
    assert!(
        !second_sync.covers_now(),
        "a commit no sync covers is seen as such by the other handle"
    );
    let before = second_sync.completed();
    let snap = second.read(0, 0, Scope::All).unwrap();
    assert_eq!(snap.meta.get("x"), Some(&vec![1]));
    assert!(
        second_sync.completed() > before,
        "the read that saw the unsynced commit synced before it returned"
    );
    assert!(second_sync.covers_now());
    // Nothing new since: the next read does not sync again.
    let after = second_sync.completed();
    second.read(0, 0, Scope::All).unwrap();
    assert_eq!(second_sync.completed(), after);
}

#[test]
fn after_a_failed_fsync_the_handle_writes_nothing_more() {
    let (_dir, first, second) = two_handles();
    first.sync.as_ref().unwrap().poison();
    // Each write path refuses before it writes: nothing reaches the other handle (as
    // another process) that this one could not make durable.
    assert!(first
        .commit(vec![Change::PutMeta("x".into(), vec![1])])
        .is_err());
    assert!(first
        .transact(&[], &[], &mut |_| Some(vec![Change::PutMeta(
            "y".into(),
            vec![2]
        )]))
        .is_err());
    let record = PinRecordId {
        epoch: 1,
        kdf: Vec::new(),
        attempt: 1,
    };
    assert!(first
        .settle_pin_attempt(PinRole::User, false, &record)
        .is_err());
    let snap = second.read(0, 0, Scope::All).unwrap();
    assert!(!snap.meta.contains_key("x") && !snap.meta.contains_key("y"));
}

#[test]
fn writers_take_the_turn_that_writers_of_other_processes_wait_for() {
    use std::time::{Duration, Instant};
    let (dir, store) = fresh();
    let reader = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    // Another process's writer holds the turn: a lock on its own description of the WAL.
    let wal = dir.path().join("t.db-wal");
    let turn = |limit| {
        crate::os::file_lock::lock_exclusive_within(File::open(&wal).unwrap(), limit).unwrap()
    };
    let held = turn(Duration::ZERO).expect("the turn is free");
    let started = Instant::now();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            store
                .commit(vec![Change::PutMeta("x".into(), vec![1])])
                .unwrap();
            started.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        // Reads (here another handle's) do not wait for the turn.
        assert!(!reader
            .read(0, 0, Scope::All)
            .unwrap()
            .meta
            .contains_key("x"));
        drop(held);
        assert!(
            writer.join().unwrap() >= Duration::from_millis(100),
            "the commit waited for the turn"
        );
    });
    // And once written, the turn is free again for the other process.
    assert!(turn(Duration::ZERO).is_some());
    assert_eq!(
        store.read(0, 0, Scope::All).unwrap().meta.get("x"),
        Some(&vec![1])
    );
}

/// The byte of the `-shm` file on which every process with the database open holds a
/// read lock, SQLite's "dead man switch" (os_unix.c: `UNIX_SHM_BASE + SQLITE_SHM_NLOCK`,
/// 120 + 8): a process that finds it unlocked takes the WAL-index for abandoned and
/// rebuilds it.
const SHM_DMS_BYTE: i64 = 128;

#[test]
fn closing_a_second_handle_leaves_sqlites_locks_of_the_first_in_place() {
    // Two handles of one process on one token (two threads scanning the slots at once
    // each open the new token; the slot keeps one and the other is dropped).
    let (dir, first) = fresh();
    first.read(0, 0, Scope::All).unwrap();
    // Closed only after `first`: closing it sooner would itself drop the locks.
    let probe = File::open(dir.path().join("t.db-shm")).unwrap();
    assert!(
        crate::os::file_lock::byte_is_locked(&probe, SHM_DMS_BYTE),
        "SQLite holds its lock while the database is open"
    );
    let second = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    second.read(0, 0, Scope::All).unwrap();
    drop(second);
    assert!(
        crate::os::file_lock::byte_is_locked(&probe, SHM_DMS_BYTE),
        "closing the second handle must not release the first's locks (POSIX locks are \
         the process's, and closing any descriptor of the file releases them all)"
    );
    first
        .commit(vec![Change::PutMeta("x".into(), vec![1])])
        .unwrap();
    drop(first);
    drop(probe);
}

/// A write (a metadata entry named `key`) and its ticket, not yet waited for.
fn write_unsettled(store: &SqliteStore, key: &str) -> Option<u64> {
    let mut conn = store.lock_for_write().unwrap();
    commit_locked(&mut conn, vec![Change::PutMeta(key.into(), vec![1])]).unwrap();
    store.written(&mut conn, true)
}

/// Waits until a sync holds back (the commit delay), then 100 ms more: long enough for
/// a sync that did not hold to have completed.
fn hold_for_a_while(sync: &WalSync, never: &str) {
    let waiting = std::time::Instant::now();
    while sync.held().is_none() {
        assert!(waiting.elapsed() < Duration::from_secs(10), "{never}");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// The commit delay (`durable.rs`): a sync about to begin while another thread is in a
/// write holds back for it, and covers its commit: one fsync for both.
#[test]
fn a_sync_holds_back_for_a_writer_on_its_way_and_covers_its_commit() {
    let (_dir, store) = fresh();
    let sync = store.sync.as_ref().unwrap();
    sync.set_delay_bounds(Duration::from_secs(5), Duration::from_secs(5));
    let before = sync.completed();
    // The second writer is on its way: counted, not yet at the connection.
    let second = sync.writing();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            let ticket = {
                let mut conn = store.lock_for_write().unwrap();
                commit_locked(&mut conn, vec![Change::PutMeta("a".into(), vec![1])]).unwrap();
                store.written(&mut conn, true)
            };
            let began = std::time::Instant::now();
            store.settle(ticket).unwrap();
            (ticket, began.elapsed())
        });
        hold_for_a_while(sync, "the sync never held back");
        assert_eq!(
            sync.completed(),
            before,
            "no fsync yet: it waits for the second writer"
        );
        {
            let mut conn = store.lock().unwrap();
            commit_locked(&mut conn, vec![Change::PutMeta("b".into(), vec![2])]).unwrap();
        }
        let second_ticket = second.ticket(false);
        store.settle(second_ticket).unwrap();
        let (first_ticket, waited) = first.join().unwrap();
        assert_eq!(
            first_ticket, second_ticket,
            "the second write, ended while the sync held back, is covered by it"
        );
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(5),
            "the first writer's sync waited for the second writer, not for its bound ({waited:?})"
        );
    });
    assert_eq!(sync.completed(), before + 1, "one fsync for both writes");
    let snap = store.read(0, 0, Scope::All).unwrap();
    assert_eq!(
        (snap.meta.get("a"), snap.meta.get("b")),
        (Some(&vec![1]), Some(&vec![2]))
    );
}

/// With no other writer on its way a sync begins at once (one creator pays nothing),
/// and one that holds back does so no longer than its bound.
#[test]
fn a_sync_holds_back_only_for_writers_on_their_way_and_only_so_long() {
    let (_dir, store) = fresh();
    let sync = store.sync.as_ref().unwrap();
    sync.set_delay_bounds(Duration::from_secs(30), Duration::from_secs(30));
    let began = std::time::Instant::now();
    store
        .commit(vec![Change::PutMeta("alone".into(), vec![1])])
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "a lone writer's sync did not wait ({:?})",
        began.elapsed()
    );
    sync.set_delay_bounds(Duration::from_secs(30), Duration::from_millis(200));
    let late = sync.writing();
    let began = std::time::Instant::now();
    store
        .commit(vec![Change::PutMeta("held".into(), vec![2])])
        .unwrap();
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(10),
        "held back for the writer that never came, up to its bound ({waited:?})"
    );
    // The late writer gives up without a commit: nothing is counted any more, and the
    // next sync does not hold back.
    drop(late);
    assert_eq!(sync.writers(), 0);
    sync.set_delay_bounds(Duration::from_secs(30), Duration::from_secs(30));
    let holds = sync.holds();
    store
        .commit(vec![Change::PutMeta("after".into(), vec![3])])
        .unwrap();
    assert_eq!(sync.holds(), holds, "no writer on its way: no hold");
}

/// The commit delay's group (`durable.rs`): a sync about to begin holds back for the
/// threads that wrote for the last one, though none of them is in a write yet, and
/// covers their next commits too; a thread that does not come back is waited for once,
/// up to the bound, and not again.
#[test]
fn a_sync_holds_back_for_the_threads_of_the_last_group() {
    use std::sync::mpsc;
    let (_dir, store) = fresh();
    let store = &store;
    let sync = store.sync.as_ref().unwrap();
    let write = move |key: &str| write_unsettled(store, key);
    std::thread::scope(|s| {
        // Made in the scope: a failed assertion drops the sender, and the other thread
        // ends instead of waiting for ever.
        let (to_other, go) = mpsc::channel::<()>();
        let (report, from_other) = mpsc::channel::<(Option<u64>, Duration)>();
        s.spawn(move || {
            // Round 1: a write, its ticket handed over unsettled.
            report.send((write("a1"), Duration::ZERO)).unwrap();
            // Rounds 2 to 4: a write and its sync, timed.
            for key in ["a2", "a3", "a4"] {
                go.recv().unwrap();
                let ticket = write(key);
                let began = std::time::Instant::now();
                store.settle(ticket).unwrap();
                report.send((ticket, began.elapsed())).unwrap();
            }
        });
        // Round 1: both threads wrote before any sync began; one sync covers both and
        // makes them the group.
        let (other_first, _) = from_other.recv().unwrap();
        let mine = write("b1");
        assert_eq!(mine, other_first);
        store.settle(mine).unwrap();
        let after_first = sync.completed();

        // Round 2: the other thread's sync holds back for this one, not yet writing.
        // (Every completed sync sets the bound from its own time: set after the last.)
        sync.set_delay_bounds(Duration::from_secs(5), Duration::from_secs(5));
        to_other.send(()).unwrap();
        hold_for_a_while(sync, "the sync never held back for the group");
        assert_eq!(sync.completed(), after_first, "held: no fsync yet");
        assert_eq!(
            sync.writers(),
            0,
            "no writer on its way: held for the group"
        );
        let mine = write("b2");
        store.settle(mine).unwrap();
        let (other_second, waited) = from_other.recv().unwrap();
        assert_eq!(
            other_second, mine,
            "one sync covers both writes of the round"
        );
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_secs(5),
            "held until this thread wrote, not for the bound ({waited:?})"
        );
        assert_eq!(sync.completed(), after_first + 1);

        // Round 3: this thread does not come back: held up to the bound, once; round 4
        // is not held.
        sync.set_delay_bounds(Duration::from_secs(30), Duration::from_millis(1500));
        to_other.send(()).unwrap();
        let (_, waited) = from_other.recv().unwrap();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
            "held for the missing thread up to the bound ({waited:?})"
        );
        sync.set_delay_bounds(Duration::from_secs(30), Duration::from_millis(1500));
        let holds = sync.holds();
        to_other.send(()).unwrap();
        from_other.recv().unwrap();
        assert_eq!(sync.holds(), holds, "the group is now one thread: no hold");
    });
}

/// The commit delay does not make a thread wait for itself: a thread of the last group
/// whose read (or refusal) needs a sync, because another process committed meanwhile,
/// starts it at once.
#[test]
fn a_thread_that_needs_a_sync_does_not_hold_back_for_itself() {
    let (_dir, mine, other_process) = two_handles();
    let sync = mine.sync.as_ref().unwrap();
    for round in 0..2 {
        mine.commit(vec![Change::PutMeta(format!("mine{round}"), vec![1])])
            .unwrap();
        other_process
            .commit(vec![Change::PutMeta(format!("other{round}"), vec![2])])
            .unwrap();
        assert!(
            !sync.covers_now(),
            "the other handle's commit is not ours to cover"
        );
        // A slow disk, so that a hold would be counted; a short bound, since the sync
        // board may hold back for the other handle, which wrote for the last sync.
        sync.set_delay_bounds(Duration::from_secs(30), Duration::from_millis(50));
        let holds = sync.holds();
        if round == 0 {
            let snap = mine.read(0, 0, Scope::All).unwrap();
            assert!(snap.meta.contains_key("other0"));
        } else {
            assert!(!mine.transact(&[], &[], &mut |_| None).unwrap());
        }
        assert_eq!(sync.holds(), holds, "round {round}: held back for itself");
        assert!(sync.covers_now());
    }
}

/// A sync that must hold back while an older one still runs waits for that one to end
/// before its bound starts: the group's threads are waiting for the older sync and write
/// again only then, and the held sync covers them.
#[test]
fn a_held_sync_counts_its_bound_from_the_end_of_an_older_one() {
    use std::sync::mpsc;
    let (_dir, store) = fresh();
    let store = &store;
    let sync = store.sync.as_ref().unwrap();
    let write = move |key: String| write_unsettled(store, &key);
    std::thread::scope(|s| {
        let (go_a, wait_a) = mpsc::channel::<()>();
        let (go_b, wait_b) = mpsc::channel::<()>();
        let (report, tickets) = mpsc::channel::<(char, u64)>();
        for (name, go) in [('a', wait_a), ('b', wait_b)] {
            let report = report.clone();
            s.spawn(move || {
                // Round 1: a write, its ticket handed over unsettled.
                let first = write(format!("{name}1")).unwrap();
                report.send((name, first)).unwrap();
                // Round 2: a write and its sync, then straight on to round 3's write.
                go.recv().unwrap();
                let second = write(format!("{name}2"));
                store.settle(second).unwrap();
                let third = write(format!("{name}3"));
                store.settle(third).unwrap();
                report.send((name, third.unwrap())).unwrap();
            });
        }
        // Round 1: both wrote before any sync began; one sync covers both: the group.
        let (_, first) = tickets.recv().unwrap();
        let (_, also_first) = tickets.recv().unwrap();
        assert_eq!(first, also_first);
        store.settle(Some(first)).unwrap();

        // Round 2: a slow fsync covers both threads' second writes.
        sync.slow_down(Duration::from_millis(600));
        sync.set_delay_bounds(Duration::from_secs(5), Duration::from_secs(5));
        go_a.send(()).unwrap();
        go_b.send(()).unwrap();
        let waiting = std::time::Instant::now();
        while !(sync.running() == 1 && sync.held().is_none()) {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "the second round's sync never began"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // The second round's sync is in its slow fsync: a newcomer's write needs a sync
        // of its own, which holds back for the group, whose threads wait for the slow
        // one; its bound (100 ms) is far shorter than what is left of the slow fsync.
        assert_eq!(sync.completed(), first, "the slow fsync has not ended yet");
        sync.slow_down(Duration::ZERO);
        sync.set_delay_bounds(Duration::from_secs(5), Duration::from_millis(100));
        let newcomer = std::thread::scope(|inner| {
            inner
                .spawn(|| {
                    let ticket = write("c".into());
                    store.settle(ticket).unwrap();
                    ticket.unwrap()
                })
                .join()
                .unwrap()
        });
        let mut third = [tickets.recv().unwrap(), tickets.recv().unwrap()];
        third.sort();
        assert_eq!(
            third,
            [('a', newcomer), ('b', newcomer)],
            "the newcomer's sync waited for the slow one, then covered the group's next writes"
        );
    });
}

/// On a disk whose fsync is quick (under `SLOW_FSYNC`) a sync never holds back, not
/// even for a writer on its way: there, holding back cost more than it shared.
#[test]
fn on_a_quick_disk_a_sync_does_not_hold_back() {
    let (_dir, store) = fresh();
    let sync = store.sync.as_ref().unwrap();
    sync.set_delay_bounds(durable::SLOW_FSYNC / 2, Duration::from_secs(30));
    let late = sync.writing();
    let holds = sync.holds();
    store
        .commit(vec![Change::PutMeta("quick".into(), vec![1])])
        .unwrap();
    assert_eq!(sync.holds(), holds, "no hold on a quick disk");
    drop(late);
    // The same writer on its way, on a slow disk: held.
    sync.set_delay_bounds(durable::SLOW_FSYNC, Duration::from_millis(50));
    let late = sync.writing();
    store
        .commit(vec![Change::PutMeta("slow".into(), vec![2])])
        .unwrap();
    assert_eq!(sync.holds(), holds + 1, "held on a slow disk");
    drop(late);
}

/// Group commit across processes (`board.rs`): two handles on one database, as two
/// processes, each committing from one thread on a disk taken for slow, share fsyncs:
/// a sync of one holds back for the other's write, which then waits for it instead of
/// running its own. Both handles see every commit of both.
#[test]
fn two_handles_share_their_syncs_through_the_board() {
    const COMMITS: usize = 20;
    let (_dir, first, second) = two_handles();
    for store in [&first, &second] {
        let sync = store.sync.as_ref().unwrap();
        assert!(sync.board().is_some(), "a place on the board");
        // Every fsync 5 ms longer: a slow disk, measured as such.
        sync.slow_down(Duration::from_millis(5));
        sync.set_delay_bounds(Duration::from_millis(50), Duration::from_millis(50));
        // A first commit each, alone: a new WAL's first fsyncs can take tens of
        // milliseconds, during which the other handle would go on alone.
        store
            .commit(vec![Change::PutMeta("warm".into(), vec![0])])
            .unwrap();
    }
    let before: u64 = [&first, &second]
        .iter()
        .map(|store| store.sync.as_ref().unwrap().fsyncs())
        .sum();
    std::thread::scope(|s| {
        for (name, store) in [("first", &first), ("second", &second)] {
            s.spawn(move || {
                for i in 0..COMMITS {
                    store
                        .commit(vec![Change::PutMeta(format!("{name}{i}"), vec![1])])
                        .unwrap();
                }
            });
        }
    });
    let fsyncs = [&first, &second]
        .iter()
        .map(|store| store.sync.as_ref().unwrap().fsyncs())
        .sum::<u64>()
        - before;
    let commits = 2 * COMMITS as u64;
    assert!(
        fsyncs <= commits * 3 / 4,
        "{fsyncs} fsyncs for {commits} commits: the handles did not share"
    );
    for store in [&first, &second] {
        let snap = store.read(0, 0, Scope::All).unwrap();
        for name in ["first", "second"] {
            for i in 0..COMMITS {
                assert!(snap.meta.contains_key(&format!("{name}{i}")));
            }
        }
    }
}

/// Without the board's sharing (each handle alone), the same run costs an fsync per
/// commit: what the test above measures against.
#[test]
fn a_handle_alone_on_the_board_runs_an_fsync_for_each_of_its_commits() {
    let (_dir, store) = fresh();
    let sync = store.sync.as_ref().unwrap();
    sync.slow_down(Duration::from_millis(5));
    sync.set_delay_bounds(Duration::from_millis(50), Duration::from_millis(50));
    let before = sync.fsyncs();
    for i in 0..10 {
        store
            .commit(vec![Change::PutMeta(format!("k{i}"), vec![1])])
            .unwrap();
    }
    assert_eq!(sync.fsyncs() - before, 10);
}

/// A handle whose writes another handle's sync covered must not take the WAL-index
/// header it read before that sync for durable: a third handle's commit written after
/// the covering sync began is in that header, and no fsync has begun since it. (Found
/// by an independent review: the header used to be recorded as durable.)
#[test]
fn a_sync_covered_by_another_handle_does_not_make_a_later_commit_durable() {
    let (dir, a, b) = two_handles();
    let c = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    for s in [&a, &b, &c] {
        s.sync
            .as_ref()
            .unwrap()
            .set_delay_bounds(Duration::ZERO, Duration::ZERO);
    }
    let (a_sync, b_sync, c_sync) = (
        a.sync.as_ref().unwrap(),
        b.sync.as_ref().unwrap(),
        c.sync.as_ref().unwrap(),
    );
    b_sync.slow_down(Duration::from_millis(400));
    let ticket = write_unsettled(&a, "a").unwrap();
    std::thread::scope(|s| {
        let b_commit = s.spawn(|| b.commit(vec![Change::PutMeta("b".into(), vec![1])]));
        // B's sync has begun (it takes 400 ms): C commits and does not sync.
        std::thread::sleep(Duration::from_millis(100));
        let c_fsyncs = c_sync.fsyncs();
        let _ = write_unsettled(&c, "late");
        // A's writes were noted before B's sync began: B's covers them.
        a_sync.wait(ticket).unwrap();
        b_commit.join().unwrap().unwrap();
        assert_eq!(c_sync.fsyncs(), c_fsyncs, "C ran no fsync");
        let fsyncs = || {
            [a_sync, b_sync, c_sync]
                .iter()
                .map(|s| s.fsyncs())
                .sum::<u64>()
        };
        let before = fsyncs();
        let snap = a.read(0, 0, Scope::All).unwrap();
        assert!(snap.meta.contains_key("late"));
        assert!(
            fsyncs() > before,
            "A's read of C's commit was acknowledged with no fsync begun after C's write"
        );
    });
}

/// Two syncs of one handle, the older waiting on the board for another handle's sync
/// that then fails, the newer one claimed meanwhile: the older must not go on to wait
/// for the newer's claim (the newer reports only after the older; it used to wait
/// until the claim went stale, ~2 s). Found by an independent review.
#[test]
fn an_older_sync_of_a_handle_does_not_wait_for_its_newer_one_on_the_board() {
    let (_dir, a, b) = two_handles();
    for s in [&a, &b] {
        s.sync
            .as_ref()
            .unwrap()
            .set_delay_bounds(Duration::ZERO, Duration::ZERO);
    }
    let (a_sync, b_sync) = (a.sync.as_ref().unwrap(), b.sync.as_ref().unwrap());
    b_sync.slow_down(Duration::from_millis(300));
    let first = write_unsettled(&a, "a1").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| b.commit(vec![Change::PutMeta("b".into(), vec![1])]));
        std::thread::sleep(Duration::from_millis(50));
        let older = s.spawn(|| {
            let began = std::time::Instant::now();
            let result = a_sync.wait(first);
            (began.elapsed(), result)
        });
        std::thread::sleep(Duration::from_millis(50));
        let second = write_unsettled(&a, "a2").unwrap();
        let newer = s.spawn(move || a_sync.wait(second));
        std::thread::sleep(Duration::from_millis(50));
        // B's fsync fails: it covers nobody.
        b_sync.poison();
        let (waited, result) = older.join().unwrap();
        result.unwrap();
        newer.join().unwrap().unwrap();
        assert!(
            waited < Duration::from_secs(1),
            "A's older sync waited {waited:?} for A's own newer sync"
        );
    });
}

/// Found by an independent review: W's sync, finding a stale claimant, runs alone and its
/// fsync fails (it took the writeback error for Y's frames too: one fdatasync writes every
/// dirty page of the WAL). The board is not told. Z opens afterwards (its descriptor is
/// told of no error already reported), claims the next sync, which succeeds; the stale
/// claimant reports; Y, whose write preceded W's failed fsync, is acknowledged without any
/// fsync of its own.
#[test]
fn a_failed_fsync_past_a_stale_claimant_is_not_hidden_from_another_writer() {
    use super::board::{Board, Cover, Hold};
    let (dir, w, y) = two_handles();
    let zero = |s: &SqliteStore| {
        s.sync
            .as_ref()
            .unwrap()
            .set_delay_bounds(Duration::ZERO, Duration::ZERO)
    };
    zero(&w);
    zero(&y);
    let (w_sync, y_sync) = (w.sync.as_ref().unwrap(), y.sync.as_ref().unwrap());
    let tw = write_unsettled(&w, "w").unwrap();
    // Process A claims the next sync (its fsync will succeed; it reports late).
    let a = Board::open(&dir.path().join("t.db-sync")).unwrap();
    a.note();
    let no_hold = Hold {
        last_fsync: Duration::ZERO,
        max_delay: Duration::ZERO,
        slow: Duration::from_millis(1),
    };
    let Cover::Run(claim) = a.cover(no_hold) else {
        panic!("A runs the sync")
    };
    let ty = write_unsettled(&y, "y").unwrap();
    std::thread::sleep(super::board::STALE + Duration::from_millis(100));
    w_sync.slow_down(Duration::from_millis(300));
    std::thread::scope(|s| {
        let wt = s.spawn(|| w_sync.wait(tw));
        std::thread::sleep(Duration::from_millis(100));
        w_sync.poison(); // W's fsync (alone) fails
        assert!(wt.join().unwrap().is_err());
    });
    let z = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    zero(&z);
    z.sync
        .as_ref()
        .unwrap()
        .slow_down(Duration::from_millis(300));
    let before = y_sync.fsyncs();
    std::thread::scope(|s| {
        let zt = s.spawn(|| z.commit(vec![Change::PutMeta("z".into(), vec![1])]));
        std::thread::sleep(Duration::from_millis(100));
        let yt = s.spawn(|| y_sync.wait(ty));
        std::thread::sleep(Duration::from_millis(50));
        claim.finish(true);
        zt.join().unwrap().unwrap();
        let r = yt.join().unwrap();
        assert!(
            r.is_err() || y_sync.fsyncs() > before,
            "Y acknowledged ({r:?}) with no fsync of its own after W's fsync, begun after \
             Y's write, failed"
        );
    });
}

/// A reader's connection reuses the metadata and PIN records it read while the store's
/// count of their changes stands; every kind of change moves the count, including a PIN
/// attempt elsewhere, which moves no sequence number.
#[test]
fn a_change_of_metadata_or_pins_elsewhere_is_read_though_the_records_are_reused() {
    let (_dir, reader, writer) = two_handles();
    let pin = |failures| PinRecord {
        kdf: vec![1, 2, 3],
        wrapped_key: vec![4; 60],
        failures,
    };
    writer
        .commit(vec![
            Change::PutMeta("label".into(), b"a".to_vec()),
            Change::PutPin(PinRole::User, pin(0)),
        ])
        .unwrap();
    // The label and the user's failure count, as a read finds them.
    let read = || {
        let snap = reader.read(0, 0, Scope::Changes).unwrap();
        reader.applied(&snap.mark).unwrap();
        let failures = snap.pins.get(&PinRole::User).map(|p| p.failures);
        (snap.meta.get("label").cloned(), failures)
    };
    assert_eq!(read(), (Some(b"a".to_vec()), Some(0)));
    // Read again with nothing changed: the same records.
    assert_eq!(read(), (Some(b"a".to_vec()), Some(0)));
    // A PIN attempt elsewhere: no new sequence number, a new failure count.
    let record = PinRecordId {
        epoch: writer.read(0, 0, Scope::Changes).unwrap().epoch,
        kdf: pin(0).kdf,
        attempt: 1,
    };
    assert_eq!(
        writer
            .reserve_pin_attempt(PinRole::User, record.epoch, 10, 1_000, 2_000)
            .unwrap(),
        PinAttempt::Reserved {
            failures: 1,
            record: record.clone()
        }
    );
    assert_eq!(read().1, Some(1), "a reserved attempt counts");
    assert_eq!(
        writer
            .settle_pin_attempt(PinRole::User, true, &record)
            .unwrap(),
        PinSettle::Settled
    );
    assert_eq!(read().1, Some(0), "a right PIN resets the count");
    // Metadata changed, then removed with everything by a wipe; a PIN record removed.
    writer
        .commit(vec![Change::PutMeta("label".into(), b"b".to_vec())])
        .unwrap();
    assert_eq!(read().0, Some(b"b".to_vec()));
    writer
        .commit(vec![Change::RemovePin(PinRole::User)])
        .unwrap();
    assert_eq!(read().1, None);
    writer
        .commit(vec![Change::PutPin(PinRole::User, pin(3))])
        .unwrap();
    assert_eq!(read().1, Some(3));
    writer.commit(vec![Change::Wipe]).unwrap();
    let snap = reader.read(0, 0, Scope::Changes).unwrap();
    assert!(snap.pins.is_empty() && snap.meta.contains_key("label"));
    // The reader's own change is read back too.
    reader
        .commit(vec![Change::PutMeta("label".into(), b"c".to_vec())])
        .unwrap();
    let snap = reader.read(0, 0, Scope::Changes).unwrap();
    assert_eq!(snap.meta.get("label"), Some(&b"c".to_vec()));
}

/// Lookup keys go in up to four a statement: a record with more is found by each, and
/// loses them all when it is rewritten with fewer.
#[test]
fn a_record_with_more_lookup_keys_than_one_statement_adds_is_found_by_each() {
    let (_dir, store) = fresh();
    let keys: Vec<Vec<u8>> = (0..9u8).map(|k| vec![b'k', k]).collect();
    let record = |lookup: Vec<Vec<u8>>| ObjectRecord {
        uid: [7; 16],
        plain: vec![1],
        sealed: None,
        index: RecordIndex { lookup, due: None },
    };
    store
        .commit(vec![Change::PutObject(record(keys.clone()))])
        .unwrap();
    for key in &keys {
        assert_eq!(store.lookup(key).unwrap(), vec![[7; 16]], "key {key:?}");
    }
    store
        .commit(vec![Change::PutObject(record(vec![b"only".to_vec()]))])
        .unwrap();
    for key in &keys {
        assert!(store.lookup(key).unwrap().is_empty(), "key {key:?} left");
    }
    assert_eq!(store.lookup(b"only").unwrap(), vec![[7; 16]]);
}

/// Attack (from an independent review): a tampered `objects.keys` (truncated, oversized
/// length, wrong type) gave an error, and the record could then be neither rewritten nor
/// removed (an expired import pair's so would fail every sweep). The keys are an index:
/// the record is rewritten and removed, its unreadable keys all taken out, and no key is
/// left pointing at it.
#[test]
fn tampered_record_keys_do_not_block_a_rewrite_or_a_removal() {
    let (dir, store) = fresh();
    let rec = |n: u8, key: &[u8]| ObjectRecord {
        uid: [n; 16],
        plain: vec![n],
        sealed: None,
        index: RecordIndex {
            lookup: vec![key.to_vec(), vec![b'u', n]],
            due: None,
        },
    };
    for n in 1..=8u8 {
        store.commit(vec![Change::PutObject(rec(n, b"k"))]).unwrap();
    }
    let raw = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    let tamper = |n: u8, value: &str| {
        raw.execute_batch(&format!(
            "UPDATE objects SET keys = {value} WHERE uid = x'{}'",
            format!("{n:02x}").repeat(16)
        ))
        .unwrap()
    };
    for (n, value) in [
        (1, "x'00000005ab'"),
        (2, "x'ffffffff'"),
        (3, "'text'"),
        (4, "42"),
    ] {
        tamper(n, value);
        tamper(n + 4, value);
    }
    drop(raw);
    for n in 1..=4u8 {
        let removal = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.commit(vec![Change::RemoveObject([n; 16])])
        }));
        let removal = removal.unwrap_or_else(|_| panic!("record {n}: removal panicked"));
        assert!(removal.is_ok(), "record {n}: removal {removal:?}");
        assert!(!store.lookup(b"k").unwrap().contains(&[n; 16]));
        assert!(store.lookup(&[b'u', n]).unwrap().is_empty());
        let m = n + 4;
        store
            .commit(vec![Change::PutObject(rec(m, b"other"))])
            .unwrap_or_else(|e| panic!("record {m}: rewrite {e:?}"));
        assert!(!store.lookup(b"k").unwrap().contains(&[m; 16]));
        assert_eq!(store.lookup(b"other").unwrap().last(), Some(&[m; 16]));
        assert_eq!(store.lookup(&[b'u', m]).unwrap(), vec![[m; 16]]);
        // And the rewritten record's keys are readable again: removing it takes them.
        store.commit(vec![Change::RemoveObject([m; 16])]).unwrap();
        assert!(store.lookup(&[b'u', m]).unwrap().is_empty());
    }
    assert!(store.lookup(b"k").unwrap().is_empty());
    store.check_integrity().unwrap();
    assert!(store.read(0, 0, Scope::All).unwrap().objects.is_empty());
}

/// Found by an independent review of schema version 6: docs/security.md says an edit of
/// the index can hide a record from a search "until the record is rewritten". A rewrite
/// whose keys are those the row lists (a state change, a change of an attribute that is
/// not indexed) writes no lookup key at all, so a key taken out of `lookup` stays out
/// for good, and a KMS decision on the key (`Token::decide_on_key`) leaves that record
/// out of every change made to the key's objects.
#[test]
fn a_rewrite_puts_back_a_lookup_key_taken_out_of_the_index() {
    let (dir, store) = fresh();
    let rec = ObjectRecord {
        uid: [1; 16],
        plain: vec![1],
        sealed: None,
        index: RecordIndex {
            lookup: vec![b"k".to_vec()],
            due: None,
        },
    };
    store.commit(vec![Change::PutObject(rec.clone())]).unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    raw.execute_batch("DELETE FROM lookup").unwrap();
    drop(raw);
    assert!(store.lookup(b"k").unwrap().is_empty());
    store
        .commit(vec![Change::PutObject(ObjectRecord {
            plain: vec![2],
            ..rec.clone()
        })])
        .unwrap();
    store
        .commit(vec![Change::Reindex(rec.uid, rec.index.clone())])
        .unwrap();
    assert_eq!(
        store.lookup(b"k").unwrap(),
        vec![[1; 16]],
        "rewritten twice, the record is still not found by its key"
    );
}

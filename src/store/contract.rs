//! The store contract, written once and run against every backend. `first` and `second`
//! are two handles on one empty token, as two processes would hold them.

use super::*;

fn object(n: u8, sealed: bool) -> ObjectRecord {
    ObjectRecord {
        uid: [n; 16],
        plain: vec![n, n, n],
        sealed: sealed.then(|| vec![0xee, n]),
        index: RecordIndex::default(),
    }
}

fn indexed(n: u8, lookup: &[&[u8]], due: Option<i64>) -> ObjectRecord {
    ObjectRecord {
        index: RecordIndex {
            lookup: lookup.iter().map(|k| k.to_vec()).collect(),
            due,
        },
        ..object(n, false)
    }
}

fn sorted(mut uids: Vec<ObjectUid>) -> Vec<ObjectUid> {
    uids.sort();
    uids
}

fn pin(failures: u32) -> PinRecord {
    PinRecord {
        kdf: vec![1, 2, 3],
        wrapped_key: vec![4; 60],
        failures,
    }
}

pub(crate) fn run(first: &dyn Store, second: &dyn Store) {
    // A first read resets the reader and is empty.
    let s = first.read(0, 0, Scope::Changes).unwrap();
    assert!(s.reset && !s.whole && s.objects.is_empty() && s.pins.is_empty());
    let epoch = s.epoch;
    let mut seen_second = second.read(0, 0, Scope::Changes).unwrap();
    assert!(!second.changed_elsewhere().unwrap());

    // One commit with several changes is seen whole by the other handle.
    first
        .commit(vec![
            Change::PutMeta("label".into(), b"token".to_vec()),
            Change::PutPin(PinRole::So, pin(0)),
            Change::PutObject(object(1, false)),
            Change::PutObject(object(2, true)),
        ])
        .unwrap();
    assert!(
        !first.changed_elsewhere().unwrap(),
        "own commits are not 'elsewhere'"
    );
    assert!(second.changed_elsewhere().unwrap());
    let s = second
        .read(seen_second.seq, seen_second.epoch, Scope::Changes)
        .unwrap();
    assert!(!s.reset && !s.whole);
    assert_eq!(s.objects.len(), 2);
    assert_eq!(s.meta.get("label").map(Vec::as_slice), Some(&b"token"[..]));
    assert_eq!(s.pins.get(&PinRole::So), Some(&pin(0)));
    assert!(s.objects.contains(&object(2, true)));
    assert!(!second.changed_elsewhere().unwrap());
    seen_second = s;

    // An update and a removal come through as such, incrementally.
    let mut updated = object(1, false);
    updated.plain = vec![9];
    second
        .commit(vec![
            Change::PutObject(updated.clone()),
            Change::RemoveObject([2; 16]),
        ])
        .unwrap();
    let after = first.read(1, epoch, Scope::Changes).unwrap();
    assert_eq!(after.objects, vec![updated.clone()]);
    assert_eq!(after.removed, vec![[2u8; 16]]);
    let nothing_new = first.read(after.seq, epoch, Scope::Changes).unwrap();
    assert!(nothing_new.objects.is_empty() && nothing_new.removed.is_empty());

    // A whole read lists only live objects; a reset reader asking for changes gets none
    // (it must look objects up), one asking for all gets them all.
    let whole = first.read(after.seq, epoch, Scope::All).unwrap();
    assert!(whole.whole && !whole.reset && whole.removed.is_empty());
    assert_eq!(whole.objects, vec![updated.clone()]);
    let fresh = first.read(0, 0, Scope::Changes).unwrap();
    assert!(fresh.reset && fresh.objects.is_empty() && fresh.removed.is_empty());
    assert_eq!(
        fresh.meta.get("label").map(Vec::as_slice),
        Some(&b"token"[..])
    );
    let fresh = first.read(0, 0, Scope::All).unwrap();
    assert!(fresh.reset && fresh.whole);
    assert_eq!(fresh.objects, vec![updated]);

    index_contract(first, second);

    // PIN failures count atomically across handles and reset.
    assert_eq!(first.count_pin_failure(PinRole::So).unwrap(), 1);
    assert_eq!(second.count_pin_failure(PinRole::So).unwrap(), 2);
    assert!(
        first.count_pin_failure(PinRole::User).is_err(),
        "no user PIN yet"
    );
    first.reset_pin_failures(PinRole::So).unwrap();
    assert_eq!(
        second.read(0, 0, Scope::Changes).unwrap().pins[&PinRole::So].failures,
        0
    );

    // A wipe starts a new epoch; a reader of the old epoch gets a complete set.
    first
        .commit(vec![Change::Wipe, Change::PutObject(object(3, false))])
        .unwrap();
    let s = second
        .read(seen_second.seq, seen_second.epoch, Scope::All)
        .unwrap();
    assert!(s.reset && s.whole);
    assert_ne!(s.epoch, epoch);
    assert_eq!(s.objects, vec![object(3, false)]);
    assert!(s.pins.is_empty());
    assert!(
        first.lookup(b"k").unwrap().is_empty(),
        "a wipe drops lookup keys"
    );
    assert_eq!(first.due(i64::MAX).unwrap(), Due::default());

    first.check_integrity().unwrap();
}

/// Lookup keys, due times and loading by uid, across both handles.
fn index_contract(first: &dyn Store, second: &dyn Store) {
    first
        .commit(vec![
            Change::PutObject(indexed(10, &[b"k", b"a"], Some(100))),
            Change::PutObject(indexed(11, &[b"k"], Some(50))),
            Change::PutObject(indexed(12, &[b"b"], None)),
        ])
        .unwrap();
    assert!(
        second.object_count_hint().unwrap() >= 4,
        "a bound from above"
    );
    assert_eq!(
        sorted(second.lookup(b"k").unwrap()),
        vec![[10; 16], [11; 16]]
    );
    assert_eq!(second.lookup(b"a").unwrap(), vec![[10; 16]]);
    assert!(second.lookup(b"none").unwrap().is_empty());
    assert_eq!(
        second.due(49).unwrap(),
        Due {
            now: vec![],
            next: Some(50)
        }
    );
    assert_eq!(
        second.due(50).unwrap(),
        Due {
            now: vec![[11; 16]],
            next: Some(100)
        }
    );
    assert_eq!(
        sorted(second.due(1000).unwrap().now),
        vec![[10; 16], [11; 16]]
    );

    // Loading gives the live records asked for, read back without their index, and the
    // point in history they were read at.
    let loaded = second.load(&[[12; 16], [99; 16], [10; 16]]).unwrap();
    assert_eq!(loaded.objects, vec![object(12, false), object(10, false)]);
    let state = second.read(0, 0, Scope::Changes).unwrap();
    assert_eq!((loaded.seq, loaded.epoch), (state.seq, state.epoch));

    // Rewriting a record replaces its index; reindexing replaces it without a new
    // sequence number; removing a record removes its keys; reindexing a removed
    // record adds nothing.
    second
        .commit(vec![Change::PutObject(indexed(10, &[b"c"], None))])
        .unwrap();
    assert_eq!(second.lookup(b"k").unwrap(), vec![[11; 16]]);
    assert_eq!(second.lookup(b"c").unwrap(), vec![[10; 16]]);
    let before = first.read(0, 0, Scope::Changes).unwrap().seq;
    first
        .commit(vec![Change::Reindex(
            [12; 16],
            RecordIndex {
                lookup: vec![b"d".to_vec()],
                due: Some(7),
            },
        )])
        .unwrap();
    assert_eq!(second.lookup(b"b").unwrap(), vec![] as Vec<ObjectUid>);
    assert_eq!(second.lookup(b"d").unwrap(), vec![[12; 16]]);
    assert_eq!(second.due(7).unwrap().now, vec![[12; 16]]);
    let changes = second.read(before, state.epoch, Scope::Changes).unwrap();
    assert!(
        changes.objects.is_empty(),
        "a reindex is not a change of the record"
    );
    first
        .commit(vec![
            Change::RemoveObject([11; 16]),
            Change::RemoveObject([12; 16]),
            Change::Reindex(
                [12; 16],
                RecordIndex {
                    lookup: vec![b"e".to_vec()],
                    due: Some(1),
                },
            ),
        ])
        .unwrap();
    assert!(second.lookup(b"k").unwrap().is_empty());
    assert!(second.lookup(b"d").unwrap().is_empty());
    assert!(second.lookup(b"e").unwrap().is_empty());
    assert_eq!(second.due(1000).unwrap(), Due::default());
    first.commit(vec![Change::RemoveObject([10; 16])]).unwrap();
}

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

/// `read`, then `applied`: what a reader does (`Token::apply_snapshot`).
fn read_applied(store: &dyn Store, since: u64, epoch: u64, scope: Scope) -> Snapshot {
    let snap = store.read(since, epoch, scope).unwrap();
    store.applied(&snap.mark).unwrap();
    snap
}

pub(crate) fn run(first: &dyn Store, second: &dyn Store) {
    // A first read resets the reader and is empty.
    let s = read_applied(first, 0, 0, Scope::Changes);
    assert!(s.reset && !s.whole && s.objects.is_empty() && s.pins.is_empty());
    let epoch = s.epoch;
    let mut seen_second = read_applied(second, 0, 0, Scope::Changes);
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
    assert!(
        second.changed_elsewhere().unwrap(),
        "a read counts as seen only once its reader has applied it"
    );
    second.applied(&s.mark).unwrap();
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
    let after = read_applied(first, 1, epoch, Scope::Changes);
    assert_eq!(after.objects, vec![updated.clone()]);
    assert_eq!(after.removed, vec![[2u8; 16]]);
    let nothing_new = read_applied(first, after.seq, epoch, Scope::Changes);
    assert!(nothing_new.objects.is_empty() && nothing_new.removed.is_empty());

    // A whole read lists only live objects; a reset reader asking for changes gets none
    // (it must look objects up), one asking for all gets them all.
    let whole = read_applied(first, after.seq, epoch, Scope::All);
    assert!(whole.whole && !whole.reset && whole.removed.is_empty());
    assert_eq!(whole.objects, vec![updated.clone()]);
    let fresh = read_applied(first, 0, 0, Scope::Changes);
    assert!(fresh.reset && fresh.objects.is_empty() && fresh.removed.is_empty());
    assert_eq!(
        fresh.meta.get("label").map(Vec::as_slice),
        Some(&b"token"[..])
    );
    let fresh = read_applied(first, 0, 0, Scope::All);
    assert!(fresh.reset && fresh.whole);
    assert_eq!(fresh.objects, vec![updated]);

    index_contract(first, second);

    pin_attempt_contract(first, second);

    transact_contract(first, second);

    // A wipe starts a new epoch; a reader of the old epoch gets a complete set.
    first
        .commit(vec![Change::Wipe, Change::PutObject(object(3, false))])
        .unwrap();
    let s = read_applied(second, seen_second.seq, seen_second.epoch, Scope::All);
    assert!(s.reset && s.whole);
    assert_ne!(s.epoch, epoch);
    assert_eq!(s.objects, vec![object(3, false)]);
    assert!(s.pins.is_empty());
    assert!(
        first.lookup(b"k").unwrap().is_empty(),
        "a wipe drops lookup keys"
    );
    assert_eq!(first.due(i64::MAX).unwrap(), Due::default());

    // A value put only if absent sets a missing one and keeps one already there, also
    // one written earlier in the same commit.
    first
        .commit(vec![Change::PutMeta("kept".into(), b"one".to_vec())])
        .unwrap();
    first
        .commit(vec![
            Change::PutMetaIfAbsent("kept".into(), b"two".to_vec()),
            Change::PutMeta("same".into(), b"one".to_vec()),
            Change::PutMetaIfAbsent("same".into(), b"two".to_vec()),
            Change::PutMetaIfAbsent("set".into(), b"yes".to_vec()),
        ])
        .unwrap();
    let meta = read_applied(second, 0, 0, Scope::Changes).meta;
    for (name, value) in [("kept", &b"one"[..]), ("same", b"one"), ("set", b"yes")] {
        assert_eq!(meta.get(name).map(Vec::as_slice), Some(value), "{name}");
    }

    // A commit that requires a metadata value fails whole unless the value is the one
    // required, as the commit's earlier changes leave it (`None`: no value).
    let require = |name: &str, value: Option<&[u8]>| Change::RequireMeta {
        name: name.into(),
        value: value.map(<[u8]>::to_vec),
    };
    let mark = || Change::PutMeta("marked".into(), vec![1]);
    for refused in [
        vec![require("kept", Some(b"two")), mark()],
        vec![mark(), require("set", None)],
        vec![require("absent", Some(b"x")), mark()],
        vec![
            Change::PutMeta("kept".into(), b"three".to_vec()),
            require("kept", Some(b"one")),
            mark(),
        ],
    ] {
        assert!(matches!(
            first.commit(refused),
            Err(StoreError::MetaChanged)
        ));
        let meta = read_applied(second, 0, 0, Scope::Changes).meta;
        assert!(!meta.contains_key("marked"), "nothing of it was written");
        assert_eq!(meta.get("kept").map(Vec::as_slice), Some(&b"one"[..]));
    }
    first
        .commit(vec![
            require("kept", Some(b"one")),
            require("absent", None),
            Change::PutMeta("late".into(), b"x".to_vec()),
            require("late", Some(b"x")),
            mark(),
        ])
        .unwrap();
    let meta = read_applied(second, 0, 0, Scope::Changes).meta;
    assert_eq!(meta.get("marked").map(Vec::as_slice), Some(&[1u8][..]));

    first.check_integrity().unwrap();
}

/// Lookup keys (`lookup` and `load_by_key`, which `found` holds to the same answer), due
/// times and loading by uid, across both handles.
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
    assert_eq!(found(second, b"k"), vec![[10; 16], [11; 16]]);
    assert_eq!(found(second, b"a"), vec![[10; 16]]);
    assert!(found(second, b"none").is_empty());
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
    let state = read_applied(second, 0, 0, Scope::Changes);
    assert_eq!((loaded.seq, loaded.epoch), (state.seq, state.epoch));

    // Rewriting a record replaces its index; reindexing replaces it without a new
    // sequence number; removing a record removes its keys; reindexing a removed
    // record adds nothing.
    second
        .commit(vec![Change::PutObject(indexed(10, &[b"c"], None))])
        .unwrap();
    assert_eq!(found(second, b"k"), vec![[11; 16]]);
    assert_eq!(found(second, b"c"), vec![[10; 16]]);
    let before = read_applied(first, 0, 0, Scope::Changes).seq;
    first
        .commit(vec![Change::Reindex(
            [12; 16],
            RecordIndex {
                lookup: vec![b"d".to_vec()],
                due: Some(7),
            },
        )])
        .unwrap();
    assert_eq!(found(second, b"b"), vec![] as Vec<ObjectUid>);
    assert_eq!(found(second, b"d"), vec![[12; 16]]);
    assert_eq!(second.due(7).unwrap().now, vec![[12; 16]]);
    let changes = read_applied(second, before, state.epoch, Scope::Changes);
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
    assert!(found(second, b"k").is_empty());
    assert!(found(second, b"d").is_empty());
    assert!(found(second, b"e").is_empty());
    assert_eq!(second.due(1000).unwrap(), Due::default());

    // A record written again after its removal is live once more, with its new index
    // only, and a read of the changes since before the removal lists it as written, not
    // as removed.
    first
        .commit(vec![Change::PutObject(indexed(12, &[b"f"], Some(9)))])
        .unwrap();
    assert_eq!(found(second, b"f"), vec![[12; 16]]);
    assert!(found(second, b"d").is_empty());
    assert_eq!(second.due(9).unwrap().now, vec![[12; 16]]);
    let changes = read_applied(second, before, state.epoch, Scope::Changes);
    assert_eq!(changes.objects, vec![object(12, false)]);
    assert_eq!(changes.removed, vec![[11; 16]]);
    // Rewriting it replaces its keys and moves its due time.
    second
        .commit(vec![Change::PutObject(indexed(12, &[b"g"], Some(20)))])
        .unwrap();
    assert_eq!(
        second.due(19).unwrap(),
        Due {
            now: vec![],
            next: Some(20)
        }
    );
    assert_eq!(found(first, b"g"), vec![[12; 16]]);
    assert!(found(first, b"f").is_empty());
    // A record made after the newest one was removed (in SQLite, in the row the removed
    // one had) is not found by the removed one's keys.
    first
        .commit(vec![Change::PutObject(indexed(13, &[b"x"], None))])
        .unwrap();
    first.commit(vec![Change::RemoveObject([13; 16])]).unwrap();
    second
        .commit(vec![Change::PutObject(indexed(14, &[b"y"], None))])
        .unwrap();
    assert!(found(first, b"x").is_empty());
    assert_eq!(found(first, b"y"), vec![[14; 16]]);
    first
        .commit(vec![
            Change::RemoveObject([10; 16]),
            Change::RemoveObject([12; 16]),
            Change::RemoveObject([14; 16]),
        ])
        .unwrap();
}

/// The uids `store` finds by lookup key `key`, sorted, after asserting that `load_by_key`
/// loads exactly those records, as read at the store's current point in history.
fn found(store: &dyn Store, key: &[u8]) -> Vec<ObjectUid> {
    let uids = sorted(store.lookup(key).unwrap());
    let loaded = store.load_by_key(key).unwrap();
    let mut records = loaded.objects;
    records.sort_by_key(|r| r.uid);
    let expected: Vec<ObjectRecord> = uids.iter().map(|uid| object(uid[0], false)).collect();
    assert_eq!(records, expected, "load_by_key({key:?})");
    let state = read_applied(store, 0, 0, Scope::Changes);
    assert_eq!((loaded.seq, loaded.epoch), (state.seq, state.epoch));
    uids
}

/// `transact`: the decision sees the current records (by uid and by lookup key), its
/// changes are committed with it, and `None` writes nothing.
fn transact_contract(first: &dyn Store, second: &dyn Store) {
    first
        .commit(vec![
            Change::PutObject(indexed(20, &[b"key-20"], None)),
            Change::PutObject(indexed(21, &[b"key-20"], None)),
        ])
        .unwrap();
    // Written by one handle, decided on by the other: it sees the current records.
    let mut seen = Vec::new();
    let committed = second
        .transact(&[[22; 16], [99; 16]], &[b"key-20"], &mut |loaded| {
            seen = sorted(loaded.objects.iter().map(|r| r.uid).collect());
            None
        })
        .unwrap();
    assert!(!committed);
    assert_eq!(seen, vec![[20; 16], [21; 16]]);
    let before = read_applied(first, 0, 0, Scope::Changes).seq;
    let committed = second
        .transact(&[[20; 16]], &[], &mut |loaded| {
            assert_eq!(loaded.objects, vec![object(20, false)]);
            let mut next = loaded.objects[0].clone();
            next.plain = vec![1, 2];
            Some(vec![
                Change::PutObject(next),
                Change::RemoveObject([21; 16]),
                Change::PutMeta("decided".into(), vec![1]),
            ])
        })
        .unwrap();
    assert!(committed);
    assert!(first.changed_elsewhere().unwrap());
    let s = read_applied(first, before, 0, Scope::All);
    assert_eq!(s.meta.get("decided"), Some(&vec![1]));
    let loaded = first.load(&[[20; 16], [21; 16]]).unwrap();
    assert_eq!(loaded.objects.len(), 1);
    assert_eq!(loaded.objects[0].plain, vec![1, 2]);
    assert!(loaded.seq > before, "one commit, one new sequence number");
    let unchanged = read_applied(first, 0, 0, Scope::Changes).seq;
    second.transact(&[[20; 16]], &[], &mut |_| None).unwrap();
    assert_eq!(
        read_applied(first, 0, 0, Scope::Changes).seq,
        unchanged,
        "a decision to write nothing writes nothing"
    );
    first.commit(vec![Change::RemoveObject([20; 16])]).unwrap();
}

/// The record `race` decides on: `plain` is empty until someone claims it.
const RACED: ObjectUid = [0x5a; 16];

/// One racer: claims the record if nobody has (a compare-and-set decided in the
/// transaction); answers whether it won.
fn claim(store: &dyn Store, me: u8) -> bool {
    let mut won = false;
    store
        .transact(&[RACED], &[], &mut |loaded| {
            won = false;
            let rec = loaded.objects.iter().find(|r| r.uid == RACED)?;
            if !rec.plain.is_empty() {
                return None;
            }
            won = true;
            let mut next = rec.clone();
            next.plain = vec![me];
            Some(vec![Change::PutObject(next)])
        })
        .unwrap()
        && won
}

/// Racing deciders on one record, through `handles` (each of them `threads_each` threads
/// at once, `trials` times): exactly one claim holds each time, and the record holds
/// the winner's mark.
pub(crate) fn race(handles: &[&dyn Store], threads_each: usize, trials: usize) {
    for trial in 0..trials {
        handles[0]
            .commit(vec![Change::PutObject(ObjectRecord {
                uid: RACED,
                plain: Vec::new(),
                sealed: None,
                index: RecordIndex::default(),
            })])
            .unwrap();
        let barrier = std::sync::Barrier::new(handles.len() * threads_each);
        let winners: Vec<u8> = std::thread::scope(|scope| {
            let mut racers = Vec::new();
            for (h, store) in handles.iter().enumerate() {
                for t in 0..threads_each {
                    let me = (h * threads_each + t) as u8 + 1;
                    let barrier = &barrier;
                    racers.push(scope.spawn(move || {
                        barrier.wait();
                        claim(*store, me).then_some(me)
                    }));
                }
            }
            racers
                .into_iter()
                .filter_map(|r| r.join().unwrap())
                .collect()
        });
        assert_eq!(winners.len(), 1, "trial {trial}: winners {winners:?}");
        let held = handles[handles.len() - 1].load(&[RACED]).unwrap();
        assert_eq!(held.objects[0].plain, winners, "trial {trial}");
    }
}

/// PIN attempts: reserved atomically across handles up to the limit; "busy" rather than
/// "locked" while the limit is reached by attempts in flight (until they settle or their
/// lease ends); a right PIN resets the count, a wrong one leaves it.
fn pin_attempt_contract(first: &dyn Store, second: &dyn Store) {
    use PinAttempt::*;
    let so = PinRole::So;
    let failures = |s: &dyn Store| read_applied(s, 0, 0, Scope::Changes).pins[&so].failures;
    let epoch = read_applied(first, 0, 0, Scope::Changes).epoch;
    // Counted in the SO record (`pin(0)`) of the token of the store's epoch.
    // Attempt number `attempt` at it (numbered per role, across records).
    let at = |attempt| PinRecordId {
        epoch,
        kdf: pin(0).kdf,
        attempt,
    };
    let reserved = |failures, attempt| Reserved {
        failures,
        record: at(attempt),
    };
    assert_eq!(
        first.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
        reserved(1, 1)
    );
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
        reserved(2, 2)
    );
    assert_eq!(
        first.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
        reserved(3, 3)
    );
    // Three in flight: the limit is reached, but one of them may yet be right.
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
        Busy
    );
    assert_eq!(failures(first), 3, "a refused reservation writes nothing");
    let counts = |s: &dyn Store, now| s.pin_counts(now).unwrap()[&so];
    let count = |failures, in_flight| PinCount {
        failures,
        in_flight,
    };
    assert_eq!(counts(second, 100), count(3, 3), "all three in flight");
    assert_eq!(counts(first, 130), count(3, 0), "their lease ended");
    first.settle_pin_attempt(so, false, &at(1)).unwrap();
    second.settle_pin_attempt(so, false, &at(2)).unwrap();
    assert_eq!(counts(first, 100), count(3, 1), "two settled wrong");
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
        Busy
    );
    // The last one was right: the count is reset and attempts are free again.
    first.settle_pin_attempt(so, true, &at(3)).unwrap();
    assert_eq!(failures(second), 0);
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
        reserved(1, 4)
    );
    second.settle_pin_attempt(so, false, &at(4)).unwrap();
    for n in 2..=3 {
        assert_eq!(
            first.reserve_pin_attempt(so, epoch, 3, 100, 130).unwrap(),
            reserved(n, u64::from(n) + 3)
        );
        first
            .settle_pin_attempt(so, false, &at(u64::from(n) + 3))
            .unwrap();
    }
    // Nothing in flight, no attempt left: locked, from every handle.
    assert_eq!(
        first.reserve_pin_attempt(so, epoch, 3, 101, 131).unwrap(),
        Locked
    );
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 3, 101, 131).unwrap(),
        Locked
    );
    assert_eq!(failures(second), 3);
    // Limit 0 never locks; its holder dies without settling: busy at the limit of 4
    // until its lease ends, then locked (and a later reservation starts a fresh count).
    assert_eq!(
        first.reserve_pin_attempt(so, epoch, 0, 200, 230).unwrap(),
        reserved(4, 7)
    );
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 4, 229, 259).unwrap(),
        Busy
    );
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 4, 230, 260).unwrap(),
        Locked
    );
    assert!(
        first
            .reserve_pin_attempt(PinRole::User, epoch, 3, 0, 30)
            .is_err(),
        "no user PIN yet"
    );
    assert_eq!(
        first.settle_pin_attempt(so, true, &at(7)).unwrap(),
        PinSettle::Settled
    );
    assert_eq!(failures(second), 0);
    // An attempt at the record of another token (re-initialised since it was read)
    // settles nothing: a right PIN of the old token does not reset the new one's count.
    assert_eq!(
        first.reserve_pin_attempt(so, epoch, 3, 300, 330).unwrap(),
        reserved(1, 8)
    );
    for other in [epoch + 1, epoch.wrapping_sub(1)] {
        let other = PinRecordId {
            epoch: other,
            ..at(8)
        };
        assert_eq!(
            second.settle_pin_attempt(so, true, &other).unwrap(),
            PinSettle::OtherToken
        );
    }
    assert_eq!(failures(first), 1, "nothing written");
    assert_eq!(
        first.settle_pin_attempt(so, false, &at(8)).unwrap(),
        PinSettle::Settled
    );
    // A right PIN of a record replaced since (C_InitPIN, C_SetPIN: other KDF parameters)
    // resets nothing of the new record's count; a rewrap keeps the count the store holds.
    assert_eq!(
        first.reserve_pin_attempt(so, epoch, 3, 400, 430).unwrap(),
        reserved(2, 9)
    );
    let replacement = PinRecord {
        kdf: vec![9, 9, 9],
        ..pin(2)
    };
    assert_eq!(counts(first, 400).in_flight, 1);
    second
        .commit(vec![Change::PutPin(so, replacement.clone())])
        .unwrap();
    // The attempt in flight was at the record replaced: not in flight at this one, so
    // the new record's count is all wrong PINs (review 15e).
    assert_eq!(
        counts(second, 400),
        count(2, 0),
        "none in flight at the new record"
    );
    let replaced = PinRecordId {
        epoch,
        kdf: replacement.kdf.clone(),
        attempt: 10,
    };
    assert_eq!(
        second.reserve_pin_attempt(so, epoch, 5, 400, 430).unwrap(),
        Reserved {
            failures: 3,
            record: replaced.clone()
        }
    );
    assert_eq!(
        first.settle_pin_attempt(so, true, &at(9)).unwrap(),
        PinSettle::Settled
    );
    assert_eq!(failures(second), 3, "the new record's count stands");
    assert_eq!(
        counts(first, 400),
        count(3, 1),
        "the old attempt's settling leaves the new one in flight"
    );
    second.settle_pin_attempt(so, false, &replaced).unwrap();
    assert_eq!(counts(first, 400), count(3, 0));
    // A rewrap from a record that is no longer the role's does nothing; from the one
    // that is, it keeps the count.
    let rewrap = |from: &[u8]| Change::RewrapPin {
        role: so,
        from_kdf: from.to_vec(),
        record: pin(0),
    };
    first.commit(vec![rewrap(&[7, 7])]).unwrap();
    assert_eq!(
        read_applied(second, 0, 0, Scope::Changes).pins[&so].kdf,
        replacement.kdf
    );
    first.commit(vec![rewrap(&replacement.kdf)]).unwrap();
    let rewrapped = &read_applied(second, 0, 0, Scope::Changes).pins[&so];
    assert_eq!((rewrapped.kdf.clone(), rewrapped.failures), (pin(0).kdf, 3));
    assert_eq!(
        second.settle_pin_attempt(so, true, &at(10)).unwrap(),
        PinSettle::Settled
    );
    assert_eq!(
        failures(first),
        0,
        "a right PIN of the record as it is now resets"
    );
    // A commit that requires a record that is no longer the role's fails whole, also
    // when the commit's own earlier change replaced it; requiring the one that is lets
    // the rest through (here a new PIN over it, the count kept).
    let require = |kdf: &[u8]| Change::RequirePin {
        role: so,
        kdf: kdf.to_vec(),
    };
    let new_pin = |from: &[u8]| Change::RewrapPin {
        role: so,
        from_kdf: from.to_vec(),
        record: PinRecord {
            kdf: vec![8, 8],
            ..pin(5)
        },
    };
    for refused in [
        vec![
            Change::PutMeta("replaced".into(), vec![1]),
            require(&replacement.kdf),
        ],
        vec![
            require(&pin(0).kdf),
            new_pin(&pin(0).kdf),
            Change::PutMeta("replaced".into(), vec![1]),
            require(&pin(0).kdf),
        ],
    ] {
        assert!(matches!(
            first.commit(refused),
            Err(StoreError::PinRecordChanged)
        ));
        let now = read_applied(second, 0, 0, Scope::Changes);
        assert!(
            !now.meta.contains_key("replaced"),
            "nothing of it was written"
        );
        assert_eq!(now.pins[&so].kdf, pin(0).kdf);
    }
    second
        .commit(vec![require(&pin(0).kdf), new_pin(&pin(0).kdf)])
        .unwrap();
    let replaced = &read_applied(first, 0, 0, Scope::Changes).pins[&so];
    assert_eq!((replaced.kdf.clone(), replaced.failures), (vec![8, 8], 0));
    // A reservation for another token than the store's writes nothing.
    for other in [epoch + 1, epoch.wrapping_sub(1)] {
        assert_eq!(
            first.reserve_pin_attempt(so, other, 0, 500, 530).unwrap(),
            OtherToken
        );
    }
    assert_eq!(failures(second), 0);
    // A right PIN forgives the attempts reserved up to it, not those reserved after it,
    // whichever settles first (review 15g: guesses made while the owner's right PIN was
    // being checked were forgiven with it).
    let now_at = |attempt| PinRecordId {
        epoch,
        kdf: vec![8, 8],
        attempt,
    };
    let mut numbers = Vec::new();
    for _ in 0..4 {
        match first.reserve_pin_attempt(so, epoch, 5, 600, 630).unwrap() {
            Reserved { record, .. } => numbers.push(record.attempt),
            other => panic!("reserved: {other:?}"),
        }
    }
    let (owner, guesses) = (numbers[1], [numbers[0], numbers[2], numbers[3]]);
    // One guess after the owner's settles wrong before it, one after; one before it.
    second
        .settle_pin_attempt(so, false, &now_at(guesses[1]))
        .unwrap();
    second.settle_pin_attempt(so, true, &now_at(owner)).unwrap();
    assert_eq!(
        counts(first, 600),
        count(2, 1),
        "the two guesses reserved after the right PIN stay counted (one wrong, one in \
         flight); the one before it, forgiven, is in flight but not counted (review 15i)"
    );
    second
        .settle_pin_attempt(so, false, &now_at(guesses[2]))
        .unwrap();
    second
        .settle_pin_attempt(so, false, &now_at(guesses[0]))
        .unwrap();
    assert_eq!(
        failures(first),
        2,
        "no guess after the right PIN was forgiven"
    );
    // A later right PIN settled first, then an earlier one: the later one's forgiveness
    // stands (the earlier one does not raise the count again).
    let a = match first.reserve_pin_attempt(so, epoch, 5, 700, 730).unwrap() {
        Reserved { record, .. } => record,
        other => panic!("reserved: {other:?}"),
    };
    let b = match first.reserve_pin_attempt(so, epoch, 5, 700, 730).unwrap() {
        Reserved { record, .. } => record,
        other => panic!("reserved: {other:?}"),
    };
    second.settle_pin_attempt(so, true, &b).unwrap();
    assert_eq!(failures(first), 0);
    second.settle_pin_attempt(so, true, &a).unwrap();
    assert_eq!(failures(first), 0);
    second.commit(vec![Change::PutPin(so, pin(0))]).unwrap();
}

/// The audit trail part of the contract: numbering and chaining inside the commit, the
/// head seen inside `transact`, sealing, pruning to a checkpoint, surviving a wipe, and
/// re-keying.
pub(crate) fn audit(first: &dyn Store, second: &dyn Store) {
    use super::audit::{self, anchor_mac, checkpoint_mac, head_mac, link};
    const KEY: [u8; 32] = [3; 32];
    assert!(first.audit_log().unwrap().events.is_empty());

    first
        .commit(vec![
            Change::PutMeta("m".into(), vec![1]),
            Change::event(b"one".to_vec()),
            Change::event(b"two".to_vec()),
        ])
        .unwrap();
    let log = second.audit_log().unwrap();
    let h1 = link(&[0; 32], 1, b"one");
    let h2 = link(&h1, 2, b"two");
    assert_eq!(
        log.events
            .iter()
            .map(|e| (e.seq, e.hash))
            .collect::<Vec<_>>(),
        vec![(1, h1), (2, h2)]
    );

    // Inside a transaction the head is current; a refused decision writes no event.
    let mut seen = AuditHead::default();
    let wrote = second
        .transact(&[], &[], &mut |loaded| {
            seen = loaded.audit;
            None
        })
        .unwrap();
    assert!(!wrote);
    assert_eq!((seen.seq, seen.hash, seen.sealed), (2, h2, false));
    second
        .transact(&[], &[], &mut |loaded| {
            Some(audit::append(
                &loaded.audit,
                vec![b"three".to_vec()],
                Some(&KEY),
            ))
        })
        .unwrap();
    let log = first.audit_log().unwrap();
    let v = audit::verify(&log, &KEY).unwrap();
    assert_eq!((v.head, v.authenticated_through), (3, 3));
    let h3 = log.events[2].hash;
    assert_eq!(log.anchor.map(|a| (a.seq, a.hash)), Some((3, h3)));
    // The next transaction sees the anchor and the hash stored at its event.
    second
        .transact(&[], &[], &mut |loaded| {
            seen = loaded.audit;
            None
        })
        .unwrap();
    assert!(seen.sealed && audit::anchor_sound(&seen, &KEY));
    assert_eq!(seen.anchored_hash, Some(h3));

    // A wipe keeps the trail.
    first.commit(vec![Change::Wipe]).unwrap();
    assert_eq!(second.audit_log().unwrap().events.len(), 3);

    // Pruning needs the stored hash, and leaves an authenticated start.
    let bad = AuditCheckpoint {
        seq: 2,
        hash: [7; 32],
        mac: [0; 32],
    };
    assert!(first.commit(vec![Change::PruneAudit(bad)]).is_err());
    assert_eq!(first.audit_log().unwrap().events.len(), 3, "nothing pruned");
    first
        .commit(vec![Change::PruneAudit(AuditCheckpoint {
            seq: 2,
            hash: h2,
            mac: checkpoint_mac(&KEY, 2, &h2),
        })])
        .unwrap();
    let log = second.audit_log().unwrap();
    assert_eq!(log.events.len(), 1);
    let v = audit::verify(&log, &KEY).unwrap();
    assert_eq!((v.first, v.head, v.checkpoint), (3, 3, Some(2)));

    // Re-keying: the old MACs go, the new ones hold.
    const NEW: [u8; 32] = [4; 32];
    assert!(audit::verify(&log, &NEW).is_err());
    // Not for another checkpoint than the one stored (a prune since the trail was
    // verified): refused, nothing written.
    let stale = [
        None,
        Some(AuditCheckpoint {
            seq: 1,
            hash: h2,
            mac: checkpoint_mac(&NEW, 1, &h2),
        }),
    ];
    for checkpoint in stale {
        assert!(matches!(
            first.commit(vec![Change::RekeyAudit {
                checkpoint,
                seal: None,
            }]),
            Err(StoreError::AuditCheckpointChanged)
        ));
    }
    assert!(
        audit::verify(&second.audit_log().unwrap(), &KEY).is_ok(),
        "a refused re-keying wrote nothing"
    );
    first
        .commit(vec![Change::RekeyAudit {
            checkpoint: Some(AuditCheckpoint {
                seq: 2,
                hash: h2,
                mac: checkpoint_mac(&NEW, 2, &h2),
            }),
            seal: Some(AuditSeal {
                seq: 3,
                mac: head_mac(&NEW, 3, &h3),
            }),
        }])
        .unwrap();
    assert!(
        second.audit_log().unwrap().anchor.is_none(),
        "old anchor gone"
    );
    first
        .commit(vec![Change::AnchorAudit(AuditCheckpoint {
            seq: 3,
            hash: h3,
            mac: anchor_mac(&NEW, 3, &h3),
        })])
        .unwrap();
    let v = audit::verify(&second.audit_log().unwrap(), &NEW).unwrap();
    assert_eq!(v.authenticated_through, 3);
    // Every event pruned: the checkpoint is the head new events chain from.
    second
        .commit(vec![Change::PruneAudit(AuditCheckpoint {
            seq: 3,
            hash: h3,
            mac: checkpoint_mac(&NEW, 3, &h3),
        })])
        .unwrap();
    second
        .commit(vec![Change::event(b"four".to_vec())])
        .unwrap();
    let log = first.audit_log().unwrap();
    assert_eq!(log.events[0].hash, link(&h3, 4, b"four"));
    assert_eq!(audit::verify(&log, &NEW).unwrap().head, 4);
}

/// Restoring a trail read elsewhere (`Change::RestoreAudit`, for copying a token): into
/// an empty trail, written as it is (a broken trail stays broken: nothing is
/// recomputed), with the changes it rides with; into a trail that has events, refused
/// and nothing written.
pub(crate) fn audit_restore(empty: &dyn Store) {
    use super::audit::{self, anchor_mac, checkpoint_mac, head_mac, link, AuditLog, AuditRecord};
    const KEY: [u8; 32] = [5; 32];
    let h7 = [7; 32];
    let h8 = link(&h7, 8, b"eight");
    let log = AuditLog {
        checkpoint: Some(AuditCheckpoint {
            seq: 7,
            hash: h7,
            mac: checkpoint_mac(&KEY, 7, &h7),
        }),
        anchor: Some(AuditCheckpoint {
            seq: 8,
            hash: h8,
            mac: anchor_mac(&KEY, 8, &h8),
        }),
        events: vec![
            AuditRecord {
                seq: 8,
                body: b"eight".to_vec(),
                hash: h8,
                mac: Some(head_mac(&KEY, 8, &h8)),
            },
            // Not the chain hash of its body: kept as it is.
            AuditRecord {
                seq: 9,
                body: b"nine".to_vec(),
                hash: [9; 32],
                mac: None,
            },
        ],
    };
    empty
        .commit(vec![
            Change::PutMeta("m".into(), vec![1]),
            Change::RestoreAudit(Box::new(log.clone())),
        ])
        .unwrap();
    let back = empty.audit_log().unwrap();
    assert_eq!(back.checkpoint, log.checkpoint);
    assert_eq!(back.anchor, log.anchor);
    assert_eq!(back.events, log.events);
    assert_eq!(audit::verify(&back, &KEY).unwrap_err().first, 9);
    assert_eq!(read_applied(empty, 0, 0, Scope::All).meta.len(), 1);

    assert!(empty
        .commit(vec![
            Change::PutMeta("n".into(), vec![2]),
            Change::RestoreAudit(Box::default()),
        ])
        .is_err());
    assert_eq!(empty.audit_log().unwrap().events, log.events);
    assert_eq!(
        read_applied(empty, 0, 0, Scope::All).meta.len(),
        1,
        "nothing written"
    );
}

//! The store contract, written once and run against every backend. `first` and `second`
//! are two handles on one empty token, as two processes would hold them.

use super::*;

fn object(n: u8, sealed: bool) -> ObjectRecord {
    ObjectRecord {
        uid: [n; 16],
        plain: vec![n, n, n],
        sealed: sealed.then(|| vec![0xee, n]),
    }
}

fn pin(failures: u32) -> PinRecord {
    PinRecord {
        kdf: vec![1, 2, 3],
        wrapped_key: vec![4; 60],
        failures,
    }
}

pub(crate) fn run(first: &dyn Store, second: &dyn Store) {
    // A first read is complete and empty.
    let s = first.read(0, 0).unwrap();
    assert!(s.complete && s.objects.is_empty() && s.pins.is_empty());
    let epoch = s.epoch;
    let mut seen_second = second.read(0, 0).unwrap();
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
    let s = second.read(seen_second.seq, seen_second.epoch).unwrap();
    assert!(!s.complete);
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
    let after = first.read(1, epoch).unwrap();
    assert_eq!(after.objects, vec![updated.clone()]);
    assert_eq!(after.removed, vec![[2u8; 16]]);
    let nothing_new = first.read(after.seq, epoch).unwrap();
    assert!(nothing_new.objects.is_empty() && nothing_new.removed.is_empty());

    // A complete read (epoch 0: never read) lists only live objects.
    let whole = first.read(0, 0).unwrap();
    assert!(whole.complete);
    assert_eq!(whole.objects, vec![updated]);

    // PIN failures count atomically across handles and reset.
    assert_eq!(first.count_pin_failure(PinRole::So).unwrap(), 1);
    assert_eq!(second.count_pin_failure(PinRole::So).unwrap(), 2);
    assert!(
        first.count_pin_failure(PinRole::User).is_err(),
        "no user PIN yet"
    );
    first.reset_pin_failures(PinRole::So).unwrap();
    assert_eq!(second.read(0, 0).unwrap().pins[&PinRole::So].failures, 0);

    // A wipe starts a new epoch; a reader of the old epoch gets a complete set.
    first
        .commit(vec![Change::Wipe, Change::PutObject(object(3, false))])
        .unwrap();
    let s = second.read(seen_second.seq, seen_second.epoch).unwrap();
    assert!(s.complete);
    assert_ne!(s.epoch, epoch);
    assert_eq!(s.objects, vec![object(3, false)]);
    assert!(s.pins.is_empty());

    first.check_integrity().unwrap();
}

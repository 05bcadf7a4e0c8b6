//! The audit trail as every store keeps it: opaque event bodies in a hash chain, some
//! of its links authenticated by a MAC, and a checkpoint where old events were pruned.
//!
//! The store numbers events and chains them inside the write transaction that appends
//! them (`Change::AppendEvent`): event `n`'s hash is `link(hash of n-1, n, body)`, event
//! 0 being the all-zero hash (or the checkpoint's). A writer holding the audit key (a
//! subkey of the token master key) adds the MAC of the head it leaves (`head_mac`, stored
//! beside that event); a MAC at `n` vouches for every event up to `n`. The same writer
//! moves the trail's one anchor (the newest authenticated head, under a MAC of its own
//! kind) to that event, so events after an authenticated head cannot be cut off without
//! the anchor pointing past the end. `verify` checks the whole chain, every MAC and the
//! anchor, and names the first event that does not hold.
//! This module knows bytes and hashes only: what an event says is the `kms::audit`
//! layer's business, and the key is handed in by the token layer.

use aws_lc_rs::{constant_time, digest, hmac};
use parking_lot::Mutex;

use super::Change;

pub type Hash = [u8; 32];

/// The MAC of the head at event `seq`, as a writer holding the audit key adds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSeal {
    pub seq: u64,
    pub mac: Hash,
}

/// Domain separation of the two functions.
const LINK_LABEL: &[u8] = b"kmshsm audit link v1\0";
const HEAD_LABEL: &[u8] = b"kmshsm audit head v1\0";
const ANCHOR_LABEL: &[u8] = b"kmshsm audit anchor v1\0";
const CHECKPOINT_LABEL: &[u8] = b"kmshsm audit checkpoint v1\0";

/// The newest event as read inside a write transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditHead {
    /// Its number (0: no event yet; the checkpoint's when every event was pruned).
    pub seq: u64,
    /// Its chain hash.
    pub hash: Hash,
    /// Whether a MAC vouches for it.
    pub sealed: bool,
    /// The anchor, and the hash stored for the event it names (the checkpoint's when
    /// that event was pruned; `None` when there is no such event).
    pub anchor: Option<AuditCheckpoint>,
    pub anchored_hash: Option<Hash>,
    /// With no anchor: whether a MAC still vouches for some stored event, or a
    /// checkpoint is kept. Such a trail had an anchor, now gone (`verify`: "the anchor
    /// is gone"), and is not sealed over (review 16e). Not read when there is an anchor.
    pub authenticated: bool,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub body: Vec<u8>,
    /// The chain hash the store computed when it appended the event.
    pub hash: Hash,
    /// The MAC of the head at this event, when its writer (or a later login) held the key.
    pub mac: Option<Hash>,
}

/// An authenticated point of the chain: where pruning stopped (the last pruned event's
/// number and hash, under a head MAC), or the anchor (the newest authenticated head,
/// under an anchor MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub seq: u64,
    pub hash: Hash,
    pub mac: Hash,
}

/// The whole stored trail, read in one transaction.
#[derive(Debug, Default, Clone)]
pub struct AuditLog {
    pub checkpoint: Option<AuditCheckpoint>,
    pub anchor: Option<AuditCheckpoint>,
    /// In ascending `seq` order.
    pub events: Vec<AuditRecord>,
}

/// The chain hash of event `seq` with `body`, after the event whose hash is `prev`.
pub fn link(prev: &Hash, seq: u64, body: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(LINK_LABEL);
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&(body.len() as u64).to_be_bytes());
    ctx.update(body);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A chain link a caller computed: event `seq`'s hash after the event whose hash is
/// `prev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub prev: Hash,
    pub hash: Hash,
}

/// The number and chain hash of `body` appended after `prev`: the caller's `given` link
/// when it was computed for exactly that position after exactly that hash (against the
/// same head in the same transaction), else computed here.
pub(crate) fn next_link(prev: &AuditHead, body: &[u8], given: Option<Link>) -> (u64, Hash) {
    let seq = prev.seq + 1;
    match given {
        Some(l) if l.seq == seq && l.prev == prev.hash => (seq, l.hash),
        _ => (seq, link(&prev.hash, seq, body)),
    }
}

/// The MAC that authenticates the chain up to event `seq`, whose hash is `hash`.
pub(crate) fn head_mac(key: &[u8; 32], seq: u64, hash: &Hash) -> Hash {
    keyed(key, HEAD_LABEL, seq, hash)
}

fn keyed(key: &[u8; 32], label: &[u8], seq: u64, hash: &Hash) -> Hash {
    keyed_with(&hmac::Key::new(hmac::HMAC_SHA256, key), label, seq, hash)
}

/// `keyed` with the HMAC key set up once (an append makes three MACs).
fn keyed_with(key: &hmac::Key, label: &[u8], seq: u64, hash: &Hash) -> Hash {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(label);
    ctx.update(&seq.to_be_bytes());
    ctx.update(hash);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// The anchor's MAC (a label of its own: a head MAC copied from an event row is not one).
pub(crate) fn anchor_mac(key: &[u8; 32], seq: u64, hash: &Hash) -> Hash {
    keyed(key, ANCHOR_LABEL, seq, hash)
}

/// The checkpoint's MAC (a label of its own, as the anchor's: with the head's label, any
/// event's stored seq, hash and MAC made a checkpoint, and the events before it could be
/// deleted as if pruned: review 16e).
pub(crate) fn checkpoint_mac(key: &[u8; 32], seq: u64, hash: &Hash) -> Hash {
    keyed(key, CHECKPOINT_LABEL, seq, hash)
}

fn checkpoint_holds(key: &[u8; 32], c: &AuditCheckpoint) -> bool {
    constant_time::verify_slices_are_equal(&checkpoint_mac(key, c.seq, &c.hash), &c.mac).is_ok()
}

fn mac_holds(key: &[u8; 32], seq: u64, hash: &Hash, mac: &Hash) -> bool {
    constant_time::verify_slices_are_equal(&head_mac(key, seq, hash), mac).is_ok()
}

fn anchor_holds(key: &[u8; 32], a: &AuditCheckpoint) -> bool {
    constant_time::verify_slices_are_equal(&anchor_mac(key, a.seq, &a.hash), &a.mac).is_ok()
}

/// Whether a writer holding `key` may authenticate what follows `head`'s anchor: there
/// is no anchor and no MAC yet, or it is authentic and its event is still stored with its
/// hash. A trail cut short (or an anchor moved or deleted) is left for `verify` to report,
/// not sealed over.
#[cfg(test)] // used by the tests only
pub(crate) fn anchor_sound(head: &AuditHead, key: &[u8; 32]) -> bool {
    AuditKey::new(key).anchor_sound(head)
}

/// The audit key set up once for the MACs of many appends (an HMAC key schedule, wiped
/// by aws-lc when dropped), with the anchor it last made or found sound. An anchor that
/// is byte for byte one this key made is authentic by construction, so the next append
/// after it skips checking that anchor's MAC again: a login's appends cost two MACs, not
/// three, and no key set-up.
pub(crate) struct AuditKey {
    hmac: hmac::Key,
    known_anchor: Mutex<Option<AuditCheckpoint>>,
}

impl AuditKey {
    pub(crate) fn new(key: &[u8; 32]) -> AuditKey {
        AuditKey {
            hmac: hmac::Key::new(hmac::HMAC_SHA256, key),
            known_anchor: Mutex::new(None),
        }
    }

    /// Whether a writer holding this key may authenticate what follows `head`'s anchor
    /// (`anchor_sound`), remembering an anchor found sound.
    fn anchor_sound(&self, head: &AuditHead) -> bool {
        let Some(a) = &head.anchor else {
            // Sound only for a trail no MAC vouches for yet (a new token's, or one never
            // authenticated): one whose anchor was deleted may have been cut short.
            return !head.authenticated;
        };
        if a.seq > head.seq || head.anchored_hash != Some(a.hash) {
            return false;
        }
        if *self.known_anchor.lock() == Some(*a) {
            return true;
        }
        let sound = constant_time::verify_slices_are_equal(
            &keyed_with(&self.hmac, ANCHOR_LABEL, a.seq, &a.hash),
            &a.mac,
        )
        .is_ok();
        if sound {
            *self.known_anchor.lock() = Some(*a);
        }
        sound
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// The changes that append `bodies` after `head` (read in the same transaction), and,
/// with `key`, authenticate the head they leave and move the anchor to it (unless the
/// anchor is not sound: then the events are appended unauthenticated).
pub(crate) fn append(
    head: &AuditHead,
    bodies: Vec<Vec<u8>>,
    key: Option<&[u8; 32]>,
) -> Vec<Change> {
    append_with(head, bodies, key.map(AuditKey::new).as_ref())
}

/// `append` under a key set up already (a login's, kept for its lifetime).
pub(crate) fn append_with(
    head: &AuditHead,
    bodies: Vec<Vec<u8>>,
    key: Option<&AuditKey>,
) -> Vec<Change> {
    let (mut seq, mut hash) = (head.seq, head.hash);
    let mut changes = Vec::with_capacity(bodies.len() + 2);
    for body in bodies {
        seq += 1;
        let prev = hash;
        hash = link(&prev, seq, &body);
        changes.push(Change::AppendEvent {
            body,
            link: Some(Link { seq, prev, hash }),
        });
    }
    let Some(key) = key.filter(|_| seq > 0) else {
        return changes;
    };
    if key.anchor_sound(head) {
        changes.push(Change::SealAudit(AuditSeal {
            seq,
            mac: keyed_with(&key.hmac, HEAD_LABEL, seq, &hash),
        }));
        let anchor = AuditCheckpoint {
            seq,
            hash,
            mac: keyed_with(&key.hmac, ANCHOR_LABEL, seq, &hash),
        };
        *key.known_anchor.lock() = Some(anchor);
        changes.push(Change::AnchorAudit(anchor));
    }
    changes
}

/// An intact trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The number of the first event kept (after the checkpoint).
    pub first: u64,
    /// The newest event's number and hash (the checkpoint's when none is kept).
    pub head: u64,
    pub head_hash: Hash,
    /// The newest event a MAC vouches for (the checkpoint's, or 0, when none does).
    pub authenticated_through: u64,
    /// Where pruning stopped, if it did.
    pub checkpoint: Option<u64>,
}

impl Verified {
    /// Events after the last MAC: chained, but not authenticated yet.
    pub fn unauthenticated(&self) -> u64 {
        self.head - self.authenticated_through
    }
}

/// A trail that does not hold: the first event found bad (`first`), and when the fault
/// can only be placed within a range (a MAC failed over re-hashed events), the last
/// event that range may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub first: u64,
    pub last: u64,
    pub reason: &'static str,
}

fn broken(first: u64, last: u64, reason: &'static str) -> Broken {
    Broken {
        first,
        last,
        reason,
    }
}

/// Checks the chain from the checkpoint (or event 1) to the newest event, and every MAC
/// under `key`.
pub fn verify(log: &AuditLog, key: &[u8; 32]) -> Result<Verified, Broken> {
    let (mut prev, mut expect, mut vouched) = match &log.checkpoint {
        Some(c) => {
            if !checkpoint_holds(key, c) {
                return Err(broken(
                    c.seq,
                    c.seq,
                    "the checkpoint is not authentic (edited, made from an event's MAC, made \
                     under another key, or by a build before checkpoints had a MAC of their own)",
                ));
            }
            (c.hash, c.seq + 1, c.seq)
        }
        None => ([0u8; 32], 1, 0),
    };
    let first = expect;
    // The recomputed hash at the anchor's event, when the walk passes it.
    let mut at_anchor = log
        .anchor
        .filter(|a| Some(a.seq) == log.checkpoint.map(|c| c.seq))
        .map(|_| prev);
    for event in &log.events {
        if event.seq != expect {
            return Err(broken(
                expect,
                expect,
                if event.seq > expect {
                    "missing (deleted, or the events were renumbered)"
                } else {
                    "out of order (events reordered or duplicated)"
                },
            ));
        }
        let hash = link(&prev, event.seq, &event.body);
        if hash != event.hash {
            return Err(broken(
                event.seq,
                event.seq,
                "altered: its contents or position do not match its chain hash",
            ));
        }
        if let Some(mac) = &event.mac {
            if !mac_holds(key, event.seq, &hash, mac) {
                return Err(broken(
                    vouched + 1,
                    event.seq,
                    "the MAC of this stretch fails: an event in it was altered, inserted or \
                     removed and the chain re-hashed, or the MAC itself was edited",
                ));
            }
            vouched = event.seq;
        }
        if log.anchor.is_some_and(|a| a.seq == event.seq) {
            at_anchor = Some(hash);
        }
        prev = hash;
        expect += 1;
    }
    let head = expect - 1;
    match &log.anchor {
        None if vouched > 0 => {
            return Err(broken(
                head + 1,
                head + 1,
                "the anchor is gone: events after the last one kept may have been cut off",
            ))
        }
        None => {}
        Some(a) if !anchor_holds(key, a) => {
            return Err(broken(
                a.seq,
                a.seq,
                "the anchor is not authentic (edited, or made under another key)",
            ))
        }
        Some(a) if a.seq > head => {
            return Err(broken(
                head + 1,
                a.seq,
                "missing: the trail was cut short (its authenticated end is later)",
            ))
        }
        Some(a) if at_anchor != Some(a.hash) => {
            return Err(broken(
                a.seq,
                a.seq,
                "altered: the anchored event's chain hash is not the anchor's",
            ))
        }
        Some(a) if a.seq < vouched => {
            return Err(broken(
                a.seq + 1,
                vouched,
                "authenticated after the anchor: the anchor was moved back",
            ))
        }
        Some(_) => {}
    }
    Ok(Verified {
        first,
        head,
        head_hash: prev,
        authenticated_through: vouched,
        checkpoint: log.checkpoint.map(|c| c.seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [9; 32];

    fn log(n: u64, sealed_every: u64) -> AuditLog {
        let mut events = Vec::new();
        let mut prev = [0u8; 32];
        for seq in 1..=n {
            let body = format!("event {seq}").into_bytes();
            let hash = link(&prev, seq, &body);
            let mac = (seq % sealed_every == 0).then(|| head_mac(&KEY, seq, &hash));
            events.push(AuditRecord {
                seq,
                body,
                hash,
                mac,
            });
            prev = hash;
        }
        let anchor = events
            .iter()
            .rev()
            .find(|e| e.mac.is_some())
            .map(|e| AuditCheckpoint {
                seq: e.seq,
                hash: e.hash,
                mac: anchor_mac(&KEY, e.seq, &e.hash),
            });
        AuditLog {
            checkpoint: None,
            anchor,
            events,
        }
    }

    /// The head a store would read after `changes` were applied to `head`.
    fn after(head: &AuditHead, changes: &[Change]) -> AuditHead {
        let mut next = *head;
        for c in changes {
            match c {
                Change::AppendEvent { body, link: given } => {
                    let (seq, hash) = next_link(&next, body, *given);
                    assert_eq!(
                        hash,
                        link(&next.hash, seq, body),
                        "the given link is the chain's"
                    );
                    (next.seq, next.hash, next.sealed) = (seq, hash, false);
                }
                Change::SealAudit(s) => next.sealed = s.seq == next.seq,
                Change::AnchorAudit(a) => {
                    next.anchor = Some(*a);
                    next.anchored_hash = Some(a.hash);
                }
                other => panic!("not an audit change: {other:?}"),
            }
        }
        next
    }

    fn sealed(changes: &[Change]) -> bool {
        changes.iter().any(|c| matches!(c, Change::AnchorAudit(_)))
    }

    #[test]
    fn a_kept_audit_key_seals_after_its_own_anchor_and_still_refuses_a_forged_one() {
        let key = AuditKey::new(&KEY);
        let first = append_with(&AuditHead::default(), vec![b"one".to_vec()], Some(&key));
        assert!(sealed(&first));
        let head = after(&AuditHead::default(), &first);
        // Its own anchor, remembered: sealed again (the MAC is not recomputed to know it).
        let second = append_with(&head, vec![b"two".to_vec()], Some(&key));
        assert!(sealed(&second));
        let head = after(&head, &second);
        // The same position and hash under a MAC it did not make: not sealed over, by
        // this key or a fresh one.
        let mut forged = head;
        forged.anchor = head.anchor.map(|a| AuditCheckpoint { mac: [7; 32], ..a });
        assert!(!sealed(&append_with(
            &forged,
            vec![b"x".to_vec()],
            Some(&key)
        )));
        assert!(!sealed(&append(&forged, vec![b"x".to_vec()], Some(&KEY))));
        // Its own anchor over a trail cut short (the anchored event gone): refused too.
        let mut cut = head;
        cut.seq -= 1;
        cut.anchored_hash = None;
        assert!(!sealed(&append_with(&cut, vec![b"y".to_vec()], Some(&key))));
        // A fresh key on the genuine head checks the MAC and agrees.
        assert!(anchor_sound(&head, &KEY));
        assert!(!anchor_sound(&head, &[8; 32]));
    }

    #[test]
    fn a_given_link_for_another_position_or_head_is_computed_again() {
        let head = AuditHead {
            seq: 4,
            hash: [3; 32],
            ..AuditHead::default()
        };
        let right = link(&head.hash, 5, b"e");
        let given = |seq, prev, hash| Some(Link { seq, prev, hash });
        assert_eq!(next_link(&head, b"e", given(5, [3; 32], right)), (5, right));
        // Another position, or another previous hash (a head read elsewhere): computed.
        assert_eq!(
            next_link(&head, b"e", given(9, [3; 32], [1; 32])),
            (5, right)
        );
        assert_eq!(
            next_link(&head, b"e", given(5, [4; 32], [1; 32])),
            (5, right)
        );
        assert_eq!(next_link(&head, b"e", None), (5, right));
    }

    #[test]
    fn an_intact_trail_verifies_and_reports_its_unauthenticated_tail() {
        let v = verify(&log(10, 4), &KEY).unwrap();
        assert_eq!((v.first, v.head, v.authenticated_through), (1, 10, 8));
        assert_eq!(v.unauthenticated(), 2);
    }

    #[test]
    fn deletion_edit_reorder_and_rehash_are_named() {
        let mut l = log(10, 1);
        l.events.remove(3);
        assert_eq!(verify(&l, &KEY).unwrap_err().first, 4);

        let mut l = log(10, 1);
        l.events[5].body = b"forged".to_vec();
        assert_eq!(verify(&l, &KEY).unwrap_err().first, 6);

        let mut l = log(10, 1);
        let body = l.events[2].body.clone();
        l.events[2].body = l.events[3].body.clone();
        l.events[3].body = body;
        assert_eq!(verify(&l, &KEY).unwrap_err().first, 3);

        // Re-hashed from the forged event on: the next MAC catches it.
        let mut l = log(10, 5);
        l.events[6].body = b"forged".to_vec();
        let mut prev = l.events[5].hash;
        for e in &mut l.events[6..] {
            e.hash = link(&prev, e.seq, &e.body);
            prev = e.hash;
        }
        let b = verify(&l, &KEY).unwrap_err();
        assert_eq!((b.first, b.last), (6, 10));
    }

    #[test]
    fn cutting_the_tail_is_caught_by_the_anchor() {
        let mut l = log(10, 1);
        l.events.truncate(7);
        let b = verify(&l, &KEY).unwrap_err();
        assert_eq!((b.first, b.last), (8, 10));
        // Moving the anchor back needs its MAC: a head MAC copied from a row is not one.
        let e = l.events[6].clone();
        l.anchor = Some(AuditCheckpoint {
            seq: e.seq,
            hash: e.hash,
            mac: e.mac.unwrap(),
        });
        assert_eq!(verify(&l, &KEY).unwrap_err().first, 7);
        l.anchor = None;
        assert!(verify(&l, &KEY).is_err(), "an anchor removed");
    }

    #[test]
    fn a_checkpoint_starts_the_chain_and_must_be_authentic() {
        let full = log(10, 2);
        let at = full.events[3].clone();
        let mut l = AuditLog {
            checkpoint: Some(AuditCheckpoint {
                seq: at.seq,
                hash: at.hash,
                mac: checkpoint_mac(&KEY, at.seq, &at.hash),
            }),
            anchor: full.anchor,
            events: full.events[4..].to_vec(),
        };
        let v = verify(&l, &KEY).unwrap();
        assert_eq!((v.first, v.head, v.checkpoint), (5, 10, Some(4)));
        // An event's own head MAC is no checkpoint MAC (review 16e).
        let mut forged = l.clone();
        forged.checkpoint.as_mut().unwrap().mac = head_mac(&KEY, at.seq, &at.hash);
        assert_eq!(verify(&forged, &KEY).unwrap_err().first, 4);
        l.checkpoint.as_mut().unwrap().hash[0] ^= 1;
        assert_eq!(verify(&l, &KEY).unwrap_err().first, 4);
    }

    #[test]
    fn append_chains_after_the_head_and_seals_with_a_key() {
        let head = AuditHead::default();
        let changes = append(&head, vec![b"a".to_vec(), b"b".to_vec()], Some(&KEY));
        let h1 = link(&[0; 32], 1, b"a");
        let h2 = link(&h1, 2, b"b");
        match changes.get(2) {
            Some(Change::SealAudit(s)) => {
                assert_eq!(s.seq, 2);
                assert_eq!(s.mac, head_mac(&KEY, 2, &h2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(append(&head, vec![b"a".to_vec()], None).len(), 1);
    }
}

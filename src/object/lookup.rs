//! The in-memory attribute index's key and value, laid out so that answering "which
//! objects have this label" reads one hash bucket and nothing else.
//!
//! With 100,000 objects the table no longer fits the CPU caches, and every pointer a
//! search follows is a likely cache miss: a key's bytes on the heap, a set's node, the
//! object itself. `LookupKey` keeps short keys (every label and id of typical length)
//! inside the bucket, and `Postings` keeps a single handle — the usual case — inline,
//! with the object's CKA_PRIVATE, which is all a search by one indexed attribute needs
//! besides the handle. This module must not know what the keys mean (`index` builds
//! them) or decide visibility (the token does).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Keys up to this many bytes are stored inline.
const INLINE: usize = 30;

/// A lookup key (`index::lookup_key`): the attribute type, then the value's bytes.
/// Hashes and compares as its bytes, so a map keyed by it is searched with a `&[u8]`.
/// The representation is private: only `new` builds one, so an inline `len` is never
/// more than `INLINE`.
#[derive(Clone)]
pub(crate) struct LookupKey(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl LookupKey {
    pub(crate) fn new(key: &[u8]) -> LookupKey {
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..key.len()), u8::try_from(key.len())) {
            (Some(head), Ok(len)) => {
                head.copy_from_slice(key);
                LookupKey(Repr::Inline { len, bytes })
            }
            _ => LookupKey(Repr::Heap(key.into())),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(bytes),
            Repr::Heap(b) => b,
        }
    }

    /// Whether the key is stored in the hash bucket itself (for the tests).
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Borrow<[u8]> for LookupKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for LookupKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for LookupKey {}

impl Hash for LookupKey {
    /// Exactly `[u8]`'s hash, as `Borrow<[u8]>` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// Labels and ids are not secret, but the index has no business printing them.
impl std::fmt::Debug for LookupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LookupKey({} bytes)", self.as_slice().len())
    }
}

/// The objects with one lookup key: handle → whether the object is private. Generic over
/// the handle type (the table's `ObjectHandle`), so that this file needs nothing from
/// `table`.
#[derive(Debug, Clone)]
pub enum Postings<H> {
    One(H, bool),
    Many(BTreeMap<H, bool>),
}

impl<H: Copy + Ord> Postings<H> {
    pub fn insert(&mut self, handle: H, private: bool) {
        match self {
            Postings::One(h, p) if *h == handle => *p = private,
            Postings::One(h, p) => {
                *self = Postings::Many(BTreeMap::from([(*h, *p), (handle, private)]));
            }
            Postings::Many(map) => {
                map.insert(handle, private);
            }
        }
    }

    /// Removes `handle`; `true` when no handle is left.
    pub fn remove(&mut self, handle: H) -> bool {
        match self {
            Postings::One(h, _) => *h == handle,
            Postings::Many(map) => {
                map.remove(&handle);
                match map.len() {
                    0 => true,
                    1 => {
                        if let Some((h, p)) = map.pop_first() {
                            *self = Postings::One(h, p);
                        }
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Postings::One(..) => 1,
            Postings::Many(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (handle, private), in handle order.
    pub fn iter(&self) -> impl Iterator<Item = (H, bool)> + '_ {
        let (one, many) = match self {
            Postings::One(h, p) => (Some((*h, *p)), None),
            Postings::Many(map) => (None, Some(map.iter().map(|(h, p)| (*h, *p)))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectHandle;
    use std::collections::hash_map::RandomState;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    #[test]
    fn a_key_hashes_and_compares_as_its_bytes_inline_or_not() {
        let state = RandomState::new();
        for len in [0, 1, INLINE, INLINE + 1, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key = LookupKey::new(&bytes);
            assert_eq!(key.as_slice(), &bytes[..]);
            assert_eq!(
                state.hash_one(&key),
                state.hash_one(&bytes[..]),
                "len {len}"
            );
            assert_eq!(key.is_inline(), len <= INLINE);
            let mut map = HashMap::new();
            map.insert(key, len);
            assert_eq!(map.get(&bytes[..]), Some(&len));
        }
        assert_ne!(LookupKey::new(b"ab"), LookupKey::new(b"ab\0"));
    }

    #[test]
    fn postings_go_from_one_to_many_and_back_in_handle_order() {
        let h = ObjectHandle::new;
        let mut p = Postings::One(h(7), true);
        p.insert(h(3), false);
        p.insert(h(9), true);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [(h(3), false), (h(7), true), (h(9), true)]
        );
        assert!(!p.remove(h(7)));
        assert!(!p.remove(h(3)));
        assert!(matches!(p, Postings::One(n, true) if n == h(9)));
        p.insert(h(9), false);
        assert_eq!(p.iter().collect::<Vec<_>>(), [(h(9), false)]);
        assert!(p.remove(h(9)), "the last handle leaves it empty");
    }
}

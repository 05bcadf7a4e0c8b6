//! The miscellaneous simple key derivations of PKCS#11 3.0 §2.43:
//! `CKM_CONCATENATE_BASE_AND_KEY`, `CKM_CONCATENATE_BASE_AND_DATA`,
//! `CKM_CONCATENATE_DATA_AND_BASE`, `CKM_XOR_BASE_AND_DATA` and `CKM_EXTRACT_KEY_FROM_KEY`.
//!
//! Each derived value exposes the bits of its source keys, so these mechanisms declare
//! `DeriveRule::Exposes`: the token makes the derived key sensitive and unextractable
//! whenever a source key is (§2.43). The second key of `CKM_CONCATENATE_BASE_AND_KEY`
//! reaches this module only after the token authorised it as it does the base key.
//! This module must not touch sessions, the store or object attributes.

use crate::ck::*;
use zeroize::Zeroizing;

use super::{info, DeriveInput, DeriveRule, Mechanism, Param};
use crate::error::{Error, Result};
use crate::object::key::Key;

/// Longest value these mechanisms make, in bytes, so no template makes a huge key.
const MAX_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BaseAndKey,
    BaseAndData,
    DataAndBase,
    Xor,
    Extract,
}

#[derive(Debug)]
pub(super) struct SimpleDerive {
    kind: MechType,
    how: Kind,
}

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &SimpleDerive {
        kind: CKM_CONCATENATE_BASE_AND_KEY,
        how: Kind::BaseAndKey,
    },
    &SimpleDerive {
        kind: CKM_CONCATENATE_BASE_AND_DATA,
        how: Kind::BaseAndData,
    },
    &SimpleDerive {
        kind: CKM_CONCATENATE_DATA_AND_BASE,
        how: Kind::DataAndBase,
    },
    &SimpleDerive {
        kind: CKM_XOR_BASE_AND_DATA,
        how: Kind::Xor,
    },
    &SimpleDerive {
        kind: CKM_EXTRACT_KEY_FROM_KEY,
        how: Kind::Extract,
    },
];

/// `len` bits of `value` from bit `start` on, bit 0 being the most significant bit of
/// the first byte, wrapping around the end (§2.43.7).
fn extract_bits(value: &[u8], start: u64, len: usize) -> Zeroizing<Vec<u8>> {
    let total = value.len() as u64 * 8;
    // Reduced first: `start` is the caller's CK_ULONG and may be near 2^64, where
    // adding the offset would overflow.
    let start = start % total;
    let bit = |i: u64| {
        let pos = (start + i) % total;
        (value[(pos / 8) as usize] >> (7 - pos % 8)) & 1
    };
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, byte) in out.iter_mut().enumerate() {
        for j in 0..8u64 {
            *byte = (*byte << 1) | bit(i as u64 * 8 + j);
        }
    }
    out
}

/// The leftmost `len` bytes of `full` (all of it when the template gives no length);
/// more than there is is `CKR_TEMPLATE_INCONSISTENT` (§2.43: "an error is generated"),
/// and so is fewer than `keep`, the end of the last guarded key's bytes in `full`: a cut
/// through a guarded key's value would make a key of a few of its bytes, each found by
/// trying 256 values (`DeriveInput::guarded`).
fn truncate(
    full: Zeroizing<Vec<u8>>,
    len: Option<usize>,
    keep: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    match len {
        None => Ok(full),
        Some(n) if n < keep => Err(Error::TemplateInconsistent),
        Some(n) if n <= full.len() => Ok(Zeroizing::new(full[..n].to_vec())),
        Some(_) => Err(Error::TemplateInconsistent),
    }
}

impl SimpleDerive {
    fn value(&self, param: &Param, base: &[u8], input: &DeriveInput) -> Result<Zeroizing<Vec<u8>>> {
        let len = match input.lens.as_slice() {
            [len] => *len,
            _ => return Err(Error::MechanismParamInvalid),
        };
        if base.is_empty() {
            return Err(Error::KeySizeRange);
        }
        let joined = |a: &[u8], b: &[u8]| -> Result<Zeroizing<Vec<u8>>> {
            if a.len() + b.len() > MAX_LEN {
                return Err(Error::KeySizeRange);
            }
            let mut v = Zeroizing::new(Vec::with_capacity(a.len() + b.len()));
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            Ok(v)
        };
        let (base_guarded, other_guarded) = input.guarded;
        // Where the base's bytes end in the output, if it is guarded (else 0).
        let base_end = |at: usize| if base_guarded { at + base.len() } else { 0 };
        match (self.how, param) {
            (Kind::BaseAndKey, Param::ObjectHandle(_)) => {
                let other = input.other.ok_or(Error::MechanismParamInvalid)?.secret()?;
                let keep = if other_guarded {
                    base.len() + other.len()
                } else {
                    base_end(0)
                };
                truncate(joined(base, other)?, len, keep)
            }
            (Kind::BaseAndData, Param::Bytes(data)) => {
                truncate(joined(base, data)?, len, base_end(0))
            }
            (Kind::DataAndBase, Param::Bytes(data)) => {
                truncate(joined(data, base)?, len, base_end(data.len()))
            }
            (Kind::Xor, Param::Bytes(data)) => {
                // Data shorter than a guarded base would cut it too.
                if base_guarded && data.len() < base.len() {
                    return Err(Error::TemplateInconsistent);
                }
                let x = base.iter().zip(data).map(|(a, b)| a ^ b).collect();
                truncate(Zeroizing::new(x), len, base_end(0))
            }
            (Kind::Extract, Param::Ulong(start)) => {
                // §2.43.7: no length and no key type of one length is an error.
                let n = len.ok_or(Error::TemplateIncomplete)?;
                // Of a guarded base, only the whole of it (its bits rotated).
                if n == 0 || n > base.len() || (base_guarded && n < base.len()) {
                    return Err(Error::TemplateInconsistent);
                }
                Ok(extract_bits(base, *start, n))
            }
            _ => Err(Error::MechanismParamInvalid),
        }
    }
}

impl Mechanism for SimpleDerive {
    fn kind(&self) -> MechType {
        self.kind
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(1, MAX_LEN as u64, CKF_DERIVE)
    }
    fn derive_keys(
        &self,
        param: &Param,
        base: &Key,
        input: &DeriveInput,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        if (self.how == Kind::BaseAndKey) != input.other.is_some() {
            return Err(Error::MechanismParamInvalid);
        }
        Ok(vec![self.value(param, base.secret()?, input)?])
    }
    fn derive_rule(&self) -> DeriveRule {
        DeriveRule::Exposes {
            strict: self.how == Kind::Extract,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectHandle;
    use crate::object::key::Material;

    fn secret(v: &[u8]) -> Key {
        Key {
            class: CKO_SECRET_KEY,
            key_type: CKK_GENERIC_SECRET,
            material: Material::Secret(Zeroizing::new(v.to_vec())),
            prepared: Default::default(),
        }
    }

    fn run(
        m: &SimpleDerive,
        param: Param,
        base: &[u8],
        other: Option<&Key>,
        len: Option<usize>,
    ) -> Result<Vec<u8>> {
        let input = DeriveInput {
            other,
            lens: vec![len],
            guarded: (false, false),
        };
        let mut out = m.derive_keys(&param, &secret(base), &input)?;
        Ok(out.remove(0).to_vec())
    }

    static BASE_AND_KEY: SimpleDerive = SimpleDerive {
        kind: CKM_CONCATENATE_BASE_AND_KEY,
        how: Kind::BaseAndKey,
    };
    static BASE_AND_DATA: SimpleDerive = SimpleDerive {
        kind: CKM_CONCATENATE_BASE_AND_DATA,
        how: Kind::BaseAndData,
    };
    static DATA_AND_BASE: SimpleDerive = SimpleDerive {
        kind: CKM_CONCATENATE_DATA_AND_BASE,
        how: Kind::DataAndBase,
    };
    static XOR: SimpleDerive = SimpleDerive {
        kind: CKM_XOR_BASE_AND_DATA,
        how: Kind::Xor,
    };
    static EXTRACT: SimpleDerive = SimpleDerive {
        kind: CKM_EXTRACT_KEY_FROM_KEY,
        how: Kind::Extract,
    };

    // The examples of PKCS#11 3.0 Current Mechanisms §2.43.3-§2.43.7.
    #[test]
    fn the_specifications_examples() {
        let base = [0x01, 0x23, 0x45, 0x67];
        let data = Param::Bytes(vec![0x89, 0xAB, 0xCD, 0xEF]);
        let other = secret(&[0x89, 0xAB, 0xCD, 0xEF]);
        let joined = vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        let m = &BASE_AND_KEY;
        assert_eq!(
            run(
                m,
                Param::ObjectHandle(ObjectHandle::new(7)),
                &base,
                Some(&other),
                None
            )
            .unwrap(),
            joined
        );
        let m = &BASE_AND_DATA;
        assert_eq!(run(m, data.clone(), &base, None, None).unwrap(), joined);
        let m = &DATA_AND_BASE;
        assert_eq!(
            run(m, data.clone(), &base, None, None).unwrap(),
            [0x89, 0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67]
        );
        let m = &XOR;
        assert_eq!(run(m, data, &base, None, None).unwrap(), [0x88; 4]);
        // 0x329F84A9 from bit 21, two bytes: 0x9526.
        let m = &EXTRACT;
        assert_eq!(
            run(
                m,
                Param::Ulong(21),
                &[0x32, 0x9F, 0x84, 0xA9],
                None,
                Some(2)
            )
            .unwrap(),
            [0x95, 0x26]
        );
    }

    #[test]
    fn lengths_truncate_or_fail() {
        let m = &BASE_AND_DATA;
        let data = Param::Bytes(vec![4, 5]);
        assert_eq!(
            run(m, data.clone(), &[1, 2, 3], None, Some(4)).unwrap(),
            [1, 2, 3, 4]
        );
        assert!(matches!(
            run(m, data, &[1, 2, 3], None, Some(6)),
            Err(Error::TemplateInconsistent)
        ));
        // XOR is as long as the shorter of key and data.
        let m = &XOR;
        assert_eq!(
            run(m, Param::Bytes(vec![0xFF]), &[1, 2], None, None).unwrap(),
            [0xFE]
        );
        let m = &EXTRACT;
        assert!(matches!(
            run(m, Param::Ulong(0), &[1, 2], None, None),
            Err(Error::TemplateIncomplete)
        ));
        assert!(matches!(
            run(m, Param::Ulong(0), &[1, 2], None, Some(3)),
            Err(Error::TemplateInconsistent)
        ));
        // Wrapping around: from bit 12 of 0xABCD, 16 bits: D A B C.
        assert_eq!(
            run(m, Param::Ulong(12), &[0xAB, 0xCD], None, Some(2)).unwrap(),
            [0xDA, 0xBC]
        );
    }

    #[test]
    fn the_second_key_is_required_exactly_for_base_and_key() {
        let other = secret(&[1]);
        let m = &BASE_AND_KEY;
        assert!(matches!(
            run(
                m,
                Param::ObjectHandle(ObjectHandle::new(3)),
                &[1],
                None,
                None
            ),
            Err(Error::MechanismParamInvalid)
        ));
        let m = &BASE_AND_DATA;
        assert!(matches!(
            run(m, Param::Bytes(vec![1]), &[1], Some(&other), None),
            Err(Error::MechanismParamInvalid)
        ));
    }

    /// A guarded source is never cut: every byte of it is in the derived key, or the
    /// derivation is refused.
    #[test]
    fn a_guarded_key_is_never_cut() {
        let guarded = |m: &SimpleDerive, param: Param, other: Option<&Key>, len, g| {
            let input = DeriveInput {
                other,
                lens: vec![len],
                guarded: g,
            };
            m.derive_keys(&param, &secret(&[5; 16]), &input)
                .map(|mut v| v.remove(0).len())
        };
        let data = || Param::Bytes(vec![1; 15]);
        let refused = |r: Result<usize>| matches!(r, Err(Error::TemplateInconsistent));
        assert!(refused(guarded(
            &EXTRACT,
            Param::Ulong(8),
            None,
            Some(1),
            (true, false)
        )));
        assert_eq!(
            guarded(&EXTRACT, Param::Ulong(8), None, Some(16), (true, false)).unwrap(),
            16
        );
        assert!(refused(guarded(
            &DATA_AND_BASE,
            data(),
            None,
            Some(16),
            (true, false)
        )));
        assert_eq!(
            guarded(&DATA_AND_BASE, data(), None, Some(31), (true, false)).unwrap(),
            31
        );
        assert!(refused(guarded(
            &BASE_AND_DATA,
            data(),
            None,
            Some(15),
            (true, false)
        )));
        assert!(refused(guarded(&XOR, data(), None, None, (true, false))));
        assert_eq!(
            guarded(&XOR, Param::Bytes(vec![1; 16]), None, None, (true, false)).unwrap(),
            16
        );
        let other = secret(&[6; 16]);
        let handle = || Param::ObjectHandle(ObjectHandle::from_raw(1));
        assert!(refused(guarded(
            &BASE_AND_KEY,
            handle(),
            Some(&other),
            Some(17),
            (false, true)
        )));
        assert_eq!(
            guarded(
                &BASE_AND_KEY,
                handle(),
                Some(&other),
                Some(17),
                (false, false)
            )
            .unwrap(),
            17
        );
        // Unguarded sources keep §2.43's truncation.
        assert_eq!(
            guarded(&EXTRACT, Param::Ulong(8), None, Some(1), (false, false)).unwrap(),
            1
        );
    }
}

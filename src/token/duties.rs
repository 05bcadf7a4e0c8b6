//! The opt-in separation-of-duties policy (docs/security.md): no key may both wrap and
//! decrypt, nor both unwrap and encrypt, because such a key lets its user wrap any
//! extractable key and decrypt the result.
//!
//! "A key" is judged over everything that holds its bits, at every moment: the two
//! halves of a generated RSA or SM2 pair count as one key; a key's duties are fixed when
//! it is made (a change, a copy or a copying derivation may drop a duty, never add one: a
//! key that wrapped yesterday and decrypts today does both, reviews 16a and 16b); and a
//! duty is what the key can do, not only its flag (an RSA private key that signs with
//! `CKM_RSA_X_509` decrypts). A key that wraps must be one no caller knows the value of:
//! generated on the token and never extractable (for an RSA or SM2 public key, its
//! private half never extractable), or its caller decrypts what it wraps outside the
//! token. The policy is the token's once a process configured with it made or logged
//! into the token (`Token::separating_duties`): a later process's configuration cannot
//! turn it off.
//!
//! This module judges objects, as pure functions of the objects and of the policy the
//! token found (`Token::policy`, which catches up with the store first); what a write
//! judged without the policy must find still so at its commit is `Policy::requirements`.
//! It must not write the store or read the caller's login.

use crate::ck::*;

use super::{Token, META_RECORD_AUTH, META_SEPARATION_OF_DUTIES};
use crate::error::{Error, Result, StoreError};
use crate::ids::MechType;
use crate::object::attr::{AttrType, Value};
use crate::object::key::CKK_SM2;
use crate::object::policy::IMPORT_TARGET;
use crate::object::{Object, RecordAuth};
use crate::store::Change;

/// What a key can do that the policy sets against each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Duties {
    wrap: bool,
    unwrap: bool,
    encrypt: bool,
    decrypt: bool,
}

impl Duties {
    fn union(self, other: Duties) -> Duties {
        Duties {
            wrap: self.wrap || other.wrap,
            unwrap: self.unwrap || other.unwrap,
            encrypt: self.encrypt || other.encrypt,
            decrypt: self.decrypt || other.decrypt,
        }
    }

    fn mixed(self) -> bool {
        (self.wrap && self.decrypt) || (self.unwrap && self.encrypt)
    }

    /// Whether `self` holds a duty `before` did not.
    fn beyond(self, before: Duties) -> bool {
        (self.wrap && !before.wrap)
            || (self.unwrap && !before.unwrap)
            || (self.encrypt && !before.encrypt)
            || (self.decrypt && !before.decrypt)
    }
}

fn on(object: &Object, ty: AttrType) -> bool {
    object.bool_attr(ty) == Some(true)
}

/// Whether `object`'s `CKA_ALLOWED_MECHANISMS` lets it run `mechanism` (an empty or
/// missing list allows every mechanism).
fn allows(object: &Object, mechanism: MechType) -> bool {
    match object.value(CKA_ALLOWED_MECHANISMS) {
        Some(Value::Mechanisms(list)) => list.is_empty() || list.contains(&mechanism),
        _ => true,
    }
}

/// What `object` can do, by its flags and what they mean for its type: an RSA private
/// key that signs with `CKM_RSA_X_509` decrypts (a raw signature is the raw decryption,
/// docs/security.md "Raw RSA"; review 16b).
fn duties(object: &Object) -> Duties {
    let raw_rsa_private = object.class == CKO_PRIVATE_KEY
        && object.key_type == Some(CKK_RSA)
        && allows(object, CKM_RSA_X_509);
    Duties {
        wrap: on(object, CKA_WRAP),
        unwrap: on(object, CKA_UNWRAP),
        encrypt: on(object, CKA_ENCRYPT),
        // `CKA_SIGN_RECOVER` is inert: the module has no `C_SignRecover`.
        decrypt: on(object, CKA_DECRYPT) || (raw_rsa_private && on(object, CKA_SIGN)),
    }
}

/// Whether the objects, taken as one key, both wrap and decrypt or both unwrap and
/// encrypt.
pub(super) fn mix_duties(key: &[&Object]) -> bool {
    key.iter()
        .fold(Duties::default(), |all, o| all.union(duties(o)))
        .mixed()
}

/// Whether `after` can do something the policy weighs that `before` could not.
fn gains_duty(before: &Object, after: &Object) -> bool {
    duties(after).beyond(duties(before))
}

/// Whether a secret or private key's value has never been known outside the token:
/// generated here and never extractable since.
fn unknown_value(key: &Object) -> bool {
    on(key, CKA_LOCAL) && on(key, CKA_NEVER_EXTRACTABLE)
}

/// Whether `object` is of a key type whose public half encrypts or wraps and whose
/// private half decrypts or unwraps (RSA, SM2). Other public keys (EC, EdDSA, X25519)
/// have no mechanism that wraps or encrypts here: their `CKA_WRAP` is inert.
fn crosses(object: &Object) -> bool {
    matches!(object.key_type, Some(CKK_RSA | CKK_SM2))
}

/// Whether `object` may wrap under the policy, judged alone: a secret key of unknown
/// value, or an RSA or SM2 public key generated on the token (its private half is judged
/// with it, `Policy::judge_together`). Objects that do not wrap pass.
fn may_wrap(object: &Object) -> bool {
    if !on(object, CKA_WRAP) {
        return true;
    }
    match object.class {
        CKO_PUBLIC_KEY => !crosses(object) || on(object, CKA_LOCAL),
        _ => unknown_value(object),
    }
}

/// A key the policy never judged, though the token is under it now: one read from a
/// record without authentication (whoever can write the token file may have given it
/// `CKA_WRAP`, or edited its `CKA_TOKEN`, and a session not logged in may have made it
/// while the policy's row was missing: review 20a, 20b), or one this process built
/// before it knew the token was under the policy, which the policy would not let be made
/// now. Where the object lives is not asked: a record says what it likes of that.
fn unjudged(object: &Object) -> bool {
    match object.record_auth() {
        RecordAuth::Unauthenticated => true,
        RecordAuth::Claimed => false,
        RecordAuth::Local => mix_duties(&[object]) || !may_wrap(object),
    }
}

/// The two halves of an RSA or SM2 key pair (`crosses`), in that order.
fn pair_halves(objects: &[Object]) -> Option<(&Object, &Object)> {
    let [public, private] = objects else {
        return None;
    };
    (public.class == CKO_PUBLIC_KEY
        && private.class == CKO_PRIVATE_KEY
        && crosses(public)
        && crosses(private))
    .then_some((public, private))
}

/// What the policy answers a write it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A new object (created, generated, copied, unwrapped, derived).
    Template,
    /// A change of an object's attributes.
    Action,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        match refusal {
            Refusal::Template => Error::TemplateInconsistent,
            Refusal::Action => Error::ActionProhibited,
        }
    }
}

/// The policy as one write found it (`Token::policy`), taken before the write is judged,
/// and what the write's commit must then require of the store.
///
/// The policy never goes off, so a write judged under it needs nothing more. A write
/// judged without it that the policy would refuse is committed only if the store still
/// holds the token as the judgement found it: no policy row, and the
/// record-authentication marker the judgement read (`requirements`). Otherwise another
/// process put the token under the policy between the judgement and the commit, and the
/// write gets the policy's answer (`answer`): the write is decided on the token as it is
/// when it is stored, as if it had been judged there.
#[derive(Debug)]
pub(super) enum Policy {
    Under,
    Off {
        /// The record-authentication marker the judgement read (`None`: there was none).
        marker: Option<Vec<u8>>,
        /// What the policy would answer the write judged so far.
        refused: Option<Refusal>,
    },
}

impl Policy {
    pub(super) fn off(marker: Option<Vec<u8>>) -> Policy {
        Policy::Off {
            marker,
            refused: None,
        }
    }

    pub(super) fn is_under(&self) -> bool {
        matches!(self, Policy::Under)
    }

    /// A write the policy refuses with `refusal` when `refused`: refused now under the
    /// policy, else remembered for the commit.
    fn weigh(&mut self, refused: bool, refusal: Refusal) -> Result<()> {
        if !refused {
            return Ok(());
        }
        match self {
            Policy::Under => Err(refusal.into()),
            Policy::Off { refused, .. } => {
                refused.get_or_insert(refusal);
                Ok(())
            }
        }
    }

    /// What the commit of the write judged must require of the store (nothing, unless
    /// the policy would refuse the write).
    pub(super) fn requirements(&self) -> Vec<Change> {
        match self {
            Policy::Off {
                marker,
                refused: Some(_),
            } => vec![
                Change::RequireMeta {
                    name: META_SEPARATION_OF_DUTIES.into(),
                    value: None,
                },
                Change::RequireMeta {
                    name: META_RECORD_AUTH.into(),
                    value: marker.clone(),
                },
            ],
            _ => Vec::new(),
        }
    }

    /// The answer to a write whose commit failed with `e`: the policy's own where the
    /// commit found the token put under it meanwhile (`requirements`).
    pub(super) fn answer(&self, e: Error) -> Error {
        match (e, self) {
            (
                Error::Store(StoreError::MetaChanged),
                Policy::Off {
                    refused: Some(refusal),
                    ..
                },
            ) => (*refusal).into(),
            (e, _) => e,
        }
    }

    /// The policy for a write whose commit found the token's metadata changed
    /// (`StoreError::MetaChanged`), given the policy as the token holds it `now` (taken
    /// again): under it, the policy's answer to the write; else the write as judged so
    /// far, for its commit to require the marker found now. A marker changed without
    /// putting the token under the policy (the first one, written by an older token's
    /// adoption, review 22a) is not the policy's refusal.
    pub(super) fn again(&self, now: Policy) -> Result<Policy> {
        match (self, now) {
            (_, Policy::Under) => match self {
                Policy::Off {
                    refused: Some(refusal),
                    ..
                } => Err((*refusal).into()),
                _ => Ok(Policy::Under),
            },
            (Policy::Off { refused, .. }, Policy::Off { marker, .. }) => Ok(Policy::Off {
                marker,
                refused: *refused,
            }),
            (Policy::Under, Policy::Off { .. }) => Ok(Policy::Under),
        }
    }

    /// A new object (created, generated, copied, unwrapped, derived), before it is
    /// stored.
    pub(super) fn judge_new(&mut self, object: &Object) -> Result<()> {
        self.weigh(
            mix_duties(&[object]) || !may_wrap(object),
            Refusal::Template,
        )
    }

    /// Objects stored together: a generated key pair is one key (each half is judged
    /// alone by `judge_new` too). The import wrapping pair is the module's own, made
    /// to unwrap the material its owner encrypts, and bound to one target
    /// (`IMPORT_TARGET`): it is left out.
    pub(super) fn judge_together(&mut self, objects: &[Object]) -> Result<()> {
        let Some((public, private)) = pair_halves(objects) else {
            return Ok(());
        };
        if public.has(IMPORT_TARGET) || private.has(IMPORT_TARGET) {
            return Ok(());
        }
        // Across the halves only wrapping and decryption conflict: the public half's
        // encryption is anyone's (its values are public), so a private half that unwraps
        // takes blobs of known keys whatever the public half's flags; such keys do not
        // wrap (`may_wrap`).
        let (public_does, private_does) = (duties(public), duties(private));
        self.weigh(
            public_does.wrap && (private_does.decrypt || !unknown_value(private)),
            Refusal::Template,
        )
    }

    /// A copy of `source`, before it is stored: the same bits, so no duty its source did
    /// not have.
    ///
    /// Nor may a key the policy never judged (`unjudged`) be copied into one that wraps:
    /// the copy would wrap what the source, the same bits, decrypts, or carry a forged
    /// record's flags into a record of its own (review 20c).
    pub(super) fn judge_copy(&mut self, source: &Object, copy: &Object) -> Result<()> {
        self.weigh(
            gains_duty(source, copy) || (unjudged(source) && on(copy, CKA_WRAP)),
            Refusal::Template,
        )
    }

    /// The object a change produced, before it is stored: no duty added (a flag turned
    /// on, or `CKA_ALLOWED_MECHANISMS` widened to raw RSA on a private key that signs).
    pub(super) fn judge_change(&mut self, before: &Object, after: &Object) -> Result<()> {
        self.weigh(gains_duty(before, after), Refusal::Action)
    }

    /// A key derived by a mechanism that exposes its sources' bits (§2.43: a copy, or
    /// part of one): judged as a copy of each source, it may do nothing a source cannot.
    /// Judged only with its sources' duties it would not do (review 16b): a copy with no
    /// duty of a key that wraps, copied again into one that decrypts, holds the first
    /// key's bits with the other duty.
    pub(super) fn judge_exposing_derivation(
        &mut self,
        sources: &[&Object],
        derived: &Object,
    ) -> Result<()> {
        self.weigh(
            sources.iter().any(|s| gains_duty(s, derived)),
            Refusal::Template,
        )
    }
}

impl Token {
    /// The wrapping key of a `C_WrapKey`: under the policy, a key the policy never
    /// judged (`unjudged`) does not wrap. A use, not a write: judged on the policy as it
    /// is at the call.
    pub(super) fn authorise_wrapping_key(&self, wrapping: &Object) -> Result<()> {
        if !self.separating_duties()? {
            return Ok(());
        }
        if unjudged(wrapping) {
            Err(Error::KeyFunctionNotPermitted)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::template::{self, Provenance};

    const DUTIES: [AttrType; 4] = [CKA_WRAP, CKA_UNWRAP, CKA_ENCRYPT, CKA_DECRYPT];

    /// An AES key with the four duty flags off but those `flags` turns on or off.
    fn secret(flags: &[(AttrType, bool)], provenance: Provenance) -> Object {
        let off = DUTIES.iter().map(|ty| (*ty, false));
        let given: Vec<(AttrType, Value)> = off
            .filter(|(ty, _)| !flags.iter().any(|(f, _)| f == ty))
            .chain(flags.iter().copied())
            .map(|(ty, v)| (ty, Value::Bool(v)))
            .chain([(CKA_VALUE, Value::Bytes(vec![7; 16]))])
            .collect();
        template::build_key(CKO_SECRET_KEY, CKK_AES, &[], given, provenance).unwrap()
    }

    #[test]
    fn one_key_mixes_duties_across_its_objects() {
        let wraps = secret(
            &[(CKA_WRAP, true), (CKA_DECRYPT, false)],
            Provenance::Supplied,
        );
        let decrypts = secret(
            &[(CKA_WRAP, false), (CKA_DECRYPT, true)],
            Provenance::Supplied,
        );
        assert!(!mix_duties(&[&wraps]));
        assert!(!mix_duties(&[&decrypts]));
        assert!(mix_duties(&[&wraps, &decrypts]));
        assert!(gains_duty(&wraps, &decrypts));
        assert!(!gains_duty(&decrypts, &decrypts));
    }

    #[test]
    fn only_a_generated_never_extractable_key_may_wrap() {
        let generated = Provenance::Generated(CKM_AES_KEY_GEN);
        let fixed = [(CKA_WRAP, true), (CKA_EXTRACTABLE, false)];
        assert!(may_wrap(&secret(&fixed, generated)));
        assert!(!may_wrap(&secret(&fixed, Provenance::Supplied)));
        assert!(!may_wrap(&secret(&fixed, Provenance::Unwrapped)));
        let extractable = [(CKA_WRAP, true), (CKA_EXTRACTABLE, true)];
        assert!(!may_wrap(&secret(&extractable, generated)));
        assert!(may_wrap(&secret(
            &[(CKA_WRAP, false)],
            Provenance::Supplied
        )));
    }
}

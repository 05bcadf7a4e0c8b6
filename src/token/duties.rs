//! The opt-in separation-of-duties policy (`separation_of_duties = true`,
//! docs/security.md): no key may both wrap and decrypt, nor both unwrap and encrypt,
//! because such a key lets its user wrap any extractable key and decrypt the result.
//!
//! "A key" is judged over everything that holds its bits, at every moment: the two
//! halves of a generated RSA or SM2 pair count as one key, and a key's duties are fixed
//! when it is made (a change or a copy may drop a duty flag, never turn one on: a key
//! that wrapped yesterday and decrypts today does both, review 16a). A key that wraps
//! must be one no caller knows the value of: generated on the token and never
//! extractable (for a public key, its private half never extractable), or its caller
//! decrypts what it wraps outside the token. Keys derived by a mechanism that exposes
//! its sources' bits are judged with each source (`Token::authorise_exposing_derivation`).
//!
//! This module only judges objects; it must not read the store or the caller's login.

use crate::ck::*;

use super::Token;
use crate::error::{Error, Result};
use crate::object::attr::AttrType;
use crate::object::key::CKK_SM2;
use crate::object::policy::IMPORT_TARGET;
use crate::object::Object;

/// The usage flags the policy sets against each other.
const DUTIES: [AttrType; 4] = [CKA_WRAP, CKA_UNWRAP, CKA_ENCRYPT, CKA_DECRYPT];

fn on(object: &Object, ty: AttrType) -> bool {
    object.bool_attr(ty) == Some(true)
}

/// Whether the objects, taken as one key, both wrap and decrypt or both unwrap and
/// encrypt.
pub(super) fn mix_duties(key: &[&Object]) -> bool {
    let any = |ty| key.iter().any(|o| on(o, ty));
    (any(CKA_WRAP) && any(CKA_DECRYPT)) || (any(CKA_UNWRAP) && any(CKA_ENCRYPT))
}

/// Whether `after` holds a duty flag that `before` did not.
fn gains_duty(before: &Object, after: &Object) -> bool {
    DUTIES.iter().any(|ty| on(after, *ty) && !on(before, *ty))
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
/// with it, `authorise_new_together`). Objects that do not wrap pass.
fn may_wrap(object: &Object) -> bool {
    if !on(object, CKA_WRAP) {
        return true;
    }
    match object.class {
        CKO_PUBLIC_KEY => !crosses(object) || on(object, CKA_LOCAL),
        _ => unknown_value(object),
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

impl Token {
    fn separating_duties(&self) -> bool {
        self.shared.config.separation_of_duties
    }

    /// A new object (created, generated, copied, unwrapped, derived), before it is
    /// stored.
    pub(super) fn authorise_new(&self, object: &Object) -> Result<()> {
        if self.separating_duties() && (mix_duties(&[object]) || !may_wrap(object)) {
            return Err(Error::TemplateInconsistent);
        }
        Ok(())
    }

    /// Objects stored together: a generated key pair is one key. The import wrapping
    /// pair is the module's own, made to unwrap the material its owner encrypts, and
    /// bound to one target (`IMPORT_TARGET`): it is left out.
    pub(super) fn authorise_new_together(&self, objects: &[Object]) -> Result<()> {
        if !self.separating_duties() {
            return Ok(());
        }
        let Some((public, private)) = pair_halves(objects) else {
            return Ok(());
        };
        if public.has(IMPORT_TARGET) || private.has(IMPORT_TARGET) {
            return Ok(());
        }
        if mix_duties(&[public, private]) || (on(public, CKA_WRAP) && !unknown_value(private)) {
            return Err(Error::TemplateInconsistent);
        }
        Ok(())
    }

    /// A copy of `source`, before it is stored: the same bits, so no duty its source did
    /// not have.
    pub(super) fn authorise_copied(&self, source: &Object, copy: &Object) -> Result<()> {
        if self.separating_duties() && gains_duty(source, copy) {
            return Err(Error::TemplateInconsistent);
        }
        Ok(())
    }

    /// The object a change produced, before it is stored: no duty flag turned on.
    pub(super) fn authorise_changed(&self, before: &Object, after: &Object) -> Result<()> {
        if self.separating_duties() && gains_duty(before, after) {
            return Err(Error::ActionProhibited);
        }
        Ok(())
    }

    /// A key derived by a mechanism that exposes its sources' bits (§2.43: a copy, or
    /// part of one): its duties and each source's count as one key's, or a source that
    /// wraps would give a copy that decrypts what it wrapped.
    pub(super) fn authorise_exposing_derivation(
        &self,
        sources: &[&Object],
        derived: &Object,
    ) -> Result<()> {
        if self.separating_duties() && sources.iter().any(|s| mix_duties(&[s, derived])) {
            return Err(Error::TemplateInconsistent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::attr::Value;
    use crate::object::template::{self, Provenance};

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

//! The token's one authorisation point: every use and every change of an object is
//! judged here, at the moment it happens, against the caller (login, session kind), the
//! object's own policy attributes, those of every object of the same KMS key (the
//! private half of a pair judges a change to its public half), and the key's KMS state
//! and material expiry now (docs/security.md).
//!
//! Callers ask before they act and act only on `Ok`; nothing here changes state except
//! the expiry sweep `check_kms_use` may run; the opt-in separation-of-duties policy is
//! judged beside it (`token::duties`). This module must not do cryptography, touch
//! the store, or decide a KMS transition (`kms::lifecycle` does).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ck::*;

use super::objects::Caller;
use super::{LoggedIn, Token};
use crate::error::{Error, Result};
use crate::kms::key::KeyUsage;
use crate::mechanism::Usage;
use crate::object::attr::{AttrType, Value, MATERIAL_EXPIRY};
use crate::object::policy::{self, IMPORT_TARGET, KEY_ID, KEY_USAGE, USAGE_FLAGS};
use crate::object::table::{Entry, Owner};
use crate::object::Object;
use crate::operation::Grant;

/// The usage flags a KMS KeyUsage implies for an object of `class`: exactly these are
/// true, every other usage flag is false (docs/key-model.md, "KeyUsage is the usage").
fn implied_flags(usage: KeyUsage, class: ObjectClass) -> &'static [AttrType] {
    match (usage, class) {
        (KeyUsage::EncryptDecrypt, CKO_SECRET_KEY) => &[CKA_ENCRYPT, CKA_DECRYPT],
        (KeyUsage::EncryptDecrypt, CKO_PRIVATE_KEY) => &[CKA_DECRYPT],
        (KeyUsage::EncryptDecrypt, CKO_PUBLIC_KEY) => &[CKA_ENCRYPT],
        (KeyUsage::SignVerify, CKO_SECRET_KEY) => &[CKA_SIGN, CKA_VERIFY],
        (KeyUsage::SignVerify, CKO_PRIVATE_KEY) => &[CKA_SIGN],
        (KeyUsage::SignVerify, CKO_PUBLIC_KEY) => &[CKA_VERIFY],
        _ => &[],
    }
}

/// The KMS KeyUsage an object was created with, if it is a KMS-model key.
fn key_usage_of(object: &Object) -> Option<KeyUsage> {
    object.ulong(KEY_USAGE).and_then(KeyUsage::from_code)
}

/// The object with its usage flags set to exactly what its KeyUsage implies; objects
/// without a KeyUsage come back unchanged (plain PKCS#11 keys keep their template's).
pub(super) fn confine_to_key_usage(object: Object) -> Object {
    let Some(usage) = key_usage_of(&object) else {
        return object;
    };
    let implied = implied_flags(usage, object.class);
    let flags = USAGE_FLAGS
        .iter()
        .filter(|ty| policy::carries(object.class, object.key_type, **ty))
        .map(|ty| (*ty, Value::Bool(implied.contains(ty))))
        .collect();
    object.with_plain(flags)
}

/// Whether `changes` would turn on a usage flag the object's KeyUsage does not imply.
fn widens_key_usage(object: &Object, changes: &BTreeMap<AttrType, Value>) -> bool {
    let Some(usage) = key_usage_of(object) else {
        return false;
    };
    let implied = implied_flags(usage, object.class);
    USAGE_FLAGS
        .iter()
        .any(|ty| changes.get(ty).and_then(Value::as_bool) == Some(true) && !implied.contains(ty))
}

/// The attributes `C_CopyObject` may set on a copy of an unmodifiable object.
fn storage_only(changes: &BTreeMap<AttrType, Value>) -> bool {
    changes.iter().all(|(ty, v)| match *ty {
        CKA_TOKEN | CKA_PRIVATE => true,
        CKA_MODIFIABLE => v.as_bool() == Some(false),
        _ => false,
    })
}

impl Token {
    /// The caller must be the logged-in user when `object`, or any other object of its
    /// KMS key, is private, or when it is a half of an import wrapping pair: a public
    /// half is guarded by its private half.
    fn check_owner_login(&self, object: &Object) -> Result<()> {
        if self.logged_in() == LoggedIn::User {
            return Ok(());
        }
        // An import wrapping pair is its target owner's (it is made only by the
        // logged-in user), guarded like a private object: it carries no KeyId by which
        // its private half would be found below.
        if object.is_private() || object.has(IMPORT_TARGET) {
            return Err(Error::UserNotLoggedIn);
        }
        if let Some(id) = object.bytes(KEY_ID) {
            let siblings = self.key_objects(id)?;
            if siblings.iter().any(|(_, _, o)| o.is_private()) {
                return Err(Error::UserNotLoggedIn);
            }
        }
        Ok(())
    }

    /// A change to a token object needs a read/write session.
    fn check_session_kind(caller: Caller, entry: &Entry) -> Result<()> {
        if entry.owner == Owner::Token && !caller.rw {
            return Err(Error::SessionReadOnly);
        }
        Ok(())
    }

    /// `C_SetAttributeValue` with `changes` (the KMS state excepted: see
    /// `authorise_state_change`).
    pub(super) fn authorise_change(
        &self,
        caller: Caller,
        entry: &Entry,
        changes: &BTreeMap<AttrType, Value>,
    ) -> Result<()> {
        Token::check_session_kind(caller, entry)?;
        let object = &entry.object;
        // The import wrapping pair does one thing, and no attribute change adds another.
        if object.has(IMPORT_TARGET) || object.bool_attr(CKA_MODIFIABLE) == Some(false) {
            return Err(Error::ActionProhibited);
        }
        self.check_owner_login(object)?;
        if widens_key_usage(object, changes) {
            return Err(Error::ActionProhibited);
        }
        Ok(())
    }

    /// `C_CopyObject` with `changes`.
    pub(super) fn authorise_copy(
        &self,
        caller: Caller,
        entry: &Entry,
        changes: &BTreeMap<AttrType, Value>,
    ) -> Result<()> {
        let object = &entry.object;
        if object.has(IMPORT_TARGET) || object.bool_attr(CKA_COPYABLE) == Some(false) {
            return Err(Error::ActionProhibited);
        }
        // §4.4: an unmodifiable object's copy may change where it is stored, and may
        // stay unmodifiable, but nothing else.
        if object.bool_attr(CKA_MODIFIABLE) == Some(false) && !storage_only(changes) {
            return Err(Error::ActionProhibited);
        }
        if changes
            .get(&CKA_TOKEN)
            .and_then(Value::as_bool)
            .unwrap_or(object.is_token())
            && !caller.rw
        {
            return Err(Error::SessionReadOnly);
        }
        self.check_owner_login(object)?;
        if widens_key_usage(object, changes) {
            return Err(Error::ActionProhibited);
        }
        Ok(())
    }

    /// `C_DestroyObject`.
    pub(super) fn authorise_destroy(&self, caller: Caller, entry: &Entry) -> Result<()> {
        Token::check_session_kind(caller, entry)?;
        if entry.object.bool_attr(CKA_DESTROYABLE) == Some(false) {
            return Err(Error::ActionProhibited);
        }
        self.check_owner_login(&entry.object)
    }

    /// A KMS lifecycle change (Enable/DisableKey, DeleteKeyMaterial, Schedule/Cancel
    /// deletion): an owner's act, so only the logged-in user may do it, in a read/write
    /// session when the key is stored on the token.
    pub(super) fn authorise_state_change(&self, caller: Caller, entry: &Entry) -> Result<()> {
        if self.logged_in() != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        Token::check_session_kind(caller, entry)?;
        if entry.object.has(IMPORT_TARGET) {
            return Err(Error::ActionProhibited);
        }
        Ok(())
    }

    /// A cryptographic use of `object` (an operation's init or any later step, a wrap,
    /// an unwrap, a derivation): the object is a key the caller may use, its usage flag
    /// and allowed mechanisms permit it, and its KMS state and expiry allow it now.
    pub(super) fn authorise_use(
        &self,
        object: &Object,
        usage: Usage,
        mechanism: MechType,
    ) -> Result<()> {
        if !matches!(
            object.class,
            CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY
        ) {
            return Err(Error::KeyTypeInconsistent);
        }
        self.check_record(object)?;
        // This version's attributes, read once (`Object::use_attrs`; a change makes a
        // new version, which reads its own).
        let attrs = object.use_attrs();
        // The import wrapping pair is used by the import unwrap into its bound target
        // alone (`authorise_import_use`); no decryption, so no padding oracle on it.
        if attrs.import_target {
            return Err(Error::KeyFunctionNotPermitted);
        }
        if attrs.private && self.logged_in() != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        if let Some(attr) = usage.attribute() {
            if !object.flag_is_true(attr) {
                return Err(Error::KeyFunctionNotPermitted);
            }
        }
        if attrs.restricts_mechanisms {
            check_allowed_mechanism(object, mechanism)?;
        }
        self.check_kms_use(object, usage)
    }

    /// The one use of an import wrapping private key: unwrapping material into the key
    /// it is bound to (`token::kms::import`).
    pub(super) fn authorise_import_use(
        &self,
        wrapping: &Object,
        mechanism: MechType,
    ) -> Result<()> {
        if wrapping.class != CKO_PRIVATE_KEY || !wrapping.has(IMPORT_TARGET) {
            return Err(Error::UnwrappingKeyTypeInconsistent);
        }
        if self.logged_in() != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        if wrapping.bool_attr(CKA_UNWRAP) != Some(true) {
            return Err(Error::KeyFunctionNotPermitted);
        }
        check_allowed_mechanism(wrapping, mechanism)
    }

    /// `C_DigestKey` of `object` into a digest of `mechanism`: a secret key, not
    /// `CKA_SENSITIVE`, not a KMS-model key (its KeyUsage is encryption or signing, never
    /// a digest), usable now as any key is (login, record, allowed mechanisms, KMS state
    /// and expiry). `CKA_EXTRACTABLE` is not required (docs/security.md says why).
    pub(super) fn authorise_digest(&self, object: &Object, mechanism: MechType) -> Result<()> {
        // A key bound by a guarding derive template (its owner's, or carried on to it
        // when it was derived) is never digested: a digest of it followed by bytes the
        // caller chooses is the key extended and compared with a longer one (review 15d).
        if object.class != CKO_SECRET_KEY
            || object.bool_attr(CKA_SENSITIVE) != Some(false)
            || key_usage_of(object).is_some()
            || super::keys::template_guards(object.value(CKA_DERIVE_TEMPLATE))
        {
            return Err(Error::KeyIndigestible);
        }
        self.authorise_use(object, Usage::Digest, mechanism)
            .map_err(|e| match e {
                // A key whose CKA_ALLOWED_MECHANISMS leaves the digest out.
                Error::MechanismInvalid | Error::KeyTypeInconsistent => Error::KeyIndigestible,
                e => e,
            })
    }

    /// The key `C_WrapKey` would hand out: extractable, allowed by the wrapping key's
    /// trust and template, and usable in its KMS state now (a disabled key, one pending
    /// deletion, or one whose material expired is not exported).
    pub(super) fn authorise_wrap_target(&self, target: &Object, wrapping: &Object) -> Result<()> {
        if !matches!(target.class, CKO_SECRET_KEY | CKO_PRIVATE_KEY) || target.has(IMPORT_TARGET) {
            return Err(Error::KeyNotWrappable);
        }
        if target.bool_attr(CKA_EXTRACTABLE) != Some(true) {
            return Err(Error::KeyUnextractable);
        }
        // A key whose material expires is not wrapped: unwrapped again it would be a key
        // without the expiry (review 18a; the same rule as for derivations).
        if target.ulong(MATERIAL_EXPIRY).is_some_and(|at| at != 0) {
            return Err(Error::KeyNotWrappable);
        }
        if target.bool_attr(CKA_WRAP_WITH_TRUSTED) == Some(true)
            && wrapping.bool_attr(CKA_TRUSTED) != Some(true)
        {
            return Err(Error::KeyNotWrappable);
        }
        if let Some(Value::Template(required)) = wrapping.value(CKA_WRAP_TEMPLATE) {
            if !required.iter().all(|(ty, v)| target.value(*ty) == Some(v)) {
                return Err(Error::KeyNotWrappable);
            }
        }
        self.check_kms_use(target, Usage::Digest)
    }

    /// An active operation's later step: the key it was started with is looked up again
    /// (after picking up other processes' commits) and judged as at init. A key that was
    /// private then, whose user has logged out since, answers `CKR_USER_NOT_LOGGED_IN`.
    ///
    /// Every change to an object makes a new version of it, so while the token still
    /// holds the very version judged at init, only time can have changed the verdict:
    /// that case checks the material expiry alone (this runs on every `Update`).
    pub(crate) fn recheck_use(&self, grant: &Grant) -> Result<()> {
        if grant.private && self.logged_in() != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        // Other processes' commits (a DeleteKeyMaterial elsewhere) are picked up; time is
        // judged below, by the key's own expiry, so the general sweep is not needed here.
        if self.changed()? {
            self.sync()?;
        }
        // No write of the table since the grant: the very version judged is still there,
        // found without the table's lock (`object/shared.rs`).
        if self.objects.generation() == grant.generation {
            return self.check_expiry(grant.expiry);
        }
        let changed = {
            let objects = self.objects.read();
            match objects.get(grant.key) {
                None => return Err(Error::KeyHandleInvalid),
                Some(e) if Arc::ptr_eq(&e.object, &grant.judged) => None,
                Some(e) => Some(Arc::clone(&e.object)),
            }
        };
        match changed {
            None => self.check_expiry(grant.expiry),
            Some(object) => self.authorise_use(&object, grant.usage, grant.mechanism),
        }
    }
}

fn check_allowed_mechanism(object: &Object, mechanism: MechType) -> Result<()> {
    if let Some(Value::Mechanisms(allowed)) = object.value(CKA_ALLOWED_MECHANISMS) {
        if !allowed.is_empty() && !allowed.contains(&mechanism) {
            return Err(Error::MechanismInvalid);
        }
    }
    Ok(())
}

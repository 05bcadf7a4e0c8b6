//! The KMS key model on PKCS#11 objects (DESIGN.md §2, docs/key-model.md): key identity
//! and state as vendor attributes, the state checks every cryptographic use passes,
//! state changes through `C_SetAttributeValue`, import parameters through
//! `C_GenerateKeyPair`, imports through `C_UnwrapKey`, and the sweep that wipes expired
//! material and purges expired import parameters.
//!
//! Every rule comes from `kms` (transitions, tokens, the same-material rule); this
//! module maps them onto objects. Imports, state changes and expiries go through
//! `kms::model`, which decides them inside one store transaction on the current record
//! (`key_records.rs`); `shape.rs` is the PKCS#11 shape of each key spec.
//! It must not do cryptography beyond asking mechanisms and `crypto` for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::authority::confine_to_key_usage;
use super::objects::Caller;
use super::Token;
use crate::crypto::ec::{self, Curve, EcPrivateKey};
use crate::crypto::pkcs8::{self, KeyAlgorithm, PrivateKeyInfo};
use crate::crypto::rsa::{bit_len, RsaComponents};
use crate::crypto::sm;
use crate::error::{Error, Result, StoreError};
use crate::kms::audit::{AuditEvent, Operation};
use crate::kms::decide;
use crate::kms::import::{ImportToken, WrappingAlgorithm};
use crate::kms::key::{KeyId, KeySpec, KeyState, KeyUsage, Origin};
use crate::kms::lifecycle;
use crate::kms::material::{self, Canonical};
use crate::kms::model::{self, KeyModel};
use crate::kms::KmsError;
use crate::mechanism::{MechanismArg, Param, Usage};
use crate::object::attr::{AttrType, RawAttribute, Value};
use crate::object::key::CKK_SM2;
use crate::object::policy::{
    IMPORT_TARGET, IMPORT_TOKEN, KEY_ID, KEY_SPEC, KEY_STATE, KEY_USAGE, MATERIAL_EXPIRY,
    MATERIAL_FINGERPRINT, ORIGIN, TOKEN_EXPIRY, WRAPPING_ALGORITHM,
};
use crate::object::table::{ObjectHandle, Owner, SessionHandle};
use crate::object::template::{self, Provenance};
use crate::object::Object;
use crate::store::{Change, ObjectUid};

fn ulong(v: u64) -> Value {
    Value::Ulong(v)
}

/// One object of a KMS key: its handle, owner and current version.
type KeyObject = (ObjectHandle, Owner, std::sync::Arc<Object>);

fn kms(e: KmsError) -> Error {
    Error::Kms(e)
}

fn state_of(object: &Object) -> Option<KeyState> {
    object.ulong(KEY_STATE).and_then(KeyState::from_code)
}

fn origin_of(object: &Object) -> Option<Origin> {
    object.ulong(ORIGIN).and_then(Origin::from_code)
}

fn has_material(class: ObjectClass, given: &BTreeMap<AttrType, Value>) -> bool {
    match class {
        CKO_SECRET_KEY => given.contains_key(&CKA_VALUE),
        CKO_PRIVATE_KEY => {
            given.contains_key(&CKA_VALUE) || given.contains_key(&CKA_PRIVATE_EXPONENT)
        }
        _ => true,
    }
}

/// A key's spec and canonical material (`key_records::fingerprint_with`): the primary
/// part (a secret key's value: wiped when dropped, as every copy of it, review 17c) and
/// an RSA key's public exponent.
type CanonicalMaterial = (KeySpec, Zeroizing<Vec<u8>>, Option<Vec<u8>>);

/// The canonical material of a key object whose secrets are `secrets`.
fn canonical_of(
    object: &Object,
    secrets: &BTreeMap<AttrType, Zeroizing<Vec<u8>>>,
) -> Option<CanonicalMaterial> {
    let spec = spec_of(object)?;
    let secret = |ty| secrets.get(&ty).cloned();
    match (object.class, object.key_type?) {
        (CKO_SECRET_KEY, _) => Some((spec, secret(CKA_VALUE)?, None)),
        (_, CKK_RSA) => Some((
            spec,
            Zeroizing::new(object.bytes(CKA_MODULUS)?.to_vec()),
            Some(object.bytes(CKA_PUBLIC_EXPONENT)?.to_vec()),
        )),
        (CKO_PUBLIC_KEY, _) => Some((
            spec,
            Zeroizing::new(ec::point_from_attribute(object.bytes(CKA_EC_POINT)?)),
            None,
        )),
        (CKO_PRIVATE_KEY, CKK_EC) => {
            let curve = Curve::from_oid(object.bytes(CKA_EC_PARAMS)?).ok()?;
            let point = EcPrivateKey::new(curve, &secret(CKA_VALUE)?)
                .ok()?
                .public_point();
            Some((spec, Zeroizing::new(point), None))
        }
        (CKO_PRIVATE_KEY, CKK_SM2) => Some((
            spec,
            Zeroizing::new(
                sm::sm2_public_from_private(&secret(CKA_VALUE)?)
                    .ok()?
                    .to_vec(),
            ),
            None,
        )),
        _ => None,
    }
}

impl Token {
    pub(super) fn now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// The token's key records for the key model, new objects owned by `new_owner`.
    fn records_for(&self, new_owner: Option<SessionHandle>) -> key_records::TokenRecords<'_> {
        key_records::TokenRecords {
            token: self,
            new_owner,
        }
    }

    /// The subkeys of the KMS model, derived from the master key (needs a login).
    fn kms_secret(&self, label: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        self.kms_secret_with_epoch(label).map(|(key, _)| key)
    }

    /// `kms_secret`, with the epoch of the token whose master key it came from, read
    /// together: what is sealed or MACed under it goes into that token only.
    fn kms_secret_with_epoch(&self, label: &[u8]) -> Result<(Zeroizing<[u8; 32]>, Option<u64>)> {
        let (master, epoch) = self.master_with_epoch();
        Ok((master.ok_or(Error::UserNotLoggedIn)?.derive(label), epoch))
    }

    fn fingerprint(
        &self,
        spec: KeySpec,
        primary: &[u8],
        exponent: Option<&[u8]>,
    ) -> Result<[u8; 32]> {
        let key = self.kms_secret(key_records::FINGERPRINT_LABEL)?;
        Ok(key_records::fingerprint_with(&key, spec, primary, exponent))
    }

    /// Gives new key objects (one key: a secret key, or a key pair) their KMS identity:
    /// a fresh KeyId, the origin, the state, the spec when the key has one, and for
    /// EXTERNAL material its fingerprint (when the master key is at hand). Answers the
    /// objects and the epoch of the master key the fingerprint was made under, if one
    /// was: the key is that token's, and goes into that token only (`commit_decided`).
    pub(super) fn with_kms_identity(
        &self,
        objects: Vec<Object>,
        origin: Origin,
        usage: Option<KeyUsage>,
    ) -> Result<(Vec<Object>, Option<u64>)> {
        let spec = objects.iter().find_map(spec_of);
        // A spec a template named must be the one the material amounts to: kept, it
        // would describe the key as another (an AES-128 key as AES_256), on every path
        // that makes a key (create, generate, unwrap, derive, key pairs).
        if objects
            .iter()
            .filter_map(|o| o.ulong(KEY_SPEC))
            .any(|named| Some(named) != spec.map(KeySpec::code))
        {
            return Err(Error::TemplateInconsistent);
        }
        let mut bound = None;
        // One read of the key and its epoch, for the secrets and the fingerprint both.
        let (master, master_epoch) = match origin {
            Origin::External => self.master_with_epoch(),
            _ => (None, None),
        };
        if let Some(master) = &master {
            let fingerprint_key = master.derive(key_records::FINGERPRINT_LABEL);
            for o in objects.iter().filter(|o| o.class != CKO_PUBLIC_KEY) {
                let (_, secrets) = o.all_values(&self.serial, Some(master))?;
                if let Some((spec, primary, e)) = canonical_of(o, &secrets) {
                    bound = Some(key_records::fingerprint_with(
                        &fingerprint_key,
                        spec,
                        &primary,
                        e.as_deref(),
                    ));
                }
            }
        }
        // A usage the spec does not allow is a template that contradicts itself.
        let key = model::create_key(origin, spec, usage, true, bound).map_err(|e| match e {
            KmsError::InvalidParameter(_) => Error::TemplateInconsistent,
            e => kms(e),
        })?;
        let objects = objects
            .into_iter()
            .map(|o| {
                let mut values = vec![
                    (KEY_ID, Value::Bytes(key.id.as_str().as_bytes().to_vec())),
                    (ORIGIN, ulong(key.facts.origin.code())),
                    (KEY_STATE, ulong(key.facts.state.code())),
                    (MATERIAL_EXPIRY, ulong(0)),
                ];
                if let Some(s) = spec {
                    values.push((KEY_SPEC, ulong(s.code())));
                }
                if let Some(u) = key.usage {
                    values.push((KEY_USAGE, ulong(u.code())));
                }
                if let Some(fp) = key.facts.bound {
                    values.push((MATERIAL_FINGERPRINT, Value::Bytes(fp.to_vec())));
                }
                Ok(confine_to_key_usage(o.with_plain(values)))
            })
            .collect::<Result<Vec<Object>>>()?;
        Ok((objects, master_epoch))
    }

    /// `C_CreateObject`: a key with origin EXTERNAL and no material becomes a
    /// PendingImport KMS key; a key with material is imported plaintext (EXTERNAL,
    /// Enabled); anything else is an ordinary object. Answers the object and the epoch
    /// of the master key its fingerprint was made under, if one was (`with_kms_identity`).
    pub(super) fn build_created(&self, template: &[RawAttribute]) -> Result<(Object, Option<u64>)> {
        let given = template::parse(template)?;
        let class = given
            .get(&CKA_CLASS)
            .and_then(Value::as_ulong)
            .map(ObjectClass::new);
        let is_owner_key = matches!(class, Some(CKO_SECRET_KEY | CKO_PRIVATE_KEY));
        let origin = match given.get(&ORIGIN).and_then(Value::as_ulong) {
            None => None,
            Some(code) => Some(Origin::from_code(code).ok_or(Error::AttributeValueInvalid)?),
        };
        if origin == Some(Origin::Kms) {
            // Material handed in by a caller is by definition not made by the module.
            return Err(Error::TemplateInconsistent);
        }
        let usage = match given.get(&KEY_USAGE).and_then(Value::as_ulong) {
            None => None,
            Some(code) => Some(KeyUsage::from_code(code).ok_or(Error::AttributeValueInvalid)?),
        };
        let Some(class) = class.filter(|_| is_owner_key) else {
            return Ok((
                template::build(template, Provenance::Supplied, vec![])?,
                None,
            ));
        };
        if origin == Some(Origin::External) && !has_material(class, &given) {
            return Ok((self.build_pending(class, &given, template, usage)?, None));
        }
        // A spec named in the template is checked against the material there.
        let object = template::build(template, Provenance::Supplied, vec![])?;
        let (mut objects, fingerprinted_in) =
            self.with_kms_identity(vec![object], Origin::External, usage)?;
        let object = objects
            .pop()
            .ok_or(Error::Internal("identity lost the object"))?;
        Ok((object, fingerprinted_in))
    }

    fn build_pending(
        &self,
        class: ObjectClass,
        given: &BTreeMap<AttrType, Value>,
        template: &[RawAttribute],
        usage: Option<KeyUsage>,
    ) -> Result<Object> {
        let spec = given
            .get(&KEY_SPEC)
            .and_then(Value::as_ulong)
            .ok_or(Error::TemplateIncomplete)?;
        let spec = KeySpec::from_code(spec).ok_or(Error::AttributeValueInvalid)?;
        let key_type = given
            .get(&CKA_KEY_TYPE)
            .and_then(Value::as_ulong)
            .map(KeyType::new)
            .ok_or(Error::TemplateIncomplete)?;
        if !shape::fits(spec, class, key_type) || usage.is_some_and(|u| !spec.allows(u)) {
            return Err(Error::TemplateInconsistent);
        }
        let key =
            model::create_key(Origin::External, Some(spec), usage, false, None).map_err(kms)?;
        let mut module = vec![
            (KEY_ID, Value::Bytes(key.id.as_str().as_bytes().to_vec())),
            (KEY_STATE, ulong(key.facts.state.code())),
            (MATERIAL_EXPIRY, ulong(0)),
        ];
        if let Some(len) = spec.symmetric_len() {
            module.push((CKA_VALUE_LEN, ulong(len as u64)));
        }
        if let Some(params) = shape::shape_of(spec).ec_params {
            module.push((CKA_EC_PARAMS, Value::Bytes(params.to_vec())));
        }
        if usage.is_none() {
            if let Some(implied) = key.usage {
                module.push((KEY_USAGE, ulong(implied.code())));
            }
        }
        Ok(confine_to_key_usage(template::build(
            template,
            Provenance::Pending,
            module,
        )?))
    }

    /// The KMS checks of a cryptographic use: the key's state and expiry allow use now
    /// (`check_kms_state`), and its KMS usage allows `usage`. A KMS-model key does what
    /// its KeyUsage says and nothing else: no wrapping, unwrapping or derivation.
    pub(super) fn check_kms_use(&self, object: &Object, usage: Usage) -> Result<()> {
        self.check_kms_state(object)?;
        if let Some(kms_usage) = object.use_attrs().key_usage.and_then(KeyUsage::from_code) {
            let allowed = match usage {
                Usage::Sign | Usage::Verify => kms_usage == KeyUsage::SignVerify,
                Usage::Encrypt | Usage::Decrypt => kms_usage == KeyUsage::EncryptDecrypt,
                Usage::Wrap | Usage::Unwrap | Usage::Derive => false,
                Usage::Digest => true,
            };
            if !allowed {
                return Err(Error::KeyFunctionNotPermitted);
            }
        }
        Ok(())
    }

    /// The key is Enabled (or not a KMS key) and its material has not expired: the
    /// condition for any use of the key, and for handing its material out.
    pub(super) fn check_kms_state(&self, object: &Object) -> Result<()> {
        // The state and expiry as read once from this version of the object
        // (`Object::use_attrs`): the same values `state_of` and `ulong` would give.
        let attrs = object.use_attrs();
        if let Some(state) = attrs.key_state.and_then(KeyState::from_code) {
            lifecycle::usable(state).map_err(kms)?;
        }
        self.check_expiry(attrs.material_expiry)
    }

    /// Whether the object's key material may be handed out now (`C_GetAttributeValue`, a
    /// search that compares it): the rule of [`Token::check_kms_state`], judged without
    /// its sweep, so that it may be asked under the object table's lock. A key that may
    /// not be used may not be read either, or its material would leave a disabled key (or
    /// one whose deletion is pending, or whose import expired) and be made anew as an
    /// Enabled key, past the owner's EnableKey.
    pub(in crate::token) fn material_readable(&self, object: &Object) -> bool {
        let attrs = object.use_attrs();
        let enabled = attrs
            .key_state
            .and_then(KeyState::from_code)
            .is_none_or(|state| lifecycle::usable(state).is_ok());
        enabled && !(attrs.material_expiry != 0 && self.now() >= attrs.material_expiry as i64)
    }

    /// The key's state as a use finds it now (`CKA_KMSHSM_KEY_STATE` read or searched
    /// for): an Enabled or Disabled key whose material has expired is PendingImport, as
    /// the sweep leaves it, even before a sweep (which rewrites records only with the
    /// master key, so never in a process that is not logged in) has written that.
    /// `None` for an object without a KMS state.
    pub(in crate::token) fn state_now(&self, object: &Object) -> Option<u64> {
        let attrs = object.use_attrs();
        let state = attrs.key_state?;
        let live = matches!(
            KeyState::from_code(state),
            Some(KeyState::Enabled | KeyState::Disabled)
        );
        let expired = attrs.material_expiry != 0 && self.now() >= attrs.material_expiry as i64;
        Some(if live && expired {
            KeyState::PendingImport.code()
        } else {
            state
        })
    }

    /// Material whose expiry (unix seconds; 0 never) has passed is unusable now: the
    /// sweep wipes it, and the use is refused as for a key waiting for material.
    pub(super) fn check_expiry(&self, expiry: u64) -> Result<()> {
        if expiry != 0 && self.now() >= expiry as i64 {
            self.sweep()?;
            return Err(kms(KmsError::IncorrectKeyState(
                KeyState::PendingImport.name(),
            )));
        }
        Ok(())
    }

    /// The objects of one KMS key (a secret key, or a private and public key).
    pub(super) fn key_objects(&self, id: &[u8]) -> Result<Vec<KeyObject>> {
        self.load_matching(&crate::object::index::lookup_key(KEY_ID, id))?;
        let objects = self.objects.read();
        let wanted = [(KEY_ID, Value::Bytes(id.to_vec()))];
        Ok(objects
            .candidates(&wanted)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|h| objects.get(h).map(|e| (h, e)))
            .filter(|(_, e)| !e.object.has(IMPORT_TARGET))
            .map(|(h, e)| (h, e.owner, std::sync::Arc::clone(&e.object)))
            .collect())
    }

    /// The version of token object `object` the table holds now (`None` for a session
    /// object, or one no longer there).
    fn cached_version(&self, object: &Object) -> Option<Arc<Object>> {
        let table = self.objects.read();
        let handle = table.token_handle(&object.uid)?;
        table.get(handle).map(|e| Arc::clone(&e.object))
    }

    /// Runs `judge`, a judgement of cached records, again once the cache has caught up
    /// with the store if it refuses: a key model's refusal stands only on the records
    /// as they are. The cache may not have heard yet of another process's or host's
    /// change (PostgreSQL's notify mode between a commit and its notification, review
    /// 16e), and a request refused on it would be refused, and recorded as refused,
    /// though the current record allows it. Acceptances need no such care: the call
    /// decides again on the current record in its own transaction.
    pub(super) fn refused_on_current<T>(&self, judge: impl Fn() -> Result<T>) -> Result<T> {
        match judge() {
            Err(Error::Kms(_)) => {
                self.sync()?;
                judge()
            }
            judged => judged,
        }
    }

    /// Publishes what a sweep decided, read from the token of epoch `read_in`: the token
    /// objects it removes in one store transaction (into that token only,
    /// `commit_decided`; only if each is still there), with `events`; then each expired session key object, wiped,
    /// in place of the version it was made from, if the table still holds that version.
    /// A version changed meanwhile (the same material imported again with a later
    /// expiry, in another thread) was decided on by that change, not by this sweep,
    /// which must not write over it with a wiped copy of the old one; if it has expired
    /// too, the next sweep finds it.
    fn publish(
        &self,
        wiped: Vec<(ObjectHandle, Arc<Object>, Object)>,
        removed: Vec<Object>,
        events: Vec<AuditEvent>,
        read_in: u64,
    ) -> Result<()> {
        let (_, master_epoch) = self.master_with_epoch();
        let changes: Vec<Change> = removed
            .iter()
            .map(|o| Change::RemoveObject(o.uid))
            .collect();
        if !changes.is_empty() {
            // Only while every one is still there: two sweeps (two processes) that read
            // the same expired pair remove it, and record its purge, once.
            let uids: Vec<ObjectUid> = removed.iter().map(|o| o.uid).collect();
            self.commit_with_events_if(
                &uids,
                &[],
                &mut |loaded| {
                    uids.iter()
                        .all(|u| loaded.objects.iter().any(|r| r.uid == *u))
                },
                changes,
                events,
                &[master_epoch, Some(read_in)],
            )?;
        }
        let mut table = self.objects.write();
        for (handle, read, object) in wiped {
            if table
                .get(handle)
                .is_some_and(|e| Arc::ptr_eq(&e.object, &read))
            {
                table.replace_session_object(handle, object);
            }
        }
        Ok(())
    }

    /// `C_SetAttributeValue` of `CKA_KMSHSM_KEY_STATE`: Enable/DisableKey,
    /// DeleteKeyMaterial (PendingImport) and ScheduleKeyDeletion (PendingDeletion),
    /// applied to every object of the key at once.
    /// A refusal by the key model of a token key's change is recorded in the audit trail.
    /// `epoch`: the token `object` was read from (`entry_with_epoch`).
    pub(super) fn change_state(
        &self,
        caller: Caller,
        object: &Object,
        wanted: u64,
        epoch: u64,
    ) -> Result<()> {
        let (result, judged) = self.change_state_decided(caller, object, wanted);
        // Named after the record the refusal was decided on: the current one in the
        // transaction (`judged`), or else the state as cached now (an early refusal
        // first caught the cache up with the store, `refused_on_current`).
        let refused_event = || {
            judged.or_else(|| {
                let current = self.cached_version(object);
                let state = state_of(current.as_deref().unwrap_or(object))?;
                Some(decide::event_for(state, KeyState::from_code(wanted)?))
            })
        };
        let (Err(e), Some(id), true) = (&result, object.bytes(KEY_ID), object.is_token()) else {
            return result;
        };
        let refused = |event: AuditEvent| match e {
            Error::Kms(e) => Some(event.refused(e)),
            // An unmodifiable key's change refused (`check_state_change`): an attempt on
            // the key's state, recorded as the key model's own refusals are.
            Error::ActionProhibited => Some(event.refused_with(
                "ActionProhibited",
                "an object of the key is not modifiable (CKA_MODIFIABLE false)",
            )),
            _ => None,
        };
        if let Some(event) = refused_event().and_then(|event| {
            refused(
                self.event(Operation::of(event))
                    .key(id)
                    .material(object.bytes(MATERIAL_FINGERPRINT)),
            )
        }) {
            self.record_refusal(event, &[Some(epoch)]);
        }
        result
    }

    /// The change, and the event it amounted to on the current record where a decision
    /// on it ran.
    fn change_state_decided(
        &self,
        caller: Caller,
        object: &Object,
        wanted: u64,
    ) -> (Result<()>, Option<crate::kms::lifecycle::Event>) {
        match self.check_state_change(caller, object, wanted) {
            Ok((id, wanted)) => KeyModel::new(&self.records_for(Some(caller.session)))
                .change_state_judged(&id, wanted),
            Err(e) => (Err(e), None),
        }
    }

    /// What `change_state_decided` checks before the decision: the key and the state
    /// wanted, refused early where the cached records (caught up with the store) refuse.
    fn check_state_change(
        &self,
        caller: Caller,
        object: &Object,
        wanted: u64,
    ) -> Result<(KeyId, KeyState)> {
        let wanted = KeyState::from_code(wanted).ok_or(Error::AttributeValueInvalid)?;
        let (Some(origin), Some(id)) = (origin_of(object), object.bytes(KEY_ID)) else {
            return Err(Error::AttributeTypeInvalid);
        };
        // Refused early on the cached state (caught up with the store before a refusal
        // stands); decided again on the current record below.
        self.refused_on_current(|| {
            let current = self.cached_version(object);
            let state = state_of(current.as_deref().unwrap_or(object))
                .ok_or(Error::AttributeTypeInvalid)?;
            model::precheck(origin, state, decide::event_for(state, wanted)).map_err(kms)
        })?;
        let siblings = self.key_objects(id)?;
        if siblings.iter().any(|(_, owner, _)| *owner == Owner::Token) && !caller.rw {
            return Err(Error::SessionReadOnly);
        }
        // A change of the key's state changes each of its objects (`C_SetAttributeValue`,
        // §4.4): none may be unmodifiable (review 17d: DeleteKeyMaterial wiped the value
        // of a key whose CKA_MODIFIABLE was false). Imports and expiry, which are not
        // changes a caller makes to the object, still move it.
        if siblings
            .iter()
            .any(|(_, _, o)| o.bool_attr(CKA_MODIFIABLE) == Some(false))
        {
            return Err(Error::ActionProhibited);
        }
        let id = KeyId::from_bytes(id).map_err(|_| kms(KmsError::NotFound))?;
        Ok((id, wanted))
    }

    /// Wipes material whose expiry has passed (the key returns to PendingImport) and
    /// removes import wrapping keys whose token has expired. Cheap when nothing is due:
    /// the store says which token objects are due, so no other object is read.
    pub(super) fn sweep(&self) -> Result<()> {
        let now = self.now();
        // Without the table's lock: a deadline moved by a write under way is one this
        // call came before (`object/shared.rs`).
        if now < self.objects.next_deadline() {
            return Ok(());
        }
        // Read before the store is asked: a deadline noted after this may be missing from
        // its answer, and `end_sweep` keeps it.
        let notes = self.objects.read().deadline_notes();
        let due = self.store.due(now)?;
        self.load_uids(&due.now)?;
        let due_now: std::collections::HashSet<&crate::store::ObjectUid> = due.now.iter().collect();
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        let mut expired_keys = std::collections::BTreeSet::new();
        let table = self.objects.read();
        // The token the sweep's objects are of: what it removes, and the events that say
        // so, go into that token only.
        let read_in = table.seq().1;
        for (h, e) in table.iter() {
            let o = &e.object;
            if e.owner == Owner::Token && !due_now.contains(&o.uid) {
                continue;
            }
            if let Some(expiry) = o.ulong(TOKEN_EXPIRY) {
                if now >= expiry as i64 {
                    removed.push(Object::clone(o));
                }
                continue;
            }
            let expiry = o.ulong(MATERIAL_EXPIRY).unwrap_or(0) as i64;
            let live = match state_of(o) {
                Some(KeyState::Enabled | KeyState::Disabled) => true,
                Some(KeyState::PendingDeletion) => o.holds_secret_material(),
                _ => false,
            };
            if expiry != 0 && live && now >= expiry && e.owner == Owner::Token {
                // Decided again on the current record, in a transaction (below).
                if let Some(id) = o.bytes(KEY_ID) {
                    expired_keys.insert(id.to_vec());
                }
            } else if expiry != 0 && live && now >= expiry {
                // The state the expiry leaves: PendingImport, or PendingDeletion kept
                // (review 18d: the sweep took a session key out of PendingDeletion). A
                // pair's public half pending deletion is left as it is, as its key is.
                let after = match (origin_of(o), state_of(o)) {
                    (Some(origin), Some(state)) => {
                        match lifecycle::transition(
                            origin,
                            state,
                            lifecycle::Event::MaterialExpired,
                        ) {
                            Ok(after) => after,
                            Err(_) => continue,
                        }
                    }
                    _ => continue,
                };
                let state = vec![(KEY_STATE, ulong(after.code()))];
                let wiped = if o.class == CKO_PUBLIC_KEY {
                    o.with_plain(state)
                } else {
                    o.wiped(state)
                };
                changed.push((h, Arc::clone(o), wiped));
            }
        }
        drop(table);
        // Only what the module wrote is purged (review 21b): an import wrapping pair is
        // made by a logged-in user, so its records authenticate. A token record that does
        // not (its expiry or target edited outside the module) is left where it is, its
        // uid logged, and nothing is recorded of it; a process that is not logged in
        // cannot tell, and leaves the purge to the next one that is.
        // A pair is purged whole or not at all (review 21c: the authentic public half
        // removed and `PurgeWrappingKey` recorded while the edited private half stayed).
        let master = self.master();
        let verdicts: Vec<bool> = removed
            .iter()
            .map(|o| !o.is_token() || master.as_deref().is_some_and(|m| self.purgeable(o, m)))
            .collect();
        let held_back: std::collections::HashSet<Vec<u8>> = removed
            .iter()
            .zip(&verdicts)
            .filter(|(_, purge)| !**purge)
            .filter_map(|(o, _)| o.bytes(IMPORT_TARGET).map(<[u8]>::to_vec))
            .collect();
        let mut verdict = verdicts.into_iter();
        removed.retain(|o| {
            let purge = verdict.next().unwrap_or(false);
            purge
                && (!o.is_token()
                    || o.bytes(IMPORT_TARGET)
                        .is_none_or(|t| !held_back.contains(t)))
        });
        // Session objects are dropped from the table directly; token ones through the store.
        let (token_removed, session_removed): (Vec<_>, Vec<_>) =
            removed.into_iter().partition(|o| o.is_token());
        let purged = self.purge_events(&token_removed);
        self.test_point("sweep_publish");
        self.publish(changed, token_removed, purged, read_in)?;
        // Rewriting a key's records authenticates them, which needs the master key: a
        // process that is not logged in leaves expired material to the next one that is
        // (every use already refuses it by its expiry, `check_expiry`), and a login
        // sweeps again (`Token::login`).
        if master.is_some() {
            let expired_keys: Vec<KeyId> = expired_keys
                .iter()
                .filter_map(|id| KeyId::from_bytes(id).ok())
                .collect();
            match KeyModel::new(&self.records_for(None)).expire(&expired_keys) {
                // A key whose records fail authentication keeps its expired material
                // (every use refuses it by its expiry, `check_expiry`; the uid is
                // logged): one record edited outside the module must not fail every
                // later call of every session, as a sweep that never ends would
                // (review 21b). The other keys were decided (`decide_on_many`).
                Err(Error::Store(StoreError::Tampered)) => log::error!(
                    "token {}: the expiry of a key whose records fail authentication is \
                     left undone",
                    self.serial
                ),
                other => other?,
            }
        }
        let mut table = self.objects.write();
        for o in session_removed {
            table.remove_by_uid(&o.uid);
        }
        // What is left due lies after `now`: the store's next, or a session object's.
        let next = [due.next, table.session_deadline()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(i64::MAX);
        table.end_sweep(next, notes, now);
        Ok(())
    }
}

impl Token {
    /// Whether the sweep may purge the token object `o` whose import token expired: only
    /// if its record is authentic under `master` (logged otherwise).
    fn purgeable(&self, o: &Object, master: &crate::store::seal::MasterKey) -> bool {
        if o.is_authentic(&self.serial, master) {
            return true;
        }
        log::error!(
            "token {}: object {} claims an expired import token but its record fails \
             authentication (changed outside the module); it is not purged",
            self.serial,
            super::records::hex(&o.uid)
        );
        false
    }

    /// `PurgeWrappingKey` once per import wrapping pair among `removed` (named by its
    /// private half, or by the public one when the private half was destroyed before).
    fn purge_events(&self, removed: &[Object]) -> Vec<AuditEvent> {
        removed
            .iter()
            .filter(|o| {
                o.class == CKO_PRIVATE_KEY
                    || !removed.iter().any(|p| {
                        p.class == CKO_PRIVATE_KEY
                            && p.bytes(IMPORT_TARGET) == o.bytes(IMPORT_TARGET)
                    })
            })
            .map(|o| {
                self.event(Operation::PurgeWrappingKey)
                    .key(o.bytes(IMPORT_TARGET).unwrap_or(&[]))
                    .object(&o.uid)
            })
            .collect()
    }
}

/// What an import hands to the key: the values of each of its objects, and the
/// canonical material for the fingerprint.
pub(super) struct Imported {
    primary: Vec<(AttrType, Value)>,
    public: Vec<(AttrType, Value)>,
    /// A symmetric key's material itself: wiped when dropped (review 17c found it left
    /// in freed heap after an import).
    canonical: (Zeroizing<Vec<u8>>, Option<Vec<u8>>),
}

fn bytes(ty: AttrType, v: &[u8]) -> (AttrType, Value) {
    (ty, Value::Bytes(v.to_vec()))
}

/// Checks imported material against the key spec and turns it into attributes.
fn imported_values(spec: KeySpec, material: &[u8]) -> std::result::Result<Imported, KmsError> {
    let bad = |_| KmsError::InvalidKeyMaterial;
    if let Some(len) = spec.symmetric_len() {
        if material.len() != len {
            return Err(KmsError::InvalidKeyMaterial);
        }
        return Ok(Imported {
            primary: vec![bytes(CKA_VALUE, material)],
            public: Vec::new(),
            canonical: (Zeroizing::new(material.to_vec()), None),
        });
    }
    if spec == KeySpec::EcSm2 {
        // SM2PKE_SM4_ECB carries the raw 32-byte scalar (kms-docs 004).
        let point =
            sm::sm2_public_from_private(material).map_err(|_| KmsError::InvalidKeyMaterial)?;
        let point_attr = ec::point_to_attribute(&point);
        return Ok(Imported {
            primary: vec![bytes(CKA_VALUE, material), bytes(CKA_EC_POINT, &point_attr)],
            public: vec![
                bytes(CKA_EC_POINT, &point_attr),
                bytes(CKA_EC_PARAMS, sm::OID_SM2),
            ],
            canonical: (Zeroizing::new(point.to_vec()), None),
        });
    }
    let info: PrivateKeyInfo<'_> = pkcs8::decode_private_key_info(material).map_err(bad)?;
    match (info.algorithm, spec.rsa_bits()) {
        (KeyAlgorithm::Rsa, Some(bits)) => {
            let c = RsaComponents::from_pkcs1_der(info.private_key).map_err(bad)?;
            if bit_len(&c.n) != bits {
                return Err(KmsError::InvalidKeyMaterial);
            }
            crate::crypto::rsa::RsaPrivateKey::new(&c).map_err(bad)?;
            Ok(Imported {
                primary: crate::mechanism::rsa_private_key_attributes(&c),
                public: vec![
                    bytes(CKA_MODULUS, &c.n),
                    bytes(CKA_PUBLIC_EXPONENT, &c.e),
                    (CKA_MODULUS_BITS, ulong(bits as u64)),
                ],
                canonical: (Zeroizing::new(c.n.clone()), Some(c.e.clone())),
            })
        }
        (KeyAlgorithm::Ec { curve_oid }, None) => {
            let curve = Curve::from_oid(&curve_oid).map_err(bad)?;
            let wanted = match spec {
                KeySpec::EcP256 => Curve::P256,
                KeySpec::EcP256K => Curve::Secp256k1,
                _ => return Err(KmsError::InvalidKeyMaterial),
            };
            if curve != wanted {
                return Err(KmsError::InvalidKeyMaterial);
            }
            let d = ec::scalar_from_sec1(info.private_key).map_err(bad)?;
            let point = EcPrivateKey::new(curve, &d).map_err(bad)?.public_point();
            Ok(Imported {
                primary: vec![bytes(CKA_VALUE, &d), bytes(CKA_EC_PARAMS, curve.oid())],
                public: vec![
                    bytes(CKA_EC_PARAMS, curve.oid()),
                    bytes(CKA_EC_POINT, &ec::point_to_attribute(&point)),
                ],
                canonical: (Zeroizing::new(point), None),
            })
        }
        _ => Err(KmsError::InvalidKeyMaterial),
    }
}

mod import;
mod key_records;
pub mod shape;

pub(super) use shape::{spec_of, unwrap_mechanism as mechanism_of};

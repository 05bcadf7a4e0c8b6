//! PKCS#11 objects: their attributes, their secrets, and how they become store records.
//!
//! An `Object` is immutable once built; a change builds a new one (copy-on-write behind
//! an `Arc`). Secret attributes live apart from the others, either open (session objects,
//! in zeroizing buffers) or sealed (token objects, as read from the store). This module
//! must not decide visibility or login rules; the token does.

pub mod attr;
pub(crate) mod handle_hash;
pub(crate) mod index;
pub mod key;
pub(crate) mod lookup;
pub(crate) mod policy;
pub mod shared;
pub mod table;
pub mod template;

#[cfg(test)]
pub(crate) mod review22c_tests;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::ck::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result, StoreError};
use crate::store::seal::MasterKey;
use crate::store::{ObjectRecord, ObjectUid};
use attr::{AttrType, Value};
use key::Key;

/// An object's attributes with its secrets opened: (plain, secret).
pub(crate) type Values = (
    BTreeMap<AttrType, Value>,
    BTreeMap<AttrType, Zeroizing<Vec<u8>>>,
);

/// An object's secret attributes.
#[derive(Clone)]
pub(crate) enum Secrets {
    /// In memory, for objects that never reach the store.
    Open(BTreeMap<AttrType, Zeroizing<Vec<u8>>>),
    /// As stored: the encoded secret attributes under the token master key, sealed with
    /// the associated data `under` names.
    Sealed { blob: Vec<u8>, under: SealedUnder },
}

/// Which associated data a sealed blob was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealedUnder {
    /// Format 1: serial and uid only (records written before records were authenticated).
    V1,
    /// Format 2: serial, uid and the SHA-256 of the record's plain part, so the blob
    /// authenticates every attribute of the record.
    V2([u8; 32]),
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secrets::Open(m) => write!(f, "Open({:?})", m.keys().collect::<Vec<_>>()),
            Secrets::Sealed { under, .. } => write!(f, "Sealed({under:?})"),
        }
    }
}

/// What is known of the authenticity of an object read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordAuth {
    /// Built in this process: nothing to check.
    Local,
    /// Read from a format-2 record, whose sealed part's associated data binds the plain
    /// part: authentic once the blob opens under the master key.
    Claimed,
    /// Read from a record without authentication: written by a session that was not
    /// logged in (no master key), or before records were authenticated (docs/security.md).
    Unauthenticated,
}

#[derive(Debug)]
pub struct Object {
    pub uid: ObjectUid,
    pub class: ObjectClass,
    pub key_type: Option<KeyType>,
    attrs: BTreeMap<AttrType, Value>,
    secrets: Secrets,
    /// Attribute types present among the secrets, known without unsealing.
    secret_types: Vec<AttrType>,
    /// The parsed key, built on first use. Dropped with the object, and never copied:
    /// a clone starts without it, so logging out can shed every parsed secret.
    key: OnceLock<Arc<Key>>,
    /// The attributes every use consults, read on first use (`use_attrs`). Never
    /// copied: a clone may be changed before it is published, so it reads its own.
    use_attrs: OnceLock<UseAttrs>,
    /// How the object's record was authenticated (objects read from the store).
    auth: RecordAuth,
    /// For a `Claimed` record: what proves it, shared by every version derived from it
    /// (a state change or a wipe keeps judging the record it was read from).
    claim: Option<Arc<Claim>>,
    /// For an `Unauthenticated` record: whether it held only what a session that is not
    /// logged in may write (`may_be_unauthenticated`, judged on the record as read).
    unauthenticated_ok: bool,
}

/// The proof a format-2 record carries, and the verdict once checked.
struct Claim {
    /// The uid of the record that carried it (a copy made from the object has another).
    uid: ObjectUid,
    sealed: Vec<u8>,
    under: SealedUnder,
    verdict: OnceLock<bool>,
}

/// The sealed blob is not shown, as `Secrets` does not show it (review 22c).
impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("uid", &self.uid)
            .field("sealed_len", &self.sealed.len())
            .field("under", &self.under)
            .field("verdict", &self.verdict)
            .finish()
    }
}

impl Clone for Object {
    fn clone(&self) -> Object {
        Object {
            uid: self.uid,
            class: self.class,
            key_type: self.key_type,
            attrs: self.attrs.clone(),
            secrets: self.secrets.clone(),
            secret_types: self.secret_types.clone(),
            key: OnceLock::new(),
            use_attrs: OnceLock::new(),
            auth: self.auth,
            claim: self.claim.clone(),
            unauthenticated_ok: self.unauthenticated_ok,
        }
    }
}

/// The attributes every cryptographic use of a key consults (`token::authority`), read
/// from the object once instead of searched for at every `C_*Init`: an object never
/// changes after it is built (a change builds a new version, which reads its own), so
/// these stay exactly what a lookup would give for as long as the object lives, and a
/// use is still judged on the version the table holds at that moment.
#[derive(Debug, Clone, Copy)]
pub struct UseAttrs {
    /// `is_private()`.
    pub private: bool,
    /// `has(IMPORT_TARGET)`.
    pub import_target: bool,
    /// `CKA_ALWAYS_AUTHENTICATE` is true.
    pub always_authenticate: bool,
    /// `CKA_ALLOWED_MECHANISMS` holds a non-empty list.
    pub restricts_mechanisms: bool,
    /// `ulong(KEY_STATE)`.
    pub key_state: Option<u64>,
    /// `ulong(MATERIAL_EXPIRY)`, 0 when absent.
    pub material_expiry: u64,
    /// `ulong(KEY_USAGE)`.
    pub key_usage: Option<u64>,
    /// Which of `USE_FLAGS` are true, bit `i` for `USE_FLAGS[i]`.
    flags: u8,
}

/// The usage flags `UseAttrs` keeps, bit `i` for the `i`th (at most eight).
const USE_FLAGS: &[AttrType] = policy::KEY_USES;
const _: () = assert!(USE_FLAGS.len() <= 8, "UseAttrs keeps the flags in a u8");

impl UseAttrs {
    fn of(object: &Object) -> UseAttrs {
        let flags = USE_FLAGS
            .iter()
            .enumerate()
            .filter(|(_, ty)| object.bool_attr(**ty) == Some(true))
            .fold(0u8, |bits, (i, _)| bits | (1 << i));
        UseAttrs {
            private: object.is_private(),
            import_target: object.has(policy::IMPORT_TARGET),
            always_authenticate: object.bool_attr(CKA_ALWAYS_AUTHENTICATE) == Some(true),
            restricts_mechanisms: matches!(
                object.value(CKA_ALLOWED_MECHANISMS),
                Some(Value::Mechanisms(m)) if !m.is_empty()
            ),
            key_state: object.ulong(policy::KEY_STATE),
            material_expiry: object.ulong(policy::MATERIAL_EXPIRY).unwrap_or(0),
            key_usage: object.ulong(policy::KEY_USAGE),
            flags,
        }
    }
}

/// The outcome of reading one attribute for `C_GetAttributeValue`.
#[derive(Debug)]
pub enum Read {
    Value(Zeroizing<Vec<u8>>),
    /// A nested template (`CKA_UNWRAP_TEMPLATE` and kin).
    Template(Vec<(AttrType, Vec<u8>)>),
    Sensitive,
    Absent,
}

fn aad(token_serial: &str, uid: &ObjectUid, under: SealedUnder) -> Vec<u8> {
    let mut aad = match under {
        SealedUnder::V1 => b"kmshsm/object/v1/".to_vec(),
        SealedUnder::V2(_) => b"kmshsm/object/v2/".to_vec(),
    };
    aad.extend_from_slice(token_serial.as_bytes());
    aad.push(b'/');
    aad.extend_from_slice(uid);
    if let SealedUnder::V2(digest) = under {
        aad.push(b'/');
        aad.extend_from_slice(&digest);
    }
    aad
}

/// The record format that authenticates every attribute (`KMSHSM_INTERNAL_RECORD_FORMAT`).
const RECORD_FORMAT_AUTHENTICATED: u64 = 2;

impl Object {
    /// Builds an object from validated attributes; `secrets` are those that `policy`
    /// says are sealed at rest.
    pub fn new(
        uid: ObjectUid,
        attrs: BTreeMap<AttrType, Value>,
        secrets: BTreeMap<AttrType, Zeroizing<Vec<u8>>>,
    ) -> Result<Object> {
        let secret_types = secrets.keys().copied().collect();
        Object::from_parts(uid, attrs, Secrets::Open(secrets), secret_types)
    }

    /// All attributes, secrets opened, as a template would give them: for copies and
    /// changes that rebuild the object.
    pub(crate) fn all_values(&self, serial: &str, master: Option<&MasterKey>) -> Result<Values> {
        let secrets = if self.secret_types.is_empty() {
            BTreeMap::new()
        } else {
            self.open_secrets(serial, master)?
        };
        Ok((self.attrs.clone(), secrets))
    }

    fn from_parts(
        uid: ObjectUid,
        attrs: BTreeMap<AttrType, Value>,
        secrets: Secrets,
        secret_types: Vec<AttrType>,
    ) -> Result<Object> {
        let class = attrs
            .get(&CKA_CLASS)
            .and_then(Value::as_ulong)
            .map(ObjectClass::new)
            .ok_or(Error::TemplateIncomplete)?;
        let key_type = attrs
            .get(&CKA_KEY_TYPE)
            .and_then(Value::as_ulong)
            .map(KeyType::new);
        Ok(Object {
            uid,
            class,
            key_type,
            attrs,
            secrets,
            secret_types,
            key: OnceLock::new(),
            use_attrs: OnceLock::new(),
            auth: RecordAuth::Local,
            claim: None,
            unauthenticated_ok: false,
        })
    }

    pub fn bool_attr(&self, ty: AttrType) -> Option<bool> {
        self.attrs.get(&ty).and_then(Value::as_bool)
    }

    pub fn value(&self, ty: AttrType) -> Option<&Value> {
        self.attrs.get(&ty)
    }

    pub fn attrs(&self) -> &BTreeMap<AttrType, Value> {
        &self.attrs
    }

    /// The object's key in usable form, parsed once. `master` opens sealed secrets.
    pub fn key(&self, serial: &str, master: Option<&MasterKey>) -> Result<Arc<Key>> {
        self.key_ref(serial, master).map(Arc::clone)
    }

    /// `key`, lent for as long as this version of the object: a caller that only looks at
    /// the key, or keeps one reference of its own, does not count one more and one less.
    pub(crate) fn key_ref<'o>(
        &'o self,
        serial: &str,
        master: Option<&MasterKey>,
    ) -> Result<&'o Arc<Key>> {
        if let Some(k) = self.key.get() {
            return Ok(k);
        }
        let secrets = self.open_secrets(serial, master)?;
        let key = Arc::new(Key::from_object(self, &secrets)?);
        // A concurrent first use may have won; either parse is the same key.
        Ok(self.key.get_or_init(|| key))
    }

    /// Whether the parsed key has been built (and so holds opened secrets).
    pub(crate) fn has_parsed_key(&self) -> bool {
        self.key.get().is_some()
    }

    /// The parsed key, if it has been built (`key` builds it).
    pub fn parsed_key(&self) -> Option<Arc<Key>> {
        self.key.get().map(Arc::clone)
    }

    /// `parsed_key`, lent (`key_ref`).
    pub(crate) fn parsed_key_ref(&self) -> Option<&Arc<Key>> {
        self.key.get()
    }

    /// The attributes every use consults, read once (`UseAttrs`).
    pub fn use_attrs(&self) -> &UseAttrs {
        self.use_attrs.get_or_init(|| UseAttrs::of(self))
    }

    /// Whether the boolean attribute `ty` is true: `bool_attr(ty) == Some(true)`, from
    /// `use_attrs` for the usage flags it keeps.
    pub fn flag_is_true(&self, ty: AttrType) -> bool {
        match USE_FLAGS.iter().position(|f| *f == ty) {
            Some(i) => self.use_attrs().flags & (1 << i) != 0,
            None => self.bool_attr(ty) == Some(true),
        }
    }

    /// The object with plain attributes added or replaced, secrets untouched (state
    /// changes of the KMS lifecycle, which need no master key).
    pub(crate) fn with_plain(&self, values: Vec<(AttrType, Value)>) -> Object {
        let mut copy = self.clone();
        copy.attrs.extend(values);
        copy
    }

    /// The object with its secret attributes removed and plain ones added (key
    /// material deleted or expired): nothing secret is left to seal or unseal.
    pub fn wiped(&self, values: Vec<(AttrType, Value)>) -> Object {
        let mut copy = self.clone();
        copy.attrs.extend(values);
        copy.secrets = Secrets::Open(BTreeMap::new());
        copy.secret_types.clear();
        copy
    }

    pub fn ulong(&self, ty: AttrType) -> Option<u64> {
        self.attrs.get(&ty).and_then(Value::as_ulong)
    }

    pub fn bytes(&self, ty: AttrType) -> Option<&[u8]> {
        self.attrs.get(&ty).and_then(Value::as_bytes)
    }

    /// An estimate of the object's size in the store, for `C_GetObjectSize`. The secrets
    /// count for lengths that public values decide: an RSA key's private values are
    /// stored without leading zero bytes, and their stored length told whether one began
    /// with a zero byte (review 24b).
    pub(crate) fn stored_size(&self) -> usize {
        // A secret's tag and length, and the seal's share.
        const PER_SECRET: usize = 13 + 28;
        let plain: usize = self.attrs.values().map(|v| 13 + v.to_native().len()).sum();
        let secrets = match self.public_secret_len() {
            // Saturating: a length is the record's word, and a size is only an estimate.
            Some(len) => PER_SECRET
                .saturating_add(len)
                .saturating_mul(self.secret_types.len()),
            // Only keys whose secrets have one length whatever their value come here;
            // rounded all the same.
            None => {
                let stored = match &self.secrets {
                    Secrets::Sealed { blob, .. } => blob.len(),
                    Secrets::Open(m) => m.values().map(|v| PER_SECRET + v.len()).sum(),
                };
                stored.div_ceil(64) * 64
            }
        };
        plain + secrets
    }

    /// The length of each secret value as the public attributes tell it: an RSA key's
    /// modulus length (no private value is longer), a secret key's `CKA_VALUE_LEN`, an
    /// elliptic-curve key's field length.
    fn public_secret_len(&self) -> Option<usize> {
        if let Some(modulus) = self.bytes(CKA_MODULUS) {
            return Some(modulus.len());
        }
        if let Some(len) = self.ulong(CKA_VALUE_LEN) {
            return usize::try_from(len).ok();
        }
        self.bytes(CKA_EC_PARAMS)
            .and_then(|params| crate::crypto::ec::Curve::from_oid(params).ok())
            .map(crate::crypto::ec::Curve::field_len)
    }

    pub(crate) fn is_token(&self) -> bool {
        self.bool_attr(CKA_TOKEN).unwrap_or(false)
    }

    /// Whether this is a key object that holds secret material (a secret key's value, a
    /// private key's scalar or exponent), sealed or not.
    pub(crate) fn holds_secret_material(&self) -> bool {
        self.class != CKO_PUBLIC_KEY && (self.has(CKA_VALUE) || self.has(CKA_PRIVATE_EXPONENT))
    }

    pub(crate) fn is_private(&self) -> bool {
        self.bool_attr(CKA_PRIVATE).unwrap_or(true)
    }

    /// Sensitive or unextractable: key secrets may not leave in plaintext.
    pub(crate) fn guards_secrets(&self) -> bool {
        self.bool_attr(CKA_SENSITIVE).unwrap_or(false)
            || !self.bool_attr(CKA_EXTRACTABLE).unwrap_or(true)
    }

    pub fn has(&self, ty: AttrType) -> bool {
        self.attrs.contains_key(&ty) || self.secret_types.contains(&ty)
    }

    /// How the object's record was authenticated.
    pub(crate) fn record_auth(&self) -> RecordAuth {
        self.auth
    }

    /// The object, judged as `source` is: for an object rebuilt from a stored one (a
    /// change, a copy), so that it is written authenticated only if `source` was
    /// authentic, under the master key of the write itself.
    pub(crate) fn judged_as(mut self, source: &Object) -> Object {
        self.auth = source.auth;
        self.claim = source.claim.clone();
        self.unauthenticated_ok = source.unauthenticated_ok;
        self
    }

    /// Whether the record is known to be authentic without a master key: built here, or
    /// a format-2 record already found authentic (under the master key of the token's
    /// epoch; a new epoch replaces every object).
    pub(crate) fn known_authentic(&self) -> bool {
        match self.auth {
            RecordAuth::Local => true,
            RecordAuth::Claimed => self
                .claim
                .as_ref()
                .is_some_and(|c| c.verdict.get() == Some(&true)),
            RecordAuth::Unauthenticated => false,
        }
    }

    /// Whether the record as read may be used under `master`: authentic, or an
    /// unauthenticated record holding only what a session without login may write.
    pub(crate) fn is_acceptable(&self, serial: &str, master: &MasterKey) -> bool {
        self.is_authentic(serial, master)
            || (self.auth == RecordAuth::Unauthenticated && self.unauthenticated_ok)
    }

    /// Whether the object's record is authentic under `master`: objects built here are;
    /// a format-2 record is when its sealed part opens (checked once, then remembered);
    /// a record without authentication is not.
    pub(crate) fn is_authentic(&self, serial: &str, master: &MasterKey) -> bool {
        match self.auth {
            RecordAuth::Local => true,
            RecordAuth::Unauthenticated => false,
            RecordAuth::Claimed => self.claim.as_ref().is_some_and(|c| {
                *c.verdict.get_or_init(|| {
                    // Opening the sealed part runs the master key on this stack.
                    crate::secret_use::note();
                    master
                        .open(&aad(serial, &c.uid, c.under), &c.sealed)
                        .is_ok()
                })
            }),
        }
    }

    /// The secret attributes in the open; `master` is needed for sealed objects.
    pub(crate) fn open_secrets(
        &self,
        serial: &str,
        master: Option<&MasterKey>,
    ) -> Result<BTreeMap<AttrType, Zeroizing<Vec<u8>>>> {
        crate::secret_use::note();
        // A record written while logged in has a sealed part even without secrets (it
        // authenticates the record); there is nothing to open in it, and no login needed.
        if self.secret_types.is_empty() {
            return Ok(BTreeMap::new());
        }
        match &self.secrets {
            Secrets::Open(map) => Ok(map.clone()),
            Secrets::Sealed { blob, under } => {
                let master = master.ok_or(Error::UserNotLoggedIn)?;
                let plain = master.open(&aad(serial, &self.uid, *under), blob)?;
                let mut map = BTreeMap::new();
                for (ty, mut v) in attr::decode(&plain)? {
                    match &mut v {
                        Value::Bytes(b) => {
                            map.insert(ty, Zeroizing::new(std::mem::take(b)));
                        }
                        _ => return Err(StoreError::Malformed("secret attribute kind").into()),
                    }
                }
                Ok(map)
            }
        }
    }

    /// Reads one attribute for the caller, applying the sensitivity rule of §4.1.
    pub fn read(&self, ty: AttrType, serial: &str, master: Option<&MasterKey>) -> Result<Read> {
        if let Some(v) = self.attrs.get(&ty) {
            return Ok(match v {
                Value::Template(list) => {
                    Read::Template(list.iter().map(|(t, v)| (*t, v.to_native())).collect())
                }
                other => Read::Value(Zeroizing::new(other.to_native())),
            });
        }
        if !self.secret_types.contains(&ty) {
            return Ok(Read::Absent);
        }
        if policy::is_key_secret(self.class, ty) && self.guards_secrets() {
            return Ok(Read::Sensitive);
        }
        let mut secrets = self.open_secrets(serial, master)?;
        Ok(secrets.remove(&ty).map(Read::Value).unwrap_or(Read::Absent))
    }

    /// Whether the object matches a search template, comparing native encodings.
    /// Secret attributes match only where the caller could read them.
    pub fn matches(
        &self,
        template: &[(AttrType, Value)],
        serial: &str,
        master: Option<&MasterKey>,
    ) -> bool {
        template.iter().all(|(ty, want)| match self.attrs.get(ty) {
            Some(have) => have == want,
            None => match (want, self.read(*ty, serial, master)) {
                (Value::Bytes(w), Ok(Read::Value(have))) => {
                    subtle::ConstantTimeEq::ct_eq(w.as_slice(), have.as_slice()).into()
                }
                _ => false,
            },
        })
    }

    /// The store record of a token object. With `master`, the record is format 2: its
    /// secrets (possibly none) are sealed with associated data binding the serial, the
    /// uid and the SHA-256 of the plain part, so every attribute is authenticated.
    /// Without it (a session that is not logged in), only an object without secrets can
    /// be written, as an unauthenticated record (docs/security.md).
    pub(crate) fn to_record(
        &self,
        serial: &str,
        master: Option<&MasterKey>,
    ) -> Result<ObjectRecord> {
        // Never launder: a record is rewritten authenticated only if it was authentic
        // (or may be unauthenticated anyway).
        if let Some(m) = master {
            if !self.is_acceptable(serial, m) {
                return Err(StoreError::Tampered.into());
            }
        }
        self.encode_record(serial, master)
    }

    /// `to_record` for records written before records were authenticated: the one
    /// moment an unauthenticated record is taken as it is and authenticated (the first
    /// login after the upgrade, `token::records`).
    pub(crate) fn to_record_adopting(
        &self,
        serial: &str,
        master: &MasterKey,
    ) -> Result<ObjectRecord> {
        self.encode_record(serial, Some(master))
    }

    /// Whether the object may live in an unauthenticated record, as one written by a
    /// session that was not logged in: public, not trusted, no secrets, and not part of a
    /// KMS key or import parameters. Any other object must be authenticated.
    pub(crate) fn may_be_unauthenticated(&self) -> bool {
        !self.is_private()
            && self.bool_attr(CKA_TRUSTED) != Some(true)
            && self.secret_types.is_empty()
            && !self.has(policy::KEY_ID)
            && !self.has(policy::IMPORT_TARGET)
            // No session may give an object a label of the import pairs' (review 19c: a
            // public key planted under one, offline, was served as the pair's).
            && !self
                .bytes(CKA_LABEL)
                .is_some_and(crate::kms::byok::is_wrapping_label)
    }

    /// The record was read without authentication (`may_be_unauthenticated` says what
    /// such a record may hold).
    pub(crate) fn is_unauthenticated(&self) -> bool {
        self.auth == RecordAuth::Unauthenticated
    }

    fn encode_record(&self, serial: &str, master: Option<&MasterKey>) -> Result<ObjectRecord> {
        let marker = secret_types_marker(&self.secret_types);
        let Some(master) = master else {
            // Without the master key nothing can be authenticated: only what may live
            // unauthenticated is written so (anything else waits for a login).
            if !self.may_be_unauthenticated() {
                return Err(Error::UserNotLoggedIn);
            }
            let plain = attr::encode(
                self.attrs
                    .iter()
                    .map(|(t, v)| (*t, v))
                    .chain(std::iter::once((SECRET_TYPES_MARKER, &marker))),
            );
            return Ok(ObjectRecord {
                uid: self.uid,
                plain,
                sealed: None,
                index: index::record_index(self),
            });
        };
        let format = Value::Ulong(RECORD_FORMAT_AUTHENTICATED);
        let plain = attr::encode(
            self.attrs
                .iter()
                .map(|(t, v)| (*t, v))
                .chain(std::iter::once((SECRET_TYPES_MARKER, &marker)))
                .chain(std::iter::once((RECORD_FORMAT_MARKER, &format))),
        );
        let secrets = self.open_secrets(serial, Some(master))?;
        let values: Vec<(AttrType, Value)> = secrets
            .iter()
            .map(|(t, v)| (*t, Value::Bytes(v.to_vec())))
            .collect();
        // `Value` wipes its bytes on drop, so `values` leaves no copy behind.
        let encoded = Zeroizing::new(attr::encode(values.iter().map(|(t, v)| (*t, v))));
        let under = SealedUnder::V2(plain_digest(&plain));
        let sealed = master.seal(&aad(serial, &self.uid, under), &encoded)?;
        Ok(ObjectRecord {
            uid: self.uid,
            plain,
            sealed: Some(sealed),
            index: index::record_index(self),
        })
    }

    /// Rebuilds a token object from its store record, secrets still sealed and the
    /// record not yet authenticated (that needs the master key: `is_authentic`).
    /// Whether `rec` is the very record this object was read from (not a later write of
    /// it): its sealed part is the same bytes (a fresh nonce each write makes it unique
    /// to one write) over the same plain part, or, for a record with no sealed part,
    /// the same attributes. An object never read from the store is no record's version.
    pub(crate) fn is_version_of(&self, rec: &ObjectRecord) -> bool {
        if rec.uid != self.uid {
            return false;
        }
        let same_plain = || {
            Object::from_record(rec)
                .is_ok_and(|o| o.attrs == self.attrs && o.secret_types == self.secret_types)
        };
        match (&self.secrets, &rec.sealed) {
            (Secrets::Sealed { blob, under }, Some(sealed)) if sealed == blob => match under {
                SealedUnder::V2(digest) => plain_digest(&rec.plain) == *digest,
                SealedUnder::V1 => same_plain(),
            },
            (Secrets::Open(open), None) => open.is_empty() && same_plain(),
            _ => false,
        }
    }

    pub(crate) fn from_record(rec: &ObjectRecord) -> Result<Object> {
        let mut attrs = BTreeMap::new();
        let mut secret_types = Vec::new();
        let mut format = None;
        for (ty, v) in attr::decode(&rec.plain)? {
            if ty == SECRET_TYPES_MARKER {
                if let Value::Mechanisms(types) = &v {
                    secret_types = types.iter().map(|m| AttrType::new(m.get())).collect();
                }
                continue;
            }
            if ty == RECORD_FORMAT_MARKER {
                format = v.as_ulong();
                continue;
            }
            attrs.insert(ty, v);
        }
        let authenticated = format == Some(RECORD_FORMAT_AUTHENTICATED);
        let under = if authenticated {
            SealedUnder::V2(plain_digest(&rec.plain))
        } else {
            SealedUnder::V1
        };
        let secrets = match &rec.sealed {
            Some(blob) => Secrets::Sealed {
                blob: blob.clone(),
                under,
            },
            None => Secrets::Open(BTreeMap::new()),
        };
        let mut object = Object::from_parts(rec.uid, attrs, secrets, secret_types)
            .map_err(|_| Error::from(StoreError::Malformed("object record without class")))?;
        if authenticated {
            object.auth = RecordAuth::Claimed;
            // A format-2 record without a sealed part is a forgery: an empty proof,
            // which never opens.
            object.claim = Some(Arc::new(Claim {
                uid: rec.uid,
                sealed: rec.sealed.clone().unwrap_or_default(),
                under,
                verdict: OnceLock::new(),
            }));
        } else {
            object.auth = RecordAuth::Unauthenticated;
            object.unauthenticated_ok = object.may_be_unauthenticated();
        }
        Ok(object)
    }
}

impl Object {
    /// The record as kmshsm wrote it before records were authenticated (format 1: no
    /// format marker, secrets sealed under serial and uid only): for the tests of the
    /// adoption of such tokens.
    #[cfg(test)]
    pub(crate) fn to_legacy_record(
        &self,
        serial: &str,
        master: &MasterKey,
    ) -> Result<ObjectRecord> {
        let marker = secret_types_marker(&self.secret_types);
        let plain = attr::encode(
            self.attrs
                .iter()
                .map(|(t, v)| (*t, v))
                .chain(std::iter::once((SECRET_TYPES_MARKER, &marker))),
        );
        let secrets = self.open_secrets(serial, Some(master))?;
        let sealed = if secrets.is_empty() {
            None
        } else {
            let values: Vec<(AttrType, Value)> = secrets
                .iter()
                .map(|(t, v)| (*t, Value::Bytes(v.to_vec())))
                .collect();
            let encoded = Zeroizing::new(attr::encode(values.iter().map(|(t, v)| (*t, v))));
            Some(master.seal(&aad(serial, &self.uid, SealedUnder::V1), &encoded)?)
        };
        Ok(ObjectRecord {
            uid: self.uid,
            plain,
            sealed,
            index: index::record_index(self),
        })
    }
}

fn plain_digest(plain: &[u8]) -> [u8; 32] {
    let digest = crate::crypto::hash::HashAlg::Sha256.digest(plain);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

/// A pseudo-attribute in the plain record naming its format (2: authenticated). Never
/// visible to callers; in the vendor range `include/kmshsm.h` reserves for internal use.
const RECORD_FORMAT_MARKER: AttrType = crate::vendor::KMSHSM_INTERNAL_RECORD_FORMAT;

/// A pseudo-attribute in the plain record listing which attributes are sealed, so that
/// `C_GetAttributeValue` can tell "sensitive" from "absent" without the master key.
/// It lies in the vendor range reserved by `include/kmshsm.h` for internal use.
const SECRET_TYPES_MARKER: AttrType = crate::vendor::KMSHSM_INTERNAL_SECRET_TYPES;

/// The marker's value: the record format stores the list in the encoding of a mechanism
/// list (64-bit numbers), and reading it back turns them into attribute types again.
fn secret_types_marker(types: &[AttrType]) -> Value {
    Value::Mechanisms(types.iter().map(|t| MechType::new(t.get())).collect())
}

pub(crate) fn new_uid() -> Result<ObjectUid> {
    let mut uid = [0u8; 16];
    crate::crypto::rand::random_fill(&mut uid)?;
    Ok(uid)
}

pub(crate) fn unique_id_of(uid: &ObjectUid) -> Vec<u8> {
    uid.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

#[cfg(test)]
mod use_attrs_tests {
    use super::*;

    fn aes_key(values: &[(AttrType, Value)]) -> Object {
        let mut attrs = BTreeMap::from([
            (CKA_CLASS, Value::Ulong(CKO_SECRET_KEY.get())),
            (CKA_KEY_TYPE, Value::Ulong(CKK_AES.get())),
            (CKA_ENCRYPT, Value::Bool(true)),
            (CKA_DECRYPT, Value::Bool(false)),
            (policy::KEY_STATE, Value::Ulong(1)),
        ]);
        attrs.extend(values.iter().cloned());
        Object::new([7; 16], attrs, BTreeMap::new()).unwrap()
    }

    #[test]
    fn use_attrs_give_what_the_lookups_give() {
        let o = aes_key(&[(CKA_PRIVATE, Value::Bool(false))]);
        let a = *o.use_attrs();
        assert!(!a.private && !a.import_target && !a.always_authenticate);
        assert!(!a.restricts_mechanisms);
        assert_eq!(
            (a.key_state, a.material_expiry, a.key_usage),
            (Some(1), 0, None)
        );
        for ty in [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_WRAP, CKA_TOKEN] {
            assert_eq!(o.flag_is_true(ty), o.bool_attr(ty) == Some(true), "{ty:#x}");
        }
        // Absent CKA_PRIVATE reads as private, as `is_private` says.
        assert!(aes_key(&[]).use_attrs().private);
        let restricted = aes_key(&[(CKA_ALLOWED_MECHANISMS, Value::Mechanisms(vec![CKM_AES_GCM]))]);
        assert!(restricted.use_attrs().restricts_mechanisms);
        let empty = aes_key(&[(CKA_ALLOWED_MECHANISMS, Value::Mechanisms(vec![]))]);
        assert!(!empty.use_attrs().restricts_mechanisms);
    }

    #[test]
    fn a_changed_version_reads_its_own_use_attrs_and_the_old_one_keeps_its_own() {
        let o = aes_key(&[(policy::MATERIAL_EXPIRY, Value::Ulong(100))]);
        // Read (and kept) before the change.
        assert_eq!(o.use_attrs().key_state, Some(1));
        let disabled = o.with_plain(vec![
            (policy::KEY_STATE, Value::Ulong(2)),
            (CKA_ENCRYPT, Value::Bool(false)),
            (CKA_PRIVATE, Value::Bool(true)),
        ]);
        assert_eq!(disabled.use_attrs().key_state, Some(2));
        assert!(!disabled.flag_is_true(CKA_ENCRYPT) && disabled.use_attrs().private);
        let wiped = o.wiped(vec![(policy::MATERIAL_EXPIRY, Value::Ulong(0))]);
        assert_eq!(wiped.use_attrs().material_expiry, 0);
        assert_eq!(o.use_attrs().key_state, Some(1));
        assert!(o.flag_is_true(CKA_ENCRYPT));
        assert_eq!(o.use_attrs().material_expiry, 100);
    }
}

//! Records at rest: every token object's record is authenticated under the token master
//! key (its sealed part's associated data binds the serial, the uid and every plain
//! attribute: `object::Object::to_record`), and this module decides, once the master key
//! is at hand, whether a record read from the store may be used.
//!
//! Before a login nothing can be verified (no key): public objects are used as read.
//! After one, a record that fails authentication — or an unauthenticated record holding
//! what only an authenticated one may hold (private, trusted, secret, part of a KMS key)
//! — is refused with `StoreError::Tampered`, and its uid is logged.
//!
//! Tokens made before records were authenticated are adopted at the first login that
//! finds them so: their records are rewritten authenticated, in one transaction with a
//! marker (a MAC under the master key) that says the token's records are authenticated,
//! and the PIN record of that login is rewrapped in the new format, which no one without
//! the PIN can turn back. This module must not decide visibility or key policy.

use subtle::ConstantTimeEq;

use super::{master_aad, separation_marker, Token, META_RECORD_AUTH, META_SEPARATION_OF_DUTIES};
use crate::ck::{CKA_ID, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};
use crate::error::{Error, Result, StoreError};
use crate::kms::audit::Operation;
use crate::object::{Object, RecordAuth};
use crate::store::seal::MasterKey;
use crate::store::{Change, PinRecordId, PinRole, Scope};

/// The format of the PIN record a login opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PinFormat {
    /// Sealed with the current associated data: the token's records are authenticated.
    Current,
    /// Sealed before records were authenticated.
    Legacy,
}

/// The marker that a token's records are authenticated: a MAC of the serial under a
/// key derived from the master key, so no one without it can write one. The MAC of a
/// token under the separation-of-duties policy also covers the policy: a login that
/// finds that marker keeps the policy whatever the metadata row says (review 19c
/// deleted the row offline), and a login that finds no authentic marker at all refuses
/// the token as tampered.
pub(super) fn record_auth_marker(master: &MasterKey, serial: &str, separated: bool) -> Vec<u8> {
    let label = if separated {
        format!("kmshsm record authentication/{serial}/separation of duties")
    } else {
        format!("kmshsm record authentication/{serial}")
    };
    master.derive(label.as_bytes()).to_vec()
}

/// What an authentic record-authentication marker `found` says: `Some(separated)`; `None`
/// when no key of this token made it.
pub(super) fn read_record_auth_marker(
    found: &[u8],
    master: &MasterKey,
    serial: &str,
) -> Option<bool> {
    [false, true]
        .into_iter()
        .find(|&separated| bool::from(found.ct_eq(&record_auth_marker(master, serial, separated))))
}

/// `bytes` (a record's uid) as lowercase hex, for the log lines that name a record.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Token {
    /// Whether the token object `object` may be used, judged under the master key when
    /// a login has made it available (before that, nothing can be verified).
    pub(super) fn check_record(&self, object: &Object) -> Result<()> {
        // Checked once per object version: later uses take neither the login's lock
        // nor the master key.
        if object.known_authentic() {
            return Ok(());
        }
        let Some(master) = self.master() else {
            return Ok(());
        };
        if object.is_acceptable(&self.serial, &master) && !self.takes_a_pairs_id(object)? {
            return Ok(());
        }
        log::error!(
            "token {}: the record of object {} fails authentication (changed outside the \
             module); it is not used",
            self.serial,
            hex(&object.uid)
        );
        Err(StoreError::Tampered.into())
    }

    /// Refuses the token as tampered: its record-authentication marker `what`.
    fn tampered(&self, what: &str) -> Error {
        log::error!(
            "token {}: the record-authentication marker {what}",
            self.serial
        );
        StoreError::Tampered.into()
    }

    /// Whether `object`, read without authentication, is a public or private key under
    /// the `CKA_ID` of an import wrapping pair the token holds: a name no session may
    /// give it (`check_import_pair_names`), so its record was edited outside the module
    /// (review 19c: a public key planted under a pair's id was served as the pair's).
    fn takes_a_pairs_id(&self, object: &Object) -> Result<bool> {
        if !object.is_unauthenticated() || !matches!(object.class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY)
        {
            return Ok(false);
        }
        match object.bytes(CKA_ID) {
            Some(id) if !id.is_empty() => self.id_held(id, true),
            _ => Ok(false),
        }
    }

    /// After a successful check of the `role` PIN that opened a `format` record, with its
    /// master key: settles the token's record format, then what its record-authentication
    /// marker says of the separation-of-duties policy (`settle_separation`).
    ///
    /// A legacy record means this token may predate authenticated records. If the
    /// token's marker is there (and authentic), it was adopted already; if it is
    /// missing, every record is adopted now; a marker that does not authenticate is
    /// tampering. Either way the PIN record is rewrapped in the current format (`pin` is
    /// needed for that), if it is still the record `checked` the PIN was checked
    /// against. Answers the KDF parameters of the record in force after it as far as
    /// this call knows (the rewrapped one's, or `checked`'s).
    ///
    /// A refusal for tampering is recorded in the audit trail as a refusal of
    /// `operation` (the login or `C_SetPIN` the right PIN was given for): the operator
    /// sees that someone edited the token, though the PIN was right and no wrong PIN is
    /// counted.
    pub(super) fn settle_record_format(
        &self,
        role: PinRole,
        pin: &[u8],
        master: &MasterKey,
        format: PinFormat,
        checked: &PinRecordId,
        operation: Operation,
    ) -> Result<Vec<u8>> {
        let settled = if format == PinFormat::Legacy {
            self.adopt(role, pin, master, checked)
        } else {
            Ok(checked.kdf.clone())
        };
        let settled = settled.and_then(|kdf| {
            self.settle_separation(master, checked.epoch)?;
            Ok(kdf)
        });
        if let Err(e @ Error::Store(StoreError::Tampered)) = &settled {
            let event = self
                .pin_event(operation, role, None)
                .refused_with("RecordTampered", &e.to_string());
            self.record_refusal(event, &[Some(checked.epoch)]);
        }
        settled
    }

    /// The marker as the store holds it in the token of `epoch`, read now: `Some(covers
    /// the policy)`, `None` when there is none; a marker no key of this token made is
    /// tampering.
    fn stored_marker(&self, master: &MasterKey, epoch: u64) -> Result<(Option<bool>, bool)> {
        let stored = self.store.read(0, 0, Scope::Changes)?;
        if stored.epoch != epoch {
            // Re-initialised meanwhile: the marker is another master key's.
            self.sync()?;
            return Err(Error::TokenReinitialized);
        }
        let row = stored.meta.contains_key(META_SEPARATION_OF_DUTIES);
        match stored.meta.get(META_RECORD_AUTH) {
            Some(found) => match read_record_auth_marker(found, master, &self.serial) {
                Some(separated) => Ok((Some(separated), row)),
                None => Err(self.tampered("fails to authenticate")),
            },
            None => Ok((None, row)),
        }
    }

    /// After a login (or a PIN check) of the token of `epoch` with its master key: a
    /// token whose records are authenticated has an authentic record-authentication
    /// marker (none, or one no key of this token made, is tampering). A marker that
    /// covers the separation-of-duties policy puts the token under it whatever the
    /// metadata row says (a row missing then was removed outside the module, and is
    /// written again). A token under the policy (this process's configuration, or the
    /// row) whose marker does not cover it gets one that does, so that no one without a
    /// PIN can take the policy off again. Only a covering marker replaces a marker.
    fn settle_separation(&self, master: &MasterKey, epoch: u64) -> Result<()> {
        let (marker, row) = self.stored_marker(master, epoch)?;
        let Some(covers) = marker else {
            return Err(self.tampered("is missing from a token whose PIN records need it"));
        };
        let separated = covers || self.separating_duties()?;
        if !separated {
            return Ok(());
        }
        self.note_separation(epoch);
        let mut changes = Vec::new();
        if !row {
            if covers {
                log::error!(
                    "token {}: the separation-of-duties row is missing though the \
                     record-authentication marker covers the policy (removed outside the \
                     module); the policy stays and the row is written again",
                    self.serial
                );
            }
            changes.push(separation_marker());
        }
        if !covers {
            changes.push(Change::PutMeta(
                META_RECORD_AUTH.into(),
                record_auth_marker(master, &self.serial, true),
            ));
        }
        if changes.is_empty() {
            return Ok(());
        }
        // Decided under the key of the token of `epoch` (`commit_decided`).
        self.commit_in(&[Some(epoch)], changes)
    }

    /// The adoption of a token that may predate authenticated records, for a login that
    /// opened a legacy PIN record (`settle_record_format`).
    fn adopt(
        &self,
        role: PinRole,
        pin: &[u8],
        master: &MasterKey,
        checked: &PinRecordId,
    ) -> Result<Vec<u8>> {
        let epoch = checked.epoch;
        let (marker, _) = self.stored_marker(master, epoch)?;
        // The rewrapped PIN record costs a PIN derivation: made before the transaction.
        // It keeps the failure count the store holds when it is written, not one read
        // before the derivation (attempts made meanwhile stay counted).
        let record = Token::pin_record(master, &self.serial, role, pin, &self.shared.config)?;
        let rewrapped = record.kdf.clone();
        let mut changes = vec![Change::RewrapPin {
            role,
            from_kdf: checked.kdf.clone(),
            record,
        }];
        if marker.is_some() {
            // Adopted already. Decided under the key of the token of `epoch`
            // (`commit_decided`).
            self.commit_in(&[Some(epoch)], changes)?;
            return Ok(rewrapped);
        }
        let all = self.store.read(0, 0, Scope::All)?;
        let uids: Vec<_> = all.objects.iter().map(|r| r.uid).collect();
        // Written only where there is still none: a marker another process wrote since
        // the read above (one that covers the policy, say) is not replaced by this one
        // (review 20a); `settle_separation` then reads what stands.
        changes.push(Change::PutMetaIfAbsent(
            META_RECORD_AUTH.into(),
            record_auth_marker(master, &self.serial, false),
        ));
        let mut failure = None;
        let mut adopted_count = 0usize;
        let mut reinitialized = false;
        self.transact(&uids, &[], &mut |loaded| {
            // Adopted under the key of the token of `epoch` only (`commit_decided`).
            reinitialized = loaded.is_other_token(epoch);
            if reinitialized {
                return None;
            }
            let mut writes = changes.clone();
            adopted_count = 0;
            for rec in &loaded.objects {
                let object = match Object::from_record(rec) {
                    Ok(o) => o,
                    Err(e) => {
                        failure = Some(e);
                        return None;
                    }
                };
                if object.record_auth() != RecordAuth::Unauthenticated {
                    continue;
                }
                match object.to_record_adopting(&self.serial, master) {
                    Ok(r) => {
                        writes.push(Change::PutObject(r));
                        adopted_count += 1;
                    }
                    Err(e) => {
                        failure = Some(e);
                        return None;
                    }
                }
            }
            Some(writes)
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if reinitialized {
            self.sync()?;
            return Err(Error::TokenReinitialized);
        }
        log::warn!(
            "token {}: {adopted_count} records written before records were authenticated \
             are now authenticated",
            self.serial
        );
        self.sync()?;
        Ok(rewrapped)
    }
}

/// The associated data of a PIN record sealed before records were authenticated.
pub(super) fn legacy_master_aad(serial: &str, role: PinRole) -> Vec<u8> {
    let who = match role {
        PinRole::So => "so",
        PinRole::User => "user",
    };
    format!("kmshsm/master/v1/{serial}/{who}").into_bytes()
}

/// Both associated data a PIN record may be sealed with, current first.
pub(super) fn master_aads(serial: &str, role: PinRole) -> [Vec<u8>; 2] {
    [master_aad(serial, role), legacy_master_aad(serial, role)]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ck::*;
    use crate::ids::SessionHandle;
    use crate::object::attr::RawAttribute;
    use crate::store::seal::{self, PinKdf};
    use crate::token::test_store::{self, bytes as raw, ulong};
    use crate::token::{Shared, UserKind};

    const SO_PIN: &[u8] = b"so-pin-1234";
    const USER_PIN: &[u8] = b"user-pin-5678";

    /// A token with a user PIN and one private AES key, as kmshsm wrote it before records
    /// were authenticated (`test_store::legacy_token`), opened again.
    fn legacy_token(dir: &std::path::Path) -> (Token, Arc<Shared>) {
        let shared = crate::token::shared_for_tests(dir);
        let key: &[RawAttribute] = &[
            ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
            ulong(CKA_KEY_TYPE, CKK_AES.raw()),
            raw(CKA_TOKEN, &[1]),
            raw(CKA_LABEL, b"old key"),
            raw(CKA_VALUE, &[9u8; 32]),
        ];
        let path = test_store::legacy_token(dir, &shared, "legacy0001", SO_PIN, &[key]);
        (Token::open(&path, Arc::clone(&shared)).unwrap(), shared)
    }

    #[test]
    fn a_legacy_token_is_adopted_at_its_first_login_and_guarded_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let (token, _shared) = legacy_token(dir.path());
        let legacy_count = |token: &Token| {
            let all = token.store.read(0, 0, Scope::All).unwrap();
            all.objects
                .iter()
                .filter(|r| {
                    Object::from_record(r).unwrap().record_auth() == RecordAuth::Unauthenticated
                })
                .count()
        };
        assert!(legacy_count(&token) > 0, "the fixture is legacy");
        token.add_session(SessionHandle::new(1), true).unwrap();
        token
            .login(SessionHandle::new(1), UserKind::User, USER_PIN)
            .unwrap();
        // Adopted: every record authenticated, the marker written, the user PIN record
        // rewrapped in the current format.
        assert_eq!(legacy_count(&token), 0);
        let snapshot = token.store.read(0, 0, Scope::Changes).unwrap();
        let master = token.master().unwrap();
        assert_eq!(
            snapshot.meta.get(META_RECORD_AUTH),
            Some(&record_auth_marker(&master, &token.serial, false))
        );
        let user = &snapshot.pins[&PinRole::User];
        let kdf = PinKdf::decode(&user.kdf).unwrap();
        seal::unwrap_master_key(
            &user.wrapped_key,
            &kdf,
            USER_PIN,
            &master_aad(&token.serial, PinRole::User),
        )
        .expect("the user PIN record is in the current format");
        // The adopted key is usable as before.
        let found = token.find(&[raw(CKA_LABEL, b"old key")]).unwrap();
        assert_eq!(found.len(), 1);
        token.object(found[0]).expect("the adopted key is usable");
    }

    /// A forged record without authentication, holding `extra` besides a public data
    /// object's attributes.
    fn forged(
        master: &MasterKey,
        extra: Vec<(crate::object::attr::AttrType, crate::object::attr::Value)>,
    ) -> Object {
        use crate::object::attr::Value;
        let mut attrs: std::collections::BTreeMap<_, _> = [
            (CKA_CLASS as _, Value::Ulong(CKO_DATA.get())),
            (CKA_TOKEN as _, Value::Bool(true)),
            (CKA_PRIVATE as _, Value::Bool(false)),
            (CKA_LABEL as _, Value::Bytes(b"forged".to_vec())),
        ]
        .into_iter()
        .collect();
        attrs.extend(extra);
        let object = Object::new([7u8; 16], attrs, Default::default()).unwrap();
        let record = object.to_legacy_record("serial", master).unwrap();
        Object::from_record(&record).unwrap()
    }

    #[test]
    fn a_change_or_copy_of_a_forged_record_is_never_written_authenticated() {
        use crate::object::{policy::KEY_ID, template};
        let master = MasterKey::generate().unwrap();
        let bad = forged(
            &master,
            vec![(
                KEY_ID,
                crate::object::attr::Value::Bytes(b"someone-else".to_vec()),
            )],
        );
        assert!(!bad.is_acceptable("serial", &master));
        let label = [raw(CKA_LABEL, b"renamed")];
        let all = bad.all_values("serial", Some(&master)).unwrap();
        let changed = template::apply(&bad, all, &label).unwrap();
        assert!(
            changed.to_record("serial", Some(&master)).is_err(),
            "a change made while the master key appeared must not launder the record"
        );
        let all = bad.all_values("serial", Some(&master)).unwrap();
        let copy = template::copy(&bad, all, &[raw(CKA_TOKEN, &[1])]).unwrap();
        assert!(copy.to_record("serial", Some(&master)).is_err());
        // A genuine public object written without login may be changed and copied, even
        // into a private object, by a logged-in user.
        let public = forged(&master, vec![]);
        assert!(public.is_acceptable("serial", &master));
        let all = public.all_values("serial", Some(&master)).unwrap();
        let private = template::copy(&public, all, &[raw(CKA_PRIVATE, &[1])]).unwrap();
        private
            .to_record("serial", Some(&master))
            .expect("a user may vouch for a public object");
    }
}

//! GetParametersForImport and ImportKeyMaterial on PKCS#11 (kms-docs 000-004).
//!
//! Import parameters are a wrapping key pair made by `C_GenerateKeyPair` whose private
//! template names the target (`CKA_KMSHSM_IMPORT_TARGET`) and the wrapping algorithm:
//! token objects, the private half unwrap-only, sensitive, never extractable and pinned
//! to the algorithm's mechanism, both halves carrying a fresh import token and its
//! expiry, labelled `import:<KeyId>` with a `CKA_ID` unique to the pair. The import is
//! `C_UnwrapKey` with that private key and a template carrying the token (and optionally
//! `CKA_KMSHSM_MATERIAL_EXPIRY`), or standard attributes only: the key's own token is
//! used, `CKA_CLASS`, `CKA_KEY_TYPE` and `CKA_VALUE_LEN` must fit the target and
//! `CKA_END_DATE` gives the expiry. It returns the target's handle.

use crate::store::Loaded;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::crypto::pkcs8::encode_spki;
use crate::kms::audit::Operation;
use crate::kms::byok;
use crate::mechanism::{GeneratedPair, KeyRequest, WrappedLen};
use crate::object::key::Material;
use crate::token::keys::mechanism as find_mechanism;
use crate::token::LoggedIn;

/// The label of the KMS subkey that import tokens are MACed under (`kms_secret`).
const IMPORT_TOKEN_MAC_LABEL: &[u8] = b"kmshsm kms import token";

impl Token {
    /// The KMS key named `id`: (handle, owner, object) of its private or secret object,
    /// and its public object if any; and the main object.
    fn target(&self, id: &KeyId) -> Result<(Vec<KeyObject>, Arc<Object>)> {
        let objects = self.key_objects(id.as_str().as_bytes())?;
        let main = objects
            .iter()
            .find(|(_, _, o)| o.class != CKO_PUBLIC_KEY)
            .map(|(_, _, o)| Arc::clone(o))
            .ok_or(kms(KmsError::NotFound))?;
        // Whatever is decided on it, a refusal included, is decided on the token's own
        // record only (review 20b: a state edited offline was refused as a key-model
        // refusal, and recorded so).
        self.check_record(&main)?;
        Ok((objects, main))
    }

    /// The key named `id`, when its cached record allows an import at all (the key
    /// model's rule, `model::precheck`, refusing only once the cache has caught up with
    /// the store; the import decides again on the current record).
    fn import_target(&self, id: &KeyId) -> Result<(Vec<KeyObject>, Arc<Object>)> {
        self.refused_on_current(|| {
            let (objects, main) = self.target(id)?;
            let origin = origin_of(&main).ok_or(kms(KmsError::UnsupportedOrigin))?;
            model::precheck_import(origin, state_of(&main)).map_err(kms)?;
            Ok((objects, main))
        })
    }

    /// GetParametersForImport: a wrapping key pair bound to the target in the private
    /// template. Called by `generate_key_pair` when `CKA_KMSHSM_IMPORT_TARGET` is given.
    /// A refusal by the key model is recorded in the audit trail (the pair's creation
    /// is recorded with it, by `insert_all_in`).
    pub(in crate::token) fn generate_import_parameters(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        public_template: &[RawAttribute],
        private_template: &[RawAttribute],
    ) -> Result<(ObjectHandle, ObjectHandle)> {
        // The token the refusal below would be of.
        let judged_in = self.view_epoch();
        let result = self.make_import_parameters(caller, mech, public_template, private_template);
        if let Err(Error::Kms(e)) = &result {
            // The target is named only if it is a KeyId: the caller's bytes are not
            // written into the trail as one (they could hold anything, line breaks
            // that forge a line of `kmshsm audit list` among them).
            let target = template::parse(private_template)
                .ok()
                .and_then(|g| {
                    g.get(&IMPORT_TARGET)
                        .and_then(Value::as_bytes)
                        .map(<[u8]>::to_vec)
                })
                .filter(|t| KeyId::from_bytes(t).is_ok());
            let event = self.event(Operation::GetParametersForImport);
            let event = match &target {
                Some(target) => event.key(target),
                None => event,
            };
            self.record_refusal(event.refused(e), &[Some(judged_in)]);
        }
        result
    }

    fn make_import_parameters(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        public_template: &[RawAttribute],
        private_template: &[RawAttribute],
    ) -> Result<(ObjectHandle, ObjectHandle)> {
        // GetParametersForImport is the owner's act on a key only the owner can see:
        // asked by anyone else, the answer is the same whatever the key (its existence,
        // origin and state stay hidden), before any look-up or key generation.
        if self.logged_in() != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        self.sweep()?;
        let given = template::parse(private_template)?;
        let target = KeyId::from_bytes(
            given
                .get(&IMPORT_TARGET)
                .and_then(Value::as_bytes)
                .unwrap_or(&[]),
        )
        .map_err(kms)?;
        let alg = given
            .get(&WRAPPING_ALGORITHM)
            .and_then(Value::as_ulong)
            .ok_or(Error::TemplateIncomplete)?;
        let alg = WrappingAlgorithm::from_code(alg).ok_or(Error::AttributeValueInvalid)?;
        // The token the target is read from, taken before it is: the pair goes into
        // that token only (`insert_all_in`), never into one re-initialised since.
        let read_in = self.view_epoch();
        // Judged first on the cached record, so that a refusal costs no key generation,
        // and again on the current record in the transaction that stores the pair
        // (`judge_target` below): another process may have scheduled the key's deletion
        // or destroyed it meanwhile.
        let (main, main_handle, stored) = self.refused_on_current(|| {
            let (objects, main) = self.target(&target)?;
            check_import_parameters_on(&main, alg)?;
            // Where the object lives is the table's word, not the record's `CKA_TOKEN`
            // (review 20b: a record edited to say false skipped the judgement below).
            let (handle, owner, _) = objects
                .iter()
                .find(|(_, _, o)| Arc::ptr_eq(o, &main))
                .ok_or(Error::Internal("the target's main object"))?;
            Ok((Arc::clone(&main), *handle, *owner == Owner::Token))
        })?;
        let (key_type, generation) = shape::wrapping_key(alg);
        let mechanism_ok = mech.kind == generation;
        if !mechanism_ok {
            return Err(kms(KmsError::InvalidParameter(
                "the wrapping key spec does not fit the algorithm",
            )));
        }
        let request = KeyRequest {
            modulus_bits: Some(2048),
            ..KeyRequest::default()
        };
        if template::parse(public_template)?
            .get(&CKA_MODULUS_BITS)
            .and_then(Value::as_ulong)
            .is_some_and(|b| b != 2048)
        {
            return Err(kms(KmsError::InvalidParameter(
                "wrapping keys are RSA_2048",
            )));
        }
        let (_, (public, private)): (KeyType, GeneratedPair) =
            find_mechanism(mech.kind)?.generate_key_pair(&mech.param, &request)?;
        let spki = match key_type {
            CKK_RSA => {
                let get = |vals: &[(AttrType, Value)], ty| {
                    vals.iter()
                        .find(|(a, _)| *a == ty)
                        .and_then(|(_, v)| v.as_bytes())
                        .map(<[u8]>::to_vec)
                };
                let (n, e) = (
                    get(&public, CKA_MODULUS).unwrap_or_default(),
                    get(&public, CKA_PUBLIC_EXPONENT).unwrap_or_default(),
                );
                encode_spki(&KeyAlgorithm::Rsa, &RsaComponents::public_der(&n, &e)?)?
            }
            _ => {
                let point = public
                    .iter()
                    .find(|(a, _)| *a == CKA_EC_POINT)
                    .and_then(|(_, v)| v.as_bytes())
                    .map(ec::point_from_attribute)
                    .unwrap_or_default();
                encode_spki(
                    &KeyAlgorithm::Ec {
                        curve_oid: sm::OID_SM2.to_vec(),
                    },
                    &point,
                )?
            }
        };
        let (label, id) = self.wrapping_names(&target, &given, public_template)?;
        let b = |ty, v| (ty, Value::Bool(v));
        let shared = vec![
            b(CKA_TOKEN, true),
            (CKA_LABEL, Value::Bytes(label)),
            (CKA_ID, Value::Bytes(id)),
            (CKA_PUBLIC_KEY_INFO, Value::Bytes(spki)),
            (WRAPPING_ALGORITHM, ulong(alg.code())),
            (
                IMPORT_TARGET,
                Value::Bytes(target.as_str().as_bytes().to_vec()),
            ),
        ];
        let mut private_values = private;
        private_values.extend(shared.iter().cloned());
        private_values.extend([
            // The pair does one thing: the import unwrap into its target. Nothing may
            // add a use, copy it, or take its key out (docs/security.md).
            b(CKA_PRIVATE, true),
            b(CKA_SENSITIVE, true),
            b(CKA_EXTRACTABLE, false),
            b(CKA_MODIFIABLE, false),
            b(CKA_COPYABLE, false),
            b(CKA_UNWRAP, true),
            b(CKA_DECRYPT, false),
            b(CKA_SIGN, false),
            b(CKA_SIGN_RECOVER, false),
            b(CKA_DERIVE, false),
            (
                CKA_ALLOWED_MECHANISMS,
                Value::Mechanisms(vec![mechanism_of(alg)]),
            ),
        ]);
        let mut public_values = public;
        public_values.extend(shared);
        public_values.extend([
            // As private as its target: the half names the target's KeyId (label and
            // `IMPORT_TARGET`), which a caller who cannot see the target must not read
            // (review 24b).
            b(CKA_PRIVATE, main.bool_attr(CKA_PRIVATE) != Some(false)),
            b(CKA_VERIFY, false),
            b(CKA_MODIFIABLE, false),
            b(CKA_COPYABLE, false),
        ]);
        let provenance = Provenance::Generated(mech.kind);
        // The target and the algorithm are the request, which the module writes on both
        // halves itself (`shared`): no template may set them on an object.
        let request_only = |a: &&RawAttribute| a.ty != IMPORT_TARGET && a.ty != WRAPPING_ALGORITHM;
        let public_template: Vec<RawAttribute> = public_template
            .iter()
            .filter(request_only)
            .filter(|a| a.ty != CKA_PUBLIC_EXPONENT && a.ty != CKA_MODULUS_BITS)
            .cloned()
            .collect();
        let private_template: Vec<RawAttribute> = private_template
            .iter()
            .filter(request_only)
            .cloned()
            .collect();
        let public = template::build_key(
            CKO_PUBLIC_KEY,
            key_type,
            &public_template,
            public_values,
            provenance,
        )?;
        let private = template::build_key(
            CKO_PRIVATE_KEY,
            key_type,
            &private_template,
            private_values,
            provenance,
        )?;
        // The token names the private half: only it can complete the import.
        let token = ImportToken::issue(target, private.uid, alg, self.now());
        // The import token is MACed under the master key of the token it is for.
        let (mac_key, master_epoch) = self.kms_secret_with_epoch(IMPORT_TOKEN_MAC_LABEL)?;
        let sealed = token.seal(&mac_key)?;
        let stamp = vec![
            (IMPORT_TOKEN, Value::Bytes(sealed)),
            (TOKEN_EXPIRY, ulong(token.expires_at as u64)),
        ];
        let (public, private) = (public.with_plain(stamp.clone()), private.with_plain(stamp));
        // A token object is judged on its record in the pair's store transaction; a
        // session object, which lives in this process only, on the table's version of
        // it under the table's lock (review 20b: another thread may have changed or
        // destroyed it since).
        let target_uids = if stored { vec![main.uid] } else { Vec::new() };
        let master = self.master();
        let serial = self.serial.clone();
        let mut judge_session_target = |table: &crate::object::table::ObjectTable| -> Result<()> {
            if stored {
                return Ok(());
            }
            let current = table.get(main_handle).ok_or(kms(KmsError::NotFound))?;
            check_import_parameters_on(&current.object, alg)
        };
        let mut judge_target = |loaded: &Loaded| -> Result<()> {
            let Some(uid) = target_uids.first() else {
                return Ok(());
            };
            let record = loaded
                .objects
                .iter()
                .find(|r| r.uid == *uid)
                .ok_or(kms(KmsError::NotFound))?;
            let current = Object::from_record(record)?;
            // A target read back is authenticated under the login's key; without one (a
            // logout meanwhile) nothing is issued.
            let Some(master) = master.as_deref() else {
                return Err(Error::UserNotLoggedIn);
            };
            if !current.is_acceptable(&serial, master) {
                return Err(crate::error::StoreError::Tampered.into());
            }
            check_import_parameters_on(&current, alg)
        };
        let handles = self.insert_all_judged(
            caller,
            vec![public, private],
            &[Some(read_in), master_epoch],
            crate::token::objects::Judges {
                uids: &target_uids,
                in_store: &mut judge_target,
                in_table: &mut judge_session_target,
                // A session target's decisions are this process's, serialised by
                // `kms_decisions`: held from its judgement until the pair is stored, no
                // decision on the target falls in between (review 20c).
                serialise_decisions: !stored,
                policy: self.policy()?,
            },
        )?;
        self.objects.write().note_deadline(token.expires_at);
        match handles[..] {
            [p, q] => Ok((p, q)),
            _ => Err(Error::Internal("import parameter insert")),
        }
    }

    /// The wrapping pair's `CKA_LABEL` and `CKA_ID`: the caller's if a template names
    /// them (private template first), else `import:<KeyId>` and the target's KeyId
    /// followed by random bytes (`kms::byok`), so tools find the pair by its target and
    /// tell pairs of one key apart.
    fn wrapping_names(
        &self,
        target: &KeyId,
        private: &BTreeMap<AttrType, Value>,
        public_template: &[RawAttribute],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let public = template::parse(public_template)?;
        let named = |ty| {
            private
                .get(&ty)
                .or_else(|| public.get(&ty))
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
        };
        let label = named(CKA_LABEL).unwrap_or_else(|| byok::wrapping_label(target).into_bytes());
        let id = match named(CKA_ID) {
            // A name of the caller's choice that a key already has would make a search
            // by it find that key beside the pair.
            Some(id) if !id.is_empty() && self.id_held(&id, false)? => {
                return Err(Error::AttributeValueInvalid)
            }
            Some(id) => id,
            None => {
                let mut nonce = [0u8; byok::ID_NONCE_LEN];
                crate::crypto::rand::random_fill(&mut nonce)?;
                byok::wrapping_id(target, &nonce).map_err(kms)?
            }
        };
        Ok((label, id))
    }

    /// Refuses a new object, or a change (`before` is the object it changes), that gives
    /// an object other than an import wrapping pair a pair's name (docs/key-model.md):
    /// a label in the pairs' `import:` namespace, or, for a public or private key, the
    /// non-empty `CKA_ID` of a pair the token holds. Tools select a pair by those names,
    /// so a key planted under them could be taken for the pair's public half and
    /// material wrapped to it. Only a name being given is judged: an object keeps the
    /// names it has. Pair halves are made by the module only (`CKA_KMSHSM_IMPORT_TARGET`
    /// is not a caller's to set).
    pub(in crate::token) fn check_import_pair_names(
        &self,
        object: &Object,
        before: Option<&Object>,
    ) -> Result<()> {
        if object.has(IMPORT_TARGET) {
            return Ok(());
        }
        let given = |ty| {
            object
                .bytes(ty)
                .filter(|v| before.is_none_or(|b| b.bytes(ty) != Some(*v)))
        };
        if given(CKA_LABEL).is_some_and(byok::is_wrapping_label) {
            return Err(Error::AttributeValueInvalid);
        }
        let is_key_pair_half = matches!(object.class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY);
        match given(CKA_ID) {
            Some(id) if is_key_pair_half && !id.is_empty() && self.id_held(id, true)? => {
                Err(Error::AttributeValueInvalid)
            }
            _ => Ok(()),
        }
    }

    /// The lookup keys of the `CKA_ID`s `objects` give a public or private key (those
    /// `check_import_pair_names` judges), and of none an object keeps (`before`): for
    /// the transaction that writes them to read what holds those ids then
    /// (`pair_names_clash`).
    pub(in crate::token) fn pair_name_keys(
        objects: &[&Object],
        before: Option<&Object>,
    ) -> Vec<Vec<u8>> {
        objects
            .iter()
            .filter(|o| matches!(o.class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY))
            .filter_map(|o| o.bytes(CKA_ID))
            .filter(|id| !id.is_empty() && before.is_none_or(|b| b.bytes(CKA_ID) != Some(*id)))
            .map(|id| crate::object::index::lookup_key(CKA_ID, id))
            .collect()
    }

    /// `check_import_pair_names`' rule on the records a writing transaction read under
    /// `pair_name_keys`: whether one of `objects` would take the id of a pair half the
    /// token holds now, or be a pair half under the id of a key other than a pair's.
    /// The check before the transaction (`id_held`) read an earlier token: an object
    /// made meanwhile, in another thread or process, is seen only here.
    pub(in crate::token) fn pair_names_clash(loaded: &Loaded, objects: &[&Object]) -> bool {
        let held: Vec<Object> = loaded
            .objects
            .iter()
            .filter_map(|r| Object::from_record(r).ok())
            .collect();
        objects.iter().any(|o| {
            let Some(id) = o.bytes(CKA_ID).filter(|id| !id.is_empty()) else {
                return false;
            };
            if !matches!(o.class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) {
                return false;
            }
            held.iter()
                .filter(|h| h.uid != o.uid && h.bytes(CKA_ID) == Some(id))
                .any(|h| {
                    if o.has(IMPORT_TARGET) {
                        !h.has(IMPORT_TARGET) && matches!(h.class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY)
                    } else {
                        h.has(IMPORT_TARGET)
                    }
                })
        })
    }

    /// Whether an object with `CKA_ID` `id`, cached or stored, is a half of an import
    /// wrapping pair (`pair`), or else a public or private key that is not one. Reads
    /// the token as it is now (another process's objects count, an expired pair is
    /// swept first), and asks the store only when the cache cannot answer.
    pub(in crate::token) fn id_held(&self, id: &[u8], pair: bool) -> Result<bool> {
        self.refresh()?;
        let key = crate::object::index::lookup_key(CKA_ID, id);
        if !self.objects.read().is_resolved(&key) {
            let uids = self.store.lookup(&key)?;
            if !uids.is_empty() {
                self.load_uids(&uids)?;
            }
        }
        let table = self.objects.read();
        let wanted = [(CKA_ID, Value::Bytes(id.to_vec()))];
        let held = table
            .candidates(&wanted)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|h| table.get(h))
            .filter(|e| e.object.bytes(CKA_ID) == Some(id))
            .any(|e| {
                let o = &e.object;
                if pair {
                    o.has(IMPORT_TARGET)
                } else {
                    !o.has(IMPORT_TARGET) && matches!(o.class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY)
                }
            });
        Ok(held)
    }

    /// `ExpiredImportToken` when `template` carries an authentic import token that has
    /// expired (its wrapping key is gone, purged); `otherwise` else.
    pub(in crate::token) fn expired_token_or(
        &self,
        template: &[RawAttribute],
        otherwise: Error,
    ) -> Error {
        let token = template::parse(template).ok().and_then(|given| {
            given
                .get(&IMPORT_TOKEN)
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
        });
        let (Some(token), Ok(mac_key)) = (token, self.kms_secret(IMPORT_TOKEN_MAC_LABEL)) else {
            return otherwise;
        };
        match ImportToken::open(&token, &mac_key, self.now()) {
            Err(KmsError::ExpiredImportToken) => kms(KmsError::ExpiredImportToken),
            _ => otherwise,
        }
    }

    /// ImportKeyMaterial: `C_UnwrapKey` with an import wrapping key. A refusal by the
    /// key model is recorded in the audit trail with the material the key is bound to,
    /// never an identifier of the material offered: a refusal of material that does
    /// not unwrap and one of other material must read the same (the implicit rejection
    /// of PKCS#1 v1.5, below), and the offered material's identifier would tell them
    /// apart.
    pub(in crate::token) fn import_material(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        wrapping: &Object,
        wrapped: &[u8],
        template: &[RawAttribute],
    ) -> Result<ObjectHandle> {
        // The token the refusal below would be of.
        let judged_in = self.view_epoch();
        let result = self.import_decided(caller, mech, wrapping, wrapped, template);
        if let Err(Error::Kms(e)) = &result {
            // The refusal was decided on the key's record as the store held it then,
            // which may be newer than this process's cache: another process's import
            // that won the race bound the key (review 19d: the loser's event named no
            // material). The cache catches up first; failing that, it is what is named.
            if let Err(caught_up) = self.sync() {
                log::warn!(
                    "token {}: could not read the store before recording a refused import: \
                     {caught_up}",
                    self.serial
                );
            }
            let target = wrapping.bytes(IMPORT_TARGET).unwrap_or(&[]);
            let bound = KeyId::from_bytes(target)
                .ok()
                .and_then(|id| self.import_target(&id).ok())
                .and_then(|(_, main)| main.bytes(MATERIAL_FINGERPRINT).map(<[u8]>::to_vec));
            self.record_refusal(
                self.event(Operation::ImportKeyMaterial)
                    .key(target)
                    .material(bound.as_deref())
                    .refused(e),
                &[Some(judged_in)],
            );
        }
        result
    }

    fn import_decided(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        wrapping: &Object,
        wrapped: &[u8],
        template: &[RawAttribute],
    ) -> Result<ObjectHandle> {
        let given = template::parse(template)?;
        // The wrapping key carries its own token, so a template of standard attributes
        // only (pkcs11-tool, python-pkcs11, Java) imports too; a token the template names
        // must be that one.
        let own = wrapping.bytes(IMPORT_TOKEN);
        let token_bytes = match (given.get(&IMPORT_TOKEN).and_then(Value::as_bytes), own) {
            (Some(named), Some(own)) if named != own => {
                return Err(kms(KmsError::InvalidImportToken))
            }
            (Some(named), _) => named,
            (None, Some(own)) => own,
            (None, None) => return Err(Error::TemplateIncomplete),
        };
        let now = self.now();
        let mac_key = self.kms_secret(IMPORT_TOKEN_MAC_LABEL)?;
        let token = ImportToken::open(token_bytes, &mac_key, now).map_err(kms)?;
        // The token goes with its own wrapping key and its own target only.
        let target_of_key = wrapping.bytes(IMPORT_TARGET).unwrap_or(&[]);
        if token.wrapping_key != wrapping.uid || token.key_id.as_str().as_bytes() != target_of_key {
            return Err(kms(KmsError::InvalidImportToken));
        }
        if let Some(named) = given.get(&KEY_ID).and_then(Value::as_bytes) {
            if named != target_of_key {
                return Err(kms(KmsError::InvalidImportToken));
            }
        }
        if mech.kind != mechanism_of(token.algorithm) {
            return Err(Error::MechanismInvalid);
        }
        if let Some(hash) = shape::oaep_hash(token.algorithm) {
            let named = match &mech.param {
                Param::Oaep(p) => p.hash,
                Param::RsaAesKeyWrap { oaep, .. } => oaep.hash,
                _ => return Err(Error::MechanismParamInvalid),
            };
            if named != hash {
                return Err(Error::MechanismParamInvalid);
            }
        }
        let expiry = material_expiry(&given)?;
        if expiry != 0 && (expiry as i64) <= now {
            return Err(kms(KmsError::InvalidParameter(
                "KeyMaterialExpireUnix is in the past",
            )));
        }
        let (objects, main) = self.import_target(&token.key_id)?;
        // The import binds material to the key's records and, for a key pair, makes its
        // public half: a change of token objects, which a read-only session may not make
        // (PKCS#11 3.0 §5.6), as for the key's other state changes.
        if objects.iter().any(|(_, owner, _)| *owner == Owner::Token) && !caller.rw {
            return Err(Error::SessionReadOnly);
        }
        let spec = main
            .ulong(KEY_SPEC)
            .and_then(KeySpec::from_code)
            .ok_or(kms(KmsError::NotFound))?;
        fits_target(&given, &main, spec)?;

        self.authorise_import_use(wrapping, mech.kind)?;
        let key = wrapping.key(&self.serial, self.master().as_deref())?;
        let as_material = |e| match e {
            Error::WrappedKeyInvalid | Error::WrappedKeyLenRange | Error::EncryptedDataInvalid => {
                kms(KmsError::InvalidKeyMaterial)
            }
            e => e,
        };
        // RSAES_PKCS1_V1_5: implicit rejection with a validity flag (see below).
        let (material, valid) = match (token.algorithm, &key.material, spec.symmetric_len()) {
            (WrappingAlgorithm::RsaesPkcs1V15, Material::RsaPrivate(rsa), Some(len)) => rsa
                .unwrap_pkcs1_flagged(wrapped, crate::crypto::rsa::KeyLen::Exact(len))
                .map_err(as_material)?,
            _ => {
                let m = find_mechanism(mech.kind)?;
                let material = m
                    .unwrap(
                        &mech.param,
                        &key,
                        wrapped,
                        spec.symmetric_len()
                            .map_or(WrappedLen::Encoded, WrappedLen::Exact),
                    )
                    .map_err(as_material)?;
                (material, subtle::Choice::from(1))
            }
        };
        let imported = imported_values(spec, &material).map_err(kms)?;
        let (primary, exponent) = &imported.canonical;
        let fingerprint = self.fingerprint(spec, primary, exponent.as_deref())?;
        let same = material::check_same(main.bytes(MATERIAL_FINGERPRINT), &fingerprint);
        // A PKCS#1 v1.5 block with bad padding or the wrong length went through the same
        // steps as real material (on a pseudo-random key); only here is it refused, with
        // the same answer as material that is not the key's.
        if !bool::from(valid) {
            return Err(kms(KmsError::InvalidKeyMaterial));
        }
        same.map_err(kms)?;

        // Checked above on the cached objects, to refuse early; decided below, once and
        // for all, on the key's current records inside the store transaction, so of
        // concurrent imports of different material exactly one binds.
        let main_handle = objects
            .iter()
            .find(|(_, _, o)| o.uid == main.uid)
            .map(|(h, _, _)| *h)
            .ok_or(kms(KmsError::NotFound))?;
        let request = decide::ImportRequest {
            fingerprint,
            expiry: expiry as i64,
            token_expiry: token.expires_at,
        };
        KeyModel::new(&self.records_for(Some(caller.session))).import_material(
            &token.key_id,
            &request,
            &Arc::new(imported),
        )?;
        if expiry != 0 {
            self.objects.write().note_deadline(expiry as i64);
        }
        Ok(main_handle)
    }

    /// The public object of an asymmetric key imported for the first time.
    pub(super) fn public_half(
        &self,
        private: &Object,
        imported: &Imported,
        common: Vec<(AttrType, Value)>,
    ) -> Result<Object> {
        let key_type = private
            .key_type
            .ok_or(Error::Internal("key without type"))?;
        let mut values = common;
        values.extend(imported.public.iter().cloned());
        for ty in [KEY_ID, ORIGIN, KEY_SPEC, KEY_USAGE] {
            if let Some(v) = private.value(ty) {
                values.push((ty, v.clone()));
            }
        }
        for ty in [CKA_LABEL, CKA_ID, CKA_TOKEN] {
            if let Some(v) = private.value(ty) {
                values.push((ty, v.clone()));
            }
        }
        values.push((CKA_PRIVATE, Value::Bool(false)));
        template::build_key(CKO_PUBLIC_KEY, key_type, &[], values, Provenance::Unwrapped)
    }
}

/// The standard attributes of an unwrap template that say what the unwrapped key is must
/// describe the import's target (`CKR_TEMPLATE_INCONSISTENT` else); the others describe
/// a new object, which an import does not make, and are ignored (docs/key-model.md).
/// GetParametersForImport's rule (`model::check_import_parameters`) on the key whose
/// main object is `main`, for wrapping algorithm `alg`.
fn check_import_parameters_on(main: &Object, alg: WrappingAlgorithm) -> Result<()> {
    let origin = origin_of(main).ok_or(kms(KmsError::UnsupportedOrigin))?;
    let spec = main.ulong(KEY_SPEC).and_then(KeySpec::from_code);
    model::check_import_parameters(origin, state_of(main), spec, alg).map_err(kms)?;
    Ok(())
}

fn fits_target(given: &BTreeMap<AttrType, Value>, main: &Object, spec: KeySpec) -> Result<()> {
    let named = |ty| given.get(&ty).and_then(Value::as_ulong);
    let fits = named(CKA_CLASS).is_none_or(|c| c == main.class.get())
        && named(CKA_KEY_TYPE).is_none_or(|k| Some(k) == main.key_type.map(KeyType::get))
        && named(CKA_VALUE_LEN).is_none_or(|l| Some(l) == spec.symmetric_len().map(|n| n as u64));
    if fits {
        Ok(())
    } else {
        Err(Error::TemplateInconsistent)
    }
}

/// The material expiry (unix seconds, 0 never) of an import: `CKA_KMSHSM_MATERIAL_EXPIRY`,
/// or the day `CKA_END_DATE` names (expiring at the start of the next day, UTC); both
/// given must agree.
fn material_expiry(given: &BTreeMap<AttrType, Value>) -> Result<u64> {
    let vendor = given.get(&MATERIAL_EXPIRY).and_then(Value::as_ulong);
    let end = match given.get(&CKA_END_DATE).and_then(Value::as_bytes) {
        Some(date) => byok::end_date_expiry(date)
            .map_err(|_| Error::AttributeValueInvalid)?
            .map(|e| e as u64),
        None => None,
    };
    match (vendor, end) {
        (Some(v), Some(e)) if v != e => Err(Error::TemplateInconsistent),
        (v, e) => Ok(v.or(e).unwrap_or(0)),
    }
}

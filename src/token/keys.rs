//! Keys at work: handing a usable key to a mechanism after the usage checks, and the
//! key-making functions `C_GenerateKey`, `C_GenerateKeyPair`, `C_WrapKey` and
//! `C_UnwrapKey` (`C_DeriveKey` is `token::derive`), with the wrapping rules of PKCS#11 3.0 §4.9 and
//! §5.14 (`CKA_EXTRACTABLE`, `CKA_WRAP_WITH_TRUSTED`, wrap and unwrap templates).
//! This module must not do cryptography itself; mechanisms do.

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::objects::Caller;
use super::{LoggedIn, Token};
use crate::crypto::curve25519;
use crate::crypto::curve448;
use crate::crypto::ec::{self, Curve};
use crate::crypto::pkcs8::{self, KeyAlgorithm};
use crate::crypto::rsa::RsaComponents;
use crate::error::{Error, Result};
use crate::kms::key::Origin;
use crate::mechanism::{registry, KeyRequest, Mechanism, MechanismArg, Usage, WrappedLen};
use crate::object::attr::{AttrType, RawAttribute, Value};
use crate::object::key::Key;
use crate::object::policy::IMPORT_TARGET;
use crate::object::table::ObjectHandle;
use crate::object::template::{self, Provenance};
use crate::object::Object;
use crate::operation::{Grant, Judged};

pub(crate) fn mechanism(kind: MechType) -> Result<&'static dyn Mechanism> {
    registry::find(kind).ok_or_else(|| Error::MechanismInvalid)
}

fn key_request(template: &[RawAttribute]) -> Result<KeyRequest> {
    let attrs = template::parse(template)?;
    let ulong = |ty| attrs.get(&ty).and_then(Value::as_ulong);
    let bytes = |ty| attrs.get(&ty).and_then(Value::as_bytes).map(<[u8]>::to_vec);
    Ok(KeyRequest {
        value_len: ulong(CKA_VALUE_LEN),
        modulus_bits: ulong(CKA_MODULUS_BITS),
        public_exponent: bytes(CKA_PUBLIC_EXPONENT),
        ec_params: bytes(CKA_EC_PARAMS),
    })
}

/// The longest secret key an unwrap makes (`CKA_VALUE_LEN`): beyond any key a wrapping
/// mechanism here carries (an RSA-16384 block holds 2,037 bytes), as the derivations'
/// own bound (64 KiB).
const MAX_UNWRAPPED_LEN: usize = 64 * 1024;

/// An unknown or invisible handle, in the words of the function's role for it (a key,
/// a wrapping key...); any other failure of the look-up (a record refused as tampered,
/// a store error) passes unchanged.
pub(super) fn handle_error(invalid: Error) -> impl FnOnce(Error) -> Error {
    move |e| match e {
        Error::ObjectHandleInvalid => invalid,
        e => e,
    }
}

/// The template without the attributes a key-pair generation consumed.
fn without(template: &[RawAttribute], consumed: &[AttrType]) -> Vec<RawAttribute> {
    template
        .iter()
        .filter(|a| !consumed.contains(&a.ty))
        .cloned()
        .collect()
}

impl Token {
    /// What `make` makes of the key behind `handle` (an operation, usually), if the key
    /// may be used for `usage` with `mechanism`, and the grant an operation keeps to have
    /// each later step judged again. The key is lent to `make`, which clones it if it
    /// keeps it: its reference is counted once, not once more for the call.
    pub fn key_for<R>(
        &self,
        handle: ObjectHandle,
        usage: Usage,
        mechanism: MechType,
        make: impl FnOnce(&Arc<Key>) -> Result<R>,
    ) -> Result<(R, Grant)> {
        let (entry, generation) = self
            .entry_with_generation(handle)
            .map_err(handle_error(Error::KeyHandleInvalid))?;
        let object = entry.object;
        let made = make(self.usable_key(&object, usage, mechanism)?)?;
        let attrs = object.use_attrs();
        // §4.9 CKA_ALWAYS_AUTHENTICATE: the PIN again for each use, sign or decrypt.
        let awaiting_login =
            attrs.always_authenticate && matches!(usage, Usage::Sign | Usage::Decrypt);
        let (expiry, private) = (attrs.material_expiry, attrs.private);
        let grant = Grant {
            key: handle,
            generation,
            expiry,
            private,
            // The version judged, handed over rather than counted twice.
            judged: object,
            usage,
            mechanism,
            awaiting_login,
        };
        Ok((made, grant))
    }

    /// `key_for` for an init of the kind `last` judged (`usage`, `mechanism`, the key
    /// `handle`), answered from that judgement when nothing it was made on can have
    /// changed: the store's changes and the sweep are taken in first (`refresh`, as
    /// `key_for` does), and then the table must be of the generation judged, with the
    /// object version judged still alive. That version's attributes, KMS state and
    /// policy are then what was judged, and a login or logout since would have written
    /// the table; what remains is time, judged again here (the material expiry), as for
    /// every later step of an operation (`recheck_use`). `None`: judge afresh with
    /// `key_for` (a key that needs its context-specific login for each operation always
    /// is).
    pub fn key_again<R>(
        &self,
        last: &Judged,
        handle: ObjectHandle,
        usage: Usage,
        mechanism: MechType,
        make: impl FnOnce(&Arc<Key>) -> Result<R>,
    ) -> Result<Option<(R, Grant)>> {
        if last.key != handle || last.usage != usage || last.mechanism != mechanism {
            return Ok(None);
        }
        self.refresh()?;
        if self.objects.generation() != last.generation {
            return Ok(None);
        }
        let Some(object) = last.object.upgrade() else {
            return Ok(None);
        };
        let attrs = *object.use_attrs();
        let Some(key) = object.parsed_key_ref() else {
            return Ok(None);
        };
        // A logout writes the table only after it has ended the login: between the two,
        // the login is what tells (as `recheck_use` asks it).
        if attrs.always_authenticate || (attrs.private && self.logged_in() != LoggedIn::User) {
            return Ok(None);
        }
        self.check_expiry(attrs.material_expiry)?;
        let made = make(key)?;
        let grant = Grant {
            key: handle,
            generation: last.generation,
            expiry: attrs.material_expiry,
            private: attrs.private,
            judged: object,
            usage,
            mechanism,
            awaiting_login: false,
        };
        Ok(Some((made, grant)))
    }

    /// The parsed key of `object`, after `authorise_use` allowed `usage` with
    /// `mechanism`, lent for as long as `object` (`Object::key_ref`).
    pub(super) fn usable_key<'o>(
        &self,
        object: &'o Object,
        usage: Usage,
        mechanism: MechType,
    ) -> Result<&'o Arc<Key>> {
        self.authorise_use(object, usage, mechanism)?;
        // §4.9 CKA_ALWAYS_AUTHENTICATE: the PIN for each use. An unwrap decrypts with the
        // key, and a derivation (ECDH) is its private operation too, but neither call has
        // an Init for the context-specific login to follow: refused, as the operation
        // would be without that login (an unwrap into a readable key was a decryption
        // that needed no PIN).
        if matches!(usage, Usage::Unwrap | Usage::Derive) && object.use_attrs().always_authenticate
        {
            return Err(Error::UserNotLoggedIn);
        }
        // Parsed already: the master key (and its lock) is not needed.
        if let Some(key) = object.parsed_key_ref() {
            return Ok(key);
        }
        // The first use opens the sealed secrets and parses them on this stack.
        crate::secret_use::note();
        object.key_ref(&self.serial, self.master().as_deref())
    }

    pub fn generate_key(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        template: &[RawAttribute],
    ) -> Result<ObjectHandle> {
        let m = mechanism(mech.kind)?;
        let (key_type, values) = m.generate_key(&mech.param, &key_request(template)?)?;
        let object = template::build_key(
            CKO_SECRET_KEY,
            key_type,
            template,
            values,
            Provenance::Generated(mech.kind),
        )?;
        let (mut objects, made_in) = self.with_kms_identity(vec![object], Origin::Kms, None)?;
        self.insert_in(
            caller,
            objects
                .pop()
                .ok_or(Error::Internal("identity lost the key"))?,
            &[made_in],
        )
    }

    pub fn generate_key_pair(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        public_template: &[RawAttribute],
        private_template: &[RawAttribute],
    ) -> Result<(ObjectHandle, ObjectHandle)> {
        if template::parse(private_template)?.contains_key(&IMPORT_TARGET) {
            return self.generate_import_parameters(
                caller,
                mech,
                public_template,
                private_template,
            );
        }
        // The two halves are one KMS key, decided together: both in the token, or both
        // in the session. A token half beside a session half would be the key as other
        // processes see it (and change: DisableKey, destruction), while the half this
        // process uses knows nothing of it (pkcs11test accepts the refusal). An import
        // pair, above, has its halves placed by the module.
        let in_token = |t: &[RawAttribute]| -> Result<bool> {
            Ok(template::parse(t)?
                .get(&CKA_TOKEN)
                .and_then(Value::as_bool)
                .unwrap_or(false))
        };
        if in_token(public_template)? != in_token(private_template)? {
            return Err(Error::TemplateInconsistent);
        }
        let m = mechanism(mech.kind)?;
        let (key_type, (public, private)) =
            m.generate_key_pair(&mech.param, &key_request(public_template)?)?;
        let provenance = Provenance::Generated(mech.kind);
        let public_template = without(public_template, &[CKA_PUBLIC_EXPONENT]);
        let public = template::build_key(
            CKO_PUBLIC_KEY,
            key_type,
            &public_template,
            public,
            provenance,
        )?;
        let private = template::build_key(
            CKO_PRIVATE_KEY,
            key_type,
            private_template,
            private,
            provenance,
        )?;
        let (pair, made_in) = self.with_kms_identity(vec![public, private], Origin::Kms, None)?;
        let handles = self.insert_all_in(caller, pair, &[made_in])?;
        match handles[..] {
            [p, q] => Ok((p, q)),
            _ => Err(Error::Internal("key pair insert")),
        }
    }

    /// The encoded material `C_WrapKey` encrypts: a secret key's value, or a private
    /// key as PKCS#8.
    fn wrappable_material(&self, object: &Object) -> Result<Zeroizing<Vec<u8>>> {
        let secrets = object.open_secrets(&self.serial, self.master().as_deref())?;
        let get = |ty: AttrType| secrets.get(&ty).map(|v| v.to_vec()).unwrap_or_default();
        let plain = |ty: AttrType| {
            object
                .value(ty)
                .and_then(Value::as_bytes)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        };
        match (object.class, object.key_type) {
            (CKO_SECRET_KEY, _) => Ok(Zeroizing::new(get(CKA_VALUE))),
            (CKO_PRIVATE_KEY, Some(CKK_RSA)) => {
                let c = RsaComponents {
                    n: plain(CKA_MODULUS),
                    e: plain(CKA_PUBLIC_EXPONENT),
                    d: Zeroizing::new(get(CKA_PRIVATE_EXPONENT)),
                    p: Zeroizing::new(get(CKA_PRIME_1)),
                    q: Zeroizing::new(get(CKA_PRIME_2)),
                    dp: Zeroizing::new(get(CKA_EXPONENT_1)),
                    dq: Zeroizing::new(get(CKA_EXPONENT_2)),
                    qinv: Zeroizing::new(get(CKA_COEFFICIENT)),
                };
                c.to_pkcs8()
            }
            (CKO_PRIVATE_KEY, Some(CKK_EC)) => {
                let curve = Curve::from_oid(&plain(CKA_EC_PARAMS))?;
                let sec1 = ec::sec1_der(curve, &Zeroizing::new(get(CKA_VALUE)))?;
                let alg = KeyAlgorithm::Ec {
                    curve_oid: curve.oid().to_vec(),
                };
                pkcs8::encode_private_key_info(&alg, &sec1)
            }
            // RFC 8410: the seed or scalar (32 bytes, 57 for Ed448, 56 for X448) as a
            // CurvePrivateKey.
            (CKO_PRIVATE_KEY, Some(key_type @ (CKK_EC_EDWARDS | CKK_EC_MONTGOMERY))) => {
                let alg = match key_type {
                    CKK_EC_EDWARDS if curve448::is_ed448_params(&plain(CKA_EC_PARAMS)) => {
                        KeyAlgorithm::Ed448
                    }
                    CKK_EC_EDWARDS => KeyAlgorithm::Ed25519,
                    _ if curve448::is_x448_params(&plain(CKA_EC_PARAMS)) => KeyAlgorithm::X448,
                    _ => KeyAlgorithm::X25519,
                };
                let inner = pkcs8::curve_private_key(&Zeroizing::new(get(CKA_VALUE)))?;
                pkcs8::encode_private_key_info(&alg, &inner)
            }
            _ => Err(Error::KeyNotWrappable),
        }
    }

    pub fn wrap_key(
        &self,
        mech: &MechanismArg,
        wrapping: ObjectHandle,
        key: ObjectHandle,
    ) -> Result<Vec<u8>> {
        let m = mechanism(mech.kind)?;
        let wrapping_object = self
            .entry(wrapping)
            .map_err(handle_error(Error::WrappingKeyHandleInvalid))?
            .object;
        let wrapping_key = self
            .usable_key(&wrapping_object, Usage::Wrap, mech.kind)
            .map_err(|e| match e {
                Error::KeyTypeInconsistent => Error::WrappingKeyTypeInconsistent,
                e => e,
            })?;
        self.authorise_wrapping_key(&wrapping_object)?;
        let target = self
            .entry(key)
            .map_err(handle_error(Error::KeyHandleInvalid))?
            .object;
        self.authorise_wrap_target(&target, &wrapping_object)?;
        let material = self.wrappable_material(&target)?;
        m.wrap(&mech.param, wrapping_key, &material)
    }

    pub fn unwrap_key(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        unwrapping: ObjectHandle,
        wrapped: &[u8],
        template: &[RawAttribute],
    ) -> Result<ObjectHandle> {
        let m = mechanism(mech.kind)?;
        // The unwrapping key with the epoch of its token: the key it unwraps goes into
        // that token only.
        let (unwrapping_object, unwrapping_epoch) = match self.entry_with_epoch(unwrapping) {
            Ok((entry, epoch)) => (entry.object, epoch),
            // Expired import parameters are purged; an import naming an expired token
            // still hears that its token expired (kms-docs ExpiredImportToken).
            Err(Error::ObjectHandleInvalid) => {
                return Err(self.expired_token_or(template, Error::UnwrappingKeyHandleInvalid))
            }
            Err(e) => return Err(e),
        };
        if unwrapping_object.has(IMPORT_TARGET) {
            return self.import_material(caller, mech, &unwrapping_object, wrapped, template);
        }
        let key = self
            .usable_key(&unwrapping_object, Usage::Unwrap, mech.kind)
            .map_err(|e| match e {
                Error::KeyTypeInconsistent => Error::UnwrappingKeyTypeInconsistent,
                e => e,
            })?;
        let forced = unwrapping_object.value(CKA_UNWRAP_TEMPLATE);
        // A key whose owner made everything it unwraps secret takes no unwrap without
        // integrity: the caller could alter a blob and compare what two unwraps of it
        // give, and learn a secret key wrapped under this one (docs/security.md,
        // "Unauthenticated unwraps"). Without such a template the caller may unwrap any
        // blob as a readable key anyway.
        if m.unwrap_unauthenticated() && template_guards(forced) {
            return Err(Error::MechanismInvalid);
        }
        let template = with_forced(template, forced)?;
        let given = template::parse(&template)?;
        let class = given
            .get(&CKA_CLASS)
            .and_then(Value::as_ulong)
            .map(ObjectClass::new)
            .ok_or(Error::TemplateIncomplete)?;
        let key_type = given
            .get(&CKA_KEY_TYPE)
            .and_then(Value::as_ulong)
            .map(KeyType::new);
        // No wrapped secret key is longer than a wrapping can carry: a larger length
        // asked of an unwrap (RSA's implicit rejection makes a substitute of that
        // length) would have the module allocate and fill it.
        let value_len = given
            .get(&CKA_VALUE_LEN)
            .and_then(Value::as_ulong)
            .map(|l| {
                usize::try_from(l)
                    .ok()
                    .filter(|l| *l <= MAX_UNWRAPPED_LEN)
                    .ok_or(Error::TemplateInconsistent)
            })
            .transpose()?;
        let expected = match (class, key_type, value_len) {
            (CKO_SECRET_KEY, _, Some(len)) => WrappedLen::Exact(len),
            (CKO_SECRET_KEY, Some(crate::object::key::CKK_SM4), None) => WrappedLen::Exact(16),
            (CKO_SECRET_KEY, Some(CKK_AES), None) => WrappedLen::OneOf(&[16, 24, 32]),
            (CKO_SECRET_KEY, Some(CKK_DES), None) => WrappedLen::Exact(8),
            (CKO_SECRET_KEY, Some(CKK_DES2), None) => WrappedLen::Exact(16),
            (CKO_SECRET_KEY, Some(CKK_DES3), None) => WrappedLen::Exact(24),
            (CKO_SECRET_KEY, _, None) => WrappedLen::Any,
            _ => WrappedLen::Encoded,
        };
        let material = m.unwrap(&mech.param, key, wrapped, expected)?;
        let (key_type, values) = match class {
            CKO_SECRET_KEY => (
                key_type.ok_or(Error::TemplateIncomplete)?,
                vec![(CKA_VALUE, Value::Bytes(material.to_vec()))],
            ),
            CKO_PRIVATE_KEY => private_key_values(&material)?,
            _ => return Err(Error::TemplateInconsistent),
        };
        let object =
            template::build_key(class, key_type, &template, values, Provenance::Unwrapped)?;
        // A plain unwrap brings material from outside: a new EXTERNAL key, whose
        // fingerprint is made under the master key of the epoch `fingerprinted_in`.
        let (mut objects, fingerprinted_in) =
            self.with_kms_identity(vec![object], Origin::External, None)?;
        self.insert_in(
            caller,
            objects
                .pop()
                .ok_or(Error::Internal("identity lost the key"))?,
            &[Some(unwrapping_epoch), fingerprinted_in],
        )
    }

    /// The value `C_DigestKey` feeds to a digest of `mechanism`, once `authorise_digest`
    /// allowed it (docs/security.md, "C_DigestKey").
    pub fn digestible_value(
        &self,
        handle: ObjectHandle,
        mechanism: MechType,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let object = self
            .entry(handle)
            .map_err(handle_error(Error::KeyHandleInvalid))?
            .object;
        self.authorise_digest(&object, mechanism)?;
        let mut secrets = object.open_secrets(&self.serial, self.master().as_deref())?;
        secrets.remove(&CKA_VALUE).ok_or(Error::KeyIndigestible)
    }
}

/// The caller's template with a key's unwrap or derive template applied (§4.9: "as if
/// the object has already been created"): the forced attributes are added, and a caller
/// value that differs from one of them is inconsistent.
pub(super) fn with_forced(
    template: &[RawAttribute],
    forced: Option<&Value>,
) -> Result<Vec<RawAttribute>> {
    let mut template = template.to_vec();
    let Some(Value::Template(forced)) = forced else {
        return Ok(template);
    };
    let given = template::parse(&template)?;
    for (ty, v) in forced {
        match given.get(ty) {
            Some(existing) if existing != v => return Err(Error::TemplateInconsistent),
            Some(_) => {}
            None => template.push(crate::object::attr::RawAttribute {
                ty: *ty,
                value: crate::object::attr::RawValue::Bytes(Zeroizing::new(v.to_native())),
            }),
        }
    }
    Ok(template)
}

/// Whether an unwrap or derive template keeps every key made under it from the caller:
/// unextractable, or sensitive and wrapped only under trusted keys. A template that
/// makes keys sensitive alone does not: PKCS#11 lets a sensitive, extractable key be
/// wrapped under any key, the caller's own included, and unwrapped readable (review
/// 15d). Its owner means such keys never to be seen.
pub(super) fn template_guards(forced: Option<&Value>) -> bool {
    let Some(Value::Template(forced)) = forced else {
        return false;
    };
    let says = |ty: AttrType, value: bool| {
        forced
            .iter()
            .any(|(t, v)| *t == ty && v.as_bool() == Some(value))
    };
    says(CKA_EXTRACTABLE, false) || (says(CKA_SENSITIVE, true) && says(CKA_WRAP_WITH_TRUSTED, true))
}

/// The attributes of a private key received as PKCS#8 (RSA, EC, Ed25519, X25519, Ed448 or
/// X448).
fn private_key_values(der: &[u8]) -> Result<(KeyType, Vec<(AttrType, Value)>)> {
    let info = pkcs8::decode_private_key_info(der)?;
    let bytes = |ty: AttrType, v: &[u8]| (ty, Value::Bytes(v.to_vec()));
    match info.algorithm {
        KeyAlgorithm::Rsa => {
            let c = RsaComponents::from_pkcs1_der(info.private_key)?;
            // Check the components fit together before they become an object.
            crate::crypto::rsa::RsaPrivateKey::new(&c).map_err(|_| Error::WrappedKeyInvalid)?;
            Ok((CKK_RSA, crate::mechanism::rsa_private_key_attributes(&c)))
        }
        KeyAlgorithm::Ec { curve_oid } => {
            let curve = Curve::from_oid(&curve_oid).map_err(|_| Error::WrappedKeyInvalid)?;
            let d = ec::scalar_from_sec1(info.private_key)?;
            crate::crypto::ec::EcPrivateKey::new(curve, &d)
                .map_err(|_| Error::WrappedKeyInvalid)?;
            Ok((
                CKK_EC,
                vec![bytes(CKA_EC_PARAMS, curve.oid()), bytes(CKA_VALUE, &d)],
            ))
        }
        KeyAlgorithm::Ed25519 | KeyAlgorithm::X25519 | KeyAlgorithm::Ed448 | KeyAlgorithm::X448 => {
            let key = pkcs8::curve_key_of(&info.algorithm, info.private_key)?;
            let (key_type, oid) = match info.algorithm {
                KeyAlgorithm::Ed25519 => (CKK_EC_EDWARDS, curve25519::OID_ED25519),
                KeyAlgorithm::Ed448 => (CKK_EC_EDWARDS, curve448::OID_ED448),
                KeyAlgorithm::X448 => (CKK_EC_MONTGOMERY, curve448::OID_X448),
                _ => (CKK_EC_MONTGOMERY, curve25519::OID_X25519),
            };
            Ok((
                key_type,
                vec![bytes(CKA_EC_PARAMS, oid), bytes(CKA_VALUE, key)],
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::attr::RawValue;

    fn boolean(ty: AttrType, v: bool) -> RawAttribute {
        RawAttribute {
            ty,
            value: RawValue::Bytes(Zeroizing::new(vec![u8::from(v)])),
        }
    }

    fn derive_template() -> Value {
        Value::Template(vec![
            (CKA_SENSITIVE, Value::Bool(true)),
            (CKA_EXTRACTABLE, Value::Bool(false)),
        ])
    }

    #[test]
    fn a_derive_template_adds_its_attributes_to_the_callers() {
        let merged = with_forced(&[boolean(CKA_ENCRYPT, true)], Some(&derive_template())).unwrap();
        let parsed = template::parse(&merged).unwrap();
        assert_eq!(parsed.get(&CKA_ENCRYPT), Some(&Value::Bool(true)));
        assert_eq!(parsed.get(&CKA_SENSITIVE), Some(&Value::Bool(true)));
        assert_eq!(parsed.get(&CKA_EXTRACTABLE), Some(&Value::Bool(false)));
    }

    #[test]
    fn a_caller_value_against_the_derive_template_is_inconsistent() {
        let clash = with_forced(&[boolean(CKA_EXTRACTABLE, true)], Some(&derive_template()));
        assert!(matches!(clash, Err(Error::TemplateInconsistent)));
        // The same value is no clash.
        assert!(with_forced(&[boolean(CKA_SENSITIVE, true)], Some(&derive_template())).is_ok());
        // No template: the caller's, unchanged.
        assert_eq!(
            with_forced(&[boolean(CKA_SIGN, true)], None).unwrap().len(),
            1
        );
    }
}

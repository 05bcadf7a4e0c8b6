//! `C_DeriveKey`: the keys (or, for `CKM_HKDF_DATA`, the data object) a derivation makes.
//!
//! Every key the derivation reads is authorised for `Usage::Derive` through
//! `authority.rs`: the base key, and the other key a parameter names (the second key of
//! `CKM_CONCATENATE_BASE_AND_KEY`, an HKDF salt key). The templates get the
//! `CKA_DERIVE_TEMPLATE` of each of those keys, then the mechanism's sensitivity rule
//! (`DeriveRule`) and the module's rule that a derived key has no usage its template
//! does not ask for; a data object (`CKM_HKDF_DATA`) is made only where no such template
//! binds anything a data object lacks. All keys of one call (SP 800-108's additional
//! keys) are made and stored together, or none.
//! This module must not do cryptography itself; mechanisms do.

use crate::ck::*;
use zeroize::Zeroizing;

use super::keys::{handle_error, mechanism, template_guards, with_forced};
use super::objects::Caller;
use super::Token;
use crate::error::{Error, Result};
use crate::kms::key::Origin;
use crate::mechanism::{DeriveInput, DeriveRule, MechanismArg, Usage};
use crate::object::attr::{AttrType, RawAttribute, RawValue, Value, MATERIAL_EXPIRY, ORIGIN};
use crate::object::policy::{self, KEY_USES};
use crate::object::table::ObjectHandle;
use crate::object::template::{self, Provenance};
use crate::object::Object;

/// The shortest key a source's guarding `CKA_DERIVE_TEMPLATE` lets be derived: a shorter
/// one is found by trying its values, and with it, one byte at a time, every longer key
/// the same derivation gives (ECDH's `CKD_NULL`, HKDF and the hash KDFs make a short key
/// the prefix of a long one; review 15a).
pub(crate) const MIN_GUARDED_DERIVED_LEN: usize = 16;

/// Whether the base key (the first source) and the other key (the second, if any) keep
/// their value from the caller (sensitive, or unextractable: `Object::guards_secrets`;
/// `DeriveInput::guarded`).
fn guarded(sources: &[&Object]) -> (bool, bool) {
    let guarded = |o: Option<&&Object>| o.is_some_and(|o| o.guards_secrets());
    (guarded(sources.first()), guarded(sources.get(1)))
}

impl Token {
    pub fn derive_key(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        base: ObjectHandle,
        template: &[RawAttribute],
    ) -> Result<ObjectHandle> {
        Ok(self.derive_keys(caller, mech, base, template, &[])?.0)
    }

    /// `C_DeriveKey`, with the templates of the additional keys an SP 800-108 parameter
    /// asks for (`CK_DERIVED_KEY`): the key of `template` and one per additional
    /// template, all made or none. Every key the derivation reads (the base key, and the
    /// other key a parameter names) is authorised for `Usage::Derive` with this mechanism.
    pub fn derive_keys(
        &self,
        caller: Caller,
        mech: &MechanismArg,
        base: ObjectHandle,
        template: &[RawAttribute],
        additional: &[Vec<RawAttribute>],
    ) -> Result<(ObjectHandle, Vec<ObjectHandle>)> {
        let m = mechanism(mech.kind)?;
        // Each source key with the epoch of its token: what is derived from them goes
        // into that token only (`commit_decided`, `insert_session_object`).
        let (base_entry, base_epoch) = self
            .entry_with_epoch(base)
            .map_err(handle_error(Error::KeyHandleInvalid))?;
        let base_object = base_entry.object;
        let key = self.usable_key(&base_object, Usage::Derive, mech.kind)?;
        let (other_object, other_epoch) = match mech.param.other_key() {
            Some(h) => {
                let (entry, epoch) = self
                    .entry_with_epoch(h)
                    .map_err(handle_error(Error::KeyHandleInvalid))?;
                (Some(entry.object), Some(epoch))
            }
            None => (None, None),
        };
        let sources_in = [Some(base_epoch), other_epoch];
        let other_key = match &other_object {
            Some(o) => Some(&**self.usable_key(o, Usage::Derive, mech.kind)?),
            None => None,
        };
        let sources: Vec<&Object> = std::iter::once(&*base_object)
            .chain(other_object.as_deref())
            .collect();
        // A key whose material expires derives nothing: what it derived would outlive the
        // expiry (review 17b: a bit-for-bit copy by CKM_EXTRACT_KEY_FROM_KEY, a key of
        // its own without an expiry, kept decrypting after the material had expired).
        if sources
            .iter()
            .any(|o| o.ulong(MATERIAL_EXPIRY).is_some_and(|at| at != 0))
        {
            return Err(Error::KeyFunctionNotPermitted);
        }
        if m.derive_class() == CKO_DATA {
            if !additional.is_empty() {
                return Err(Error::MechanismParamInvalid);
            }
            let template = data_template(&forced_by(template, &sources)?, &sources)?;
            let (template, len) = take_value_len(template)?;
            let input = DeriveInput {
                other: other_key,
                lens: vec![len],
                guarded: guarded(&sources),
            };
            let mut secrets = m.derive_keys(&mech.param, key, &input)?;
            let value = secrets
                .pop()
                .ok_or(Error::Internal("a derivation made no value"))?;
            let module = vec![
                (CKA_CLASS, Value::Ulong(CKO_DATA.get())),
                (CKA_VALUE, Value::Bytes(value.to_vec())),
            ];
            let object = template::build(&template, Provenance::Supplied, module)?;
            return Ok((self.insert_in(caller, object, &sources_in)?, Vec::new()));
        }
        // A source whose derive template guards what is derived from it
        // (`template_guards`: unextractable, or sensitive and trusted-wrap only) binds it
        // further (docs/security.md, "What `CKA_DERIVE` gives
        // away"): no derivation puts its bits beside the caller's (concatenation, XOR,
        // extraction: a key extended by a guessed byte is compared with a longer one of
        // the same derivation), every key is at least MIN_GUARDED_DERIVED_LEN bytes, and
        // each carries the bound on as its own derive template.
        let bound = guarding_bound(&sources);
        if !bound.is_empty() && matches!(m.derive_rule(), DeriveRule::Exposes { .. }) {
            return Err(Error::MechanismInvalid);
        }
        let mut plans = Vec::with_capacity(1 + additional.len());
        for raw in std::iter::once(template).chain(additional.iter().map(Vec::as_slice)) {
            let mut tpl = derived_template(&forced_by(raw, &sources)?, m.derive_rule(), &sources)?;
            if !bound.is_empty() {
                tpl = with_inherited_bound(&tpl, &bound)?;
            }
            let given = template::parse(&tpl)?;
            // §2.43: without a key type, a generic secret.
            let key_type = given
                .get(&CKA_KEY_TYPE)
                .and_then(Value::as_ulong)
                .map_or(CKK_GENERIC_SECRET, KeyType::new);
            let len = given
                .get(&CKA_VALUE_LEN)
                .and_then(Value::as_ulong)
                .map(len_of)
                .transpose()?
                .or(fixed_len(key_type));
            plans.push((tpl, key_type, len));
        }
        let input = DeriveInput {
            other: other_key,
            lens: plans.iter().map(|(_, _, len)| *len).collect(),
            guarded: guarded(&sources),
        };
        let secrets = m.derive_keys(&mech.param, key, &input)?;
        if secrets.len() != plans.len() {
            return Err(Error::Internal(
                "a derivation made the wrong number of keys",
            ));
        }
        if !bound.is_empty() && secrets.iter().any(|s| s.len() < MIN_GUARDED_DERIVED_LEN) {
            return Err(Error::TemplateInconsistent);
        }
        // §2.43 (both keys), §2.42.8, §2.62: true only if true of every source.
        let provenance = Provenance::Derived {
            always_sensitive: sources
                .iter()
                .all(|o| o.bool_attr(CKA_ALWAYS_SENSITIVE) == Some(true)),
            never_extractable: sources
                .iter()
                .all(|o| o.bool_attr(CKA_NEVER_EXTRACTABLE) == Some(true)),
        };
        // Generated (Origin KMS) only if every source was generated and no caller can
        // know its value: a readable or extractable source lets the caller choose what
        // is derived (review 18a: a readable generated key XORed into chosen bytes).
        let origin = if sources.iter().all(|o| {
            o.ulong(ORIGIN).and_then(Origin::from_code) == Some(Origin::Kms)
                && o.bool_attr(CKA_ALWAYS_SENSITIVE) == Some(true)
                && o.bool_attr(CKA_NEVER_EXTRACTABLE) == Some(true)
        }) {
            Origin::Kms
        } else {
            Origin::External
        };
        let mut objects = Vec::with_capacity(plans.len());
        let mut made_ins = sources_in.to_vec();
        let mut policy = self.policy()?;
        for ((tpl, key_type, _), secret) in plans.iter().zip(secrets) {
            let values = vec![(CKA_VALUE, Value::Bytes(secret.to_vec()))];
            let object = template::build_key(CKO_SECRET_KEY, *key_type, tpl, values, provenance)?;
            if matches!(m.derive_rule(), DeriveRule::Exposes { .. }) {
                policy.judge_exposing_derivation(&sources, &object)?;
            }
            // Each derived key is a KMS key of its own, of the origin found above: one
            // derived from a key whose value its caller knows may hold bits the caller
            // chose (review 17d: a CKM_CONCATENATE_BASE_AND_DATA copy of the caller's own
            // bytes read as KMS).
            let (identified, made_in) = self.with_kms_identity(vec![object], origin, None)?;
            objects.extend(identified);
            made_ins.push(made_in);
        }
        let handles = self.insert_all_policed(caller, objects, &made_ins, policy)?;
        match handles.split_first() {
            Some((main, rest)) => Ok((*main, rest.to_vec())),
            None => Err(Error::Internal("a derivation inserted no key")),
        }
    }
}

/// `template` with the `CKA_DERIVE_TEMPLATE` of every source key applied: the base key's
/// and that of the other key a parameter names, whose value the derivation reads as much
/// as the base key's (§4.9: the template binds "any keys derived using this key"). A
/// template that contradicts one of them, or two of them that contradict each other, is
/// `TemplateInconsistent`.
fn forced_by(template: &[RawAttribute], sources: &[&Object]) -> Result<Vec<RawAttribute>> {
    let mut out = template.to_vec();
    for source in sources {
        out = with_forced(&out, source.value(CKA_DERIVE_TEMPLATE))?;
    }
    Ok(out)
}

/// The attributes the guarding `CKA_DERIVE_TEMPLATE`s of `sources` force (those that
/// keep derived keys from the caller: `template_guards`), together; empty
/// when no source has one. Two sources' templates that contradict each other were
/// refused before (`forced_by`).
fn guarding_bound(sources: &[&Object]) -> Vec<(AttrType, Value)> {
    let mut bound: Vec<(AttrType, Value)> = Vec::new();
    for source in sources {
        let forced = source.value(CKA_DERIVE_TEMPLATE);
        if let (true, Some(Value::Template(forced))) = (template_guards(forced), forced) {
            for (ty, v) in forced {
                if !bound.iter().any(|(t, _)| t == ty) {
                    bound.push((*ty, v.clone()));
                }
            }
        }
    }
    bound
}

/// A derived key's template with the sources' guarding derive template (`bound`, from
/// `guarding_bound`) as its own `CKA_DERIVE_TEMPLATE`, so that what is derived from it
/// in turn is bound alike (docs/security.md, "What `CKA_DERIVE` gives away"): the
/// caller's own derive template for the key keeps its other attributes and may not
/// contradict `bound` (`TemplateInconsistent`).
fn with_inherited_bound(
    template: &[RawAttribute],
    bound: &[(AttrType, Value)],
) -> Result<Vec<RawAttribute>> {
    let mut own: Vec<(AttrType, Value)> = match template::parse(template)?.get(&CKA_DERIVE_TEMPLATE)
    {
        Some(Value::Template(own)) => own.clone(),
        _ => Vec::new(),
    };
    for (ty, v) in bound {
        match own.iter().find(|(t, _)| t == ty) {
            Some((_, mine)) if mine != v => return Err(Error::TemplateInconsistent),
            Some(_) => {}
            None => own.push((*ty, v.clone())),
        }
    }
    let nested = own
        .iter()
        .map(|(ty, v)| RawAttribute {
            ty: *ty,
            value: RawValue::Bytes(Zeroizing::new(v.to_native())),
        })
        .collect();
    let mut out: Vec<RawAttribute> = template
        .iter()
        .filter(|a| a.ty != CKA_DERIVE_TEMPLATE)
        .cloned()
        .collect();
    out.push(RawAttribute {
        ty: CKA_DERIVE_TEMPLATE,
        value: RawValue::Nested(nested),
    });
    Ok(out)
}

/// The one value length a secret key type allows, if it has one.
fn fixed_len(key_type: KeyType) -> Option<usize> {
    match key_type {
        crate::object::key::CKK_SM4 => Some(16),
        _ => None,
    }
}

/// `template` with `ty` set to `value` (replacing any value it had).
fn set_bool(template: &mut Vec<RawAttribute>, ty: AttrType, value: bool) {
    template.retain(|a| a.ty != ty);
    template.push(RawAttribute {
        ty,
        value: RawValue::Bytes(Zeroizing::new(Value::Bool(value).to_native())),
    });
}

/// A derived key's template after the mechanism's sensitivity rule (`DeriveRule`) and
/// the module's rule that a derived key has no usage its template does not ask for.
/// `sources` are the keys whose values the derivation reads, the base key first.
fn derived_template(
    template: &[RawAttribute],
    rule: DeriveRule,
    sources: &[&Object],
) -> Result<Vec<RawAttribute>> {
    let given = template::parse(template)?;
    let asked = |ty: AttrType| given.get(&ty).and_then(Value::as_bool);
    let mut out = template.to_vec();
    // A derived key has no usage its template does not ask for.
    for &ty in KEY_USES {
        if !given.contains_key(&ty) {
            set_bool(&mut out, ty, false);
        }
    }
    let base = sources.first().ok_or(Error::Internal("no base key"))?;
    match rule {
        DeriveRule::Template => {}
        DeriveRule::InheritBase => {
            for ty in [CKA_SENSITIVE, CKA_EXTRACTABLE] {
                if asked(ty).is_none() {
                    set_bool(&mut out, ty, base.bool_attr(ty) == Some(true));
                }
            }
        }
        DeriveRule::Exposes { strict } => {
            // A sensitive source makes the derived key sensitive; an unextractable
            // one makes it unextractable (§2.43). Extraction refuses a template that
            // asks otherwise; the others override it, as §2.43 words it.
            let sensitive = sources
                .iter()
                .any(|o| o.bool_attr(CKA_SENSITIVE) == Some(true));
            let unextractable = sources
                .iter()
                .any(|o| o.bool_attr(CKA_EXTRACTABLE) != Some(true));
            // A source wrapped only under trusted keys (§4.9 CKA_WRAP_WITH_TRUSTED)
            // gives a copy of its bits that is too, or the copy would be wrapped under
            // any key and decrypted.
            let trusted_only = sources
                .iter()
                .any(|o| o.bool_attr(CKA_WRAP_WITH_TRUSTED) == Some(true));
            if strict
                && ((sensitive && asked(CKA_SENSITIVE) == Some(false))
                    || (unextractable && asked(CKA_EXTRACTABLE) == Some(true))
                    || (trusted_only && asked(CKA_WRAP_WITH_TRUSTED) == Some(false)))
            {
                return Err(Error::TemplateInconsistent);
            }
            if sensitive {
                set_bool(&mut out, CKA_SENSITIVE, true);
            }
            if unextractable {
                set_bool(&mut out, CKA_EXTRACTABLE, false);
            }
            if trusted_only {
                set_bool(&mut out, CKA_WRAP_WITH_TRUSTED, true);
            }
        }
    }
    Ok(out)
}

/// The template of a data object `CKM_HKDF_DATA` makes: class `CKO_DATA`, and private
/// unless the template says otherwise when any source key is private, the base key or
/// the salt key (what a private key yields stays behind the login by default).
/// `TemplateInconsistent` where a source's `CKA_DERIVE_TEMPLATE` names an attribute no
/// data object has (`policy::carries`), or a class other than `CKO_DATA`.
fn data_template(template: &[RawAttribute], sources: &[&Object]) -> Result<Vec<RawAttribute>> {
    for source in sources {
        if let Some(Value::Template(forced)) = source.value(CKA_DERIVE_TEMPLATE) {
            // Anything a data object does not carry (sensitivity, extractability, a
            // usage flag...) binds a key, which a data object is not: its value is
            // readable by whoever may see it, so such a template forbids deriving data.
            let fits = |(ty, v): &(AttrType, Value)| {
                policy::carries(CKO_DATA, None, *ty)
                    && (*ty != CKA_CLASS || v.as_ulong() == Some(CKO_DATA.get()))
            };
            if !forced.iter().all(fits) {
                return Err(Error::TemplateInconsistent);
            }
        }
    }
    let given = template::parse(template)?;
    let mut out = template.to_vec();
    if !given.contains_key(&CKA_CLASS) {
        out.push(RawAttribute {
            ty: CKA_CLASS,
            value: RawValue::Bytes(Zeroizing::new(Value::Ulong(CKO_DATA.get()).to_native())),
        });
    }
    if !given.contains_key(&CKA_PRIVATE) {
        set_bool(
            &mut out,
            CKA_PRIVATE,
            sources.iter().any(|o| o.is_private()),
        );
    }
    Ok(out)
}

/// `CKA_VALUE_LEN` taken out of a data object's template (data objects do not carry it;
/// `CKM_HKDF_DATA` reads it as the output length, as pkcs11-provider sends it).
/// A `CKA_VALUE_LEN` as a length in bytes; one this machine cannot hold is invalid.
fn len_of(value_len: u64) -> Result<usize> {
    usize::try_from(value_len).map_err(|_| Error::AttributeValueInvalid)
}

fn take_value_len(template: Vec<RawAttribute>) -> Result<(Vec<RawAttribute>, Option<usize>)> {
    let len = template::parse(&template)?
        .get(&CKA_VALUE_LEN)
        .map(|v| v.as_ulong().ok_or(Error::AttributeValueInvalid))
        .transpose()?
        .map(len_of)
        .transpose()?;
    let rest = template
        .into_iter()
        .filter(|a| a.ty != CKA_VALUE_LEN)
        .collect();
    Ok((rest, len))
}

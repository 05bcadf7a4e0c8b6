//! Cryptographic mechanisms: one trait, one registry, one file per family.
//!
//! A `Mechanism` turns a decoded parameter and a usable `Key` into an operation
//! (`operation::Cipher`, `Signer`, `Verifier`, `Digester`) or into key material
//! (generation, wrapping, unwrapping, derivation). Adding a mechanism is adding a value
//! to a family's list. Mechanisms get keys only from the token, which has already
//! checked the key's class, usage flags and `CKA_ALLOWED_MECHANISMS`; they check what is
//! theirs: parameters, key type and size. This module must not touch sessions or the store.

mod aes;
mod aes_derive;
mod buffered;
mod des;
pub(crate) mod digest;
mod ec;
mod ecdh_kdf;
mod eddsa;
pub(crate) mod envelope;
mod hkdf;
mod hmac;
mod kbkdf;
mod keypad;
pub(crate) mod message;
mod montgomery;
pub mod params;
pub mod registry;
mod rsa;
mod rsa_raw;
mod simple_derive;
pub mod sm;
mod wrap;

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::object::attr::{AttrType, Value};
use crate::object::key::Key;
use crate::operation::{Cipher, Digester, Signer, Verifier};
pub use params::{Mechanism as MechanismArg, Param};
pub(crate) use rsa::private_key_attributes as rsa_private_key_attributes;

/// What a key is being used for; each maps to the usage attribute that must be true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Wrap,
    Unwrap,
    Derive,
    Digest,
}

impl Usage {
    pub fn attribute(self) -> Option<AttrType> {
        Some(match self {
            Usage::Encrypt => CKA_ENCRYPT,
            Usage::Decrypt => CKA_DECRYPT,
            Usage::Sign => CKA_SIGN,
            Usage::Verify => CKA_VERIFY,
            Usage::Wrap => CKA_WRAP,
            Usage::Unwrap => CKA_UNWRAP,
            Usage::Derive => CKA_DERIVE,
            Usage::Digest => return None,
        })
    }
}

/// What an unwrap template says about the length of the material it receives: what a
/// decryption with implicit rejection (RSA PKCS#1 v1.5) substitutes a bad block with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappedLen {
    /// Exactly this many bytes (`CKA_VALUE_LEN`, or a key type of one size).
    Exact(usize),
    /// One of these (a key type of several sizes, such as AES without `CKA_VALUE_LEN`).
    OneOf(&'static [usize]),
    /// Any length (a generic secret without `CKA_VALUE_LEN`).
    Any,
    /// Encoded, not raw: a private key as PKCS#8, whose parsing would tell a real block
    /// from a substitute.
    Encoded,
}

/// Key material a generation produced: attributes the module sets on the new object.
pub type Generated = Vec<(AttrType, Value)>;

/// What a key generation is asked for, read from the caller's templates.
#[derive(Debug, Default, Clone)]
pub struct KeyRequest {
    pub value_len: Option<u64>,
    pub modulus_bits: Option<u64>,
    pub public_exponent: Option<Vec<u8>>,
    pub ec_params: Option<Vec<u8>>,
}

/// What a derivation gets besides its parameter and base key.
#[derive(Debug)]
pub struct DeriveInput<'a> {
    /// The other key the parameter names (`Param::other_key`), which the token has
    /// authorised for derivation as it did the base key.
    pub other: Option<&'a Key>,
    /// The length of each key to derive, in bytes, in the order they are made (the key
    /// of `C_DeriveKey`'s own template first): its template's `CKA_VALUE_LEN`, or the one
    /// length its key type allows; `None` when neither says.
    pub lens: Vec<Option<usize>>,
    /// Whether the base key, and the other key, are guarded (sensitive or
    /// unextractable): a derivation that exposes their bits must not make a key holding
    /// only part of them, which could be found by trying its few unknown bytes.
    pub guarded: (bool, bool),
}

/// How a derived key's `CKA_SENSITIVE` and `CKA_EXTRACTABLE` relate to the base key's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeriveRule {
    /// From the template, or the defaults (ECDH, HKDF, AES encrypt-data).
    Template,
    /// From the template, or else the base key's values (SP 800-108, §2.42.8).
    InheritBase,
    /// The derived value exposes the base keys' bits (concatenation, XOR, extraction,
    /// §2.43): sensitive if any source is, unextractable if any source is, whatever the
    /// template says. `strict` (extraction) refuses a template that asks otherwise.
    Exposes { strict: bool },
}

/// The result of a key-pair generation: (public attributes, private attributes).
pub(crate) type GeneratedPair = (Generated, Generated);

pub trait Mechanism: Send + Sync {
    fn kind(&self) -> MechType;
    fn info(&self) -> CK_MECHANISM_INFO;
    /// A legacy algorithm: listed and usable only with `legacy_algorithms` on.
    fn legacy(&self) -> bool {
        false
    }
    /// Whether an operation's init computes with a secret key's value (builds a key
    /// schedule, say), so that the call's stack must be scrubbed (`secret_use`). When in
    /// doubt, true: a needless scrub costs time, a missing one leaves key bytes behind.
    fn init_handles_secret(&self) -> bool {
        true
    }

    fn encrypt(&self, _param: &Param, _key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        Err(Error::MechanismInvalid)
    }
    fn decrypt(&self, _param: &Param, _key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        Err(Error::MechanismInvalid)
    }
    fn sign(&self, _param: &Param, _key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        Err(Error::MechanismInvalid)
    }
    fn verify(&self, _param: &Param, _key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        Err(Error::MechanismInvalid)
    }
    fn digest(&self, _param: &Param) -> Result<Box<dyn Digester>> {
        Err(Error::MechanismInvalid)
    }
    /// `C_MessageEncryptInit` / `C_MessageDecryptInit`: the AEAD for the key's messages.
    fn message_aead(&self, _key: &Arc<Key>) -> Result<Box<dyn message::Aead>> {
        Err(Error::MechanismInvalid)
    }
    /// `C_GenerateKey`: the class and key type made, and the module-set attributes.
    fn generate_key(&self, _param: &Param, _req: &KeyRequest) -> Result<(KeyType, Generated)> {
        Err(Error::MechanismInvalid)
    }
    /// `C_GenerateKeyPair`: the key type made, and (public, private) attributes.
    fn generate_key_pair(
        &self,
        _param: &Param,
        _req: &KeyRequest,
    ) -> Result<(KeyType, GeneratedPair)> {
        Err(Error::MechanismInvalid)
    }
    /// `C_WrapKey`: encrypts the encoded key `material` under `wrapping`.
    fn wrap(&self, _param: &Param, _wrapping: &Key, _material: &[u8]) -> Result<Vec<u8>> {
        Err(Error::MechanismInvalid)
    }
    /// Whether this mechanism's unwrap has no integrity check (ECB, CBC, CBC-PAD, and
    /// the envelopes whose payload is ECB): a caller may alter a blob block by block and
    /// compare what comes out with another unwrap of the same blob, which no implicit
    /// rejection hides. `Token::unwrap_key` refuses such a mechanism for an unwrapping
    /// key whose `CKA_UNWRAP_TEMPLATE` guards what it unwraps (docs/security.md,
    /// "Unauthenticated unwraps").
    fn unwrap_unauthenticated(&self) -> bool {
        false
    }
    /// `C_UnwrapKey`: recovers encoded key material. `expected` is what the unwrap
    /// template says of its length, for implicit rejection.
    fn unwrap(
        &self,
        _param: &Param,
        _unwrapping: &Key,
        _wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::MechanismInvalid)
    }
    /// `C_DeriveKey`: the derived secret, `len` bytes when the template says so.
    fn derive(
        &self,
        _param: &Param,
        _base: &Key,
        _len: Option<usize>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::MechanismInvalid)
    }
    /// `C_DeriveKey` in full: one secret per entry of `input.lens`. Mechanisms that take
    /// another key or derive several keys override this; the others derive one key.
    fn derive_keys(
        &self,
        param: &Param,
        base: &Key,
        input: &DeriveInput,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        match (input.other, input.lens.as_slice()) {
            (None, [len]) => Ok(vec![self.derive(param, base, *len)?]),
            _ => Err(Error::MechanismParamInvalid),
        }
    }
    /// How the derived keys' sensitivity and extractability follow the base key's.
    fn derive_rule(&self) -> DeriveRule {
        DeriveRule::Template
    }
    /// The class of what `C_DeriveKey` makes: a secret key, or a data object
    /// (`CKM_HKDF_DATA`).
    fn derive_class(&self) -> ObjectClass {
        CKO_SECRET_KEY
    }
}

/// A `CK_MECHANISM_INFO` with key sizes in the unit the mechanism uses (bits for RSA and
/// EC, bytes for symmetric keys, as PKCS#11 3.0 §4 prescribes per mechanism).
pub const fn info(min: u64, max: u64, flags: CK_FLAGS) -> CK_MECHANISM_INFO {
    CK_MECHANISM_INFO {
        ulMinKeySize: min as CK_ULONG,
        ulMaxKeySize: max as CK_ULONG,
        flags,
    }
}

/// The AES key's bytes, checked for type and size (the AES family and message-based
/// AES-GCM share it).
fn aes_key(key: &Key) -> Result<&[u8]> {
    key.secret_of(CKK_AES, &[16, 24, 32])
}

/// The parameter must be absent.
pub(crate) fn no_param(param: &Param) -> Result<()> {
    match param {
        Param::None => Ok(()),
        _ => Err(Error::MechanismParamInvalid),
    }
}

pub fn list() -> Vec<MechType> {
    registry::all().map(|m| m.kind()).collect()
}

pub(crate) fn info_of(kind: MechType) -> Option<CK_MECHANISM_INFO> {
    registry::find(kind).map(|m| m.info())
}

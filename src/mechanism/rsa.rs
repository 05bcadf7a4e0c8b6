//! RSA mechanisms: `CKM_RSA_PKCS_KEY_PAIR_GEN`, `CKM_RSA_PKCS` (sign, verify, encrypt,
//! decrypt, wrap, unwrap), `CKM_RSA_PKCS_OAEP` (any SHA hash, labels), `CKM_RSA_PKCS_PSS`
//! and the hash-and-sign `CKM_SHA*_RSA_PKCS` / `CKM_SHA*_RSA_PKCS_PSS`.
//!
//! Unwrapping with `CKM_RSA_PKCS` uses implicit rejection when the unwrap template fixes
//! the key length: a bad padding gives a useless key, not a distinct error (PKCS#1 v1.5
//! padding oracles). Key sizes are in bits.

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::digest::hash_of;
use super::params::{OaepParams, PssParams};
use super::{
    buffered, info, no_param, Generated, GeneratedPair, KeyRequest, Mechanism, Param, WrappedLen,
};
use crate::crypto::hash::{HashAlg, HashContext};
use crate::crypto::rsa::{KeyLen, RsaComponents, RsaPrivateKey, RsaPublicKey};
use crate::error::{Error, Result};
use crate::object::attr::{AttrType, Value};
use crate::object::key::{Key, Material};
use crate::operation::{Cipher, Signer, Verifier};

/// The smallest modulus the module generates (policy: below 2048 bits is legacy).
const MIN_BITS: u64 = 2048;
/// The smallest modulus with `legacy_algorithms` on (docs/security.md).
const LEGACY_MIN_BITS: u64 = 1024;

/// The smallest modulus generated and advertised now.
pub(super) fn min_bits() -> u64 {
    if crate::legacy::enabled() {
        LEGACY_MIN_BITS
    } else {
        MIN_BITS
    }
}
/// The largest modulus aws-lc accepts (its `RSA` objects stop at 16384 bits).
pub(super) const MAX_BITS: u64 = 16384;

#[derive(Debug)]
pub(super) struct KeyPairGen;
#[derive(Debug)]
pub(super) struct Pkcs;
#[derive(Debug)]
pub(super) struct Oaep;
#[derive(Debug)]
pub(super) struct Pss;
#[derive(Debug)]
pub(super) struct HashPkcs(MechType, HashAlg);
#[derive(Debug)]
pub(super) struct HashPss(MechType, HashAlg);

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &KeyPairGen,
    &Pkcs,
    &Oaep,
    &Pss,
    &HashPkcs(CKM_SHA1_RSA_PKCS, HashAlg::Sha1),
    &HashPkcs(CKM_SHA224_RSA_PKCS, HashAlg::Sha224),
    &HashPkcs(CKM_SHA256_RSA_PKCS, HashAlg::Sha256),
    &HashPkcs(CKM_SHA384_RSA_PKCS, HashAlg::Sha384),
    &HashPkcs(CKM_SHA512_RSA_PKCS, HashAlg::Sha512),
    &HashPss(CKM_SHA1_RSA_PKCS_PSS, HashAlg::Sha1),
    &HashPss(CKM_SHA224_RSA_PKCS_PSS, HashAlg::Sha224),
    &HashPss(CKM_SHA256_RSA_PKCS_PSS, HashAlg::Sha256),
    &HashPss(CKM_SHA384_RSA_PKCS_PSS, HashAlg::Sha384),
    &HashPss(CKM_SHA512_RSA_PKCS_PSS, HashAlg::Sha512),
];

/// Refuses a modulus below the floor in force (`min_bits`): keys brought in from outside
/// (created or unwrapped) meet the same floor as generated ones when they are used, as
/// DES keys need the switch to be used at all (docs/security.md, "Legacy algorithms").
pub(super) fn check_size(bits: usize) -> Result<()> {
    if (bits as u64) < min_bits() {
        return Err(Error::KeySizeRange);
    }
    Ok(())
}

pub(super) fn private(key: &Key) -> Result<&RsaPrivateKey> {
    match &key.material {
        Material::RsaPrivate(k) => check_size(k.bits()).map(|()| k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

pub(super) fn public(key: &Key) -> Result<&RsaPublicKey> {
    match &key.material {
        Material::RsaPublic(k) => check_size(k.bits()).map(|()| k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// The MGF1 constant that goes with `hash`.
fn mgf_of(hash: HashAlg) -> CK_RSA_PKCS_MGF_TYPE {
    match hash {
        HashAlg::Sha1 => CKG_MGF1_SHA1,
        HashAlg::Sha224 => CKG_MGF1_SHA224,
        HashAlg::Sha256 => CKG_MGF1_SHA256,
        HashAlg::Sha384 => CKG_MGF1_SHA384,
        HashAlg::Sha512 => CKG_MGF1_SHA512,
    }
}

/// Checks OAEP parameters: a SHA hash with the MGF1 of the same hash (the module's
/// paddings use one hash for both), and a label only with `CKZ_DATA_SPECIFIED`.
pub(super) fn oaep_params(param: &Param) -> Result<(HashAlg, Vec<u8>)> {
    let Param::Oaep(p) = param else {
        return Err(Error::MechanismParamInvalid);
    };
    check_oaep(p)
}

pub(super) fn check_oaep(p: &OaepParams) -> Result<(HashAlg, Vec<u8>)> {
    let hash = hash_of(p.hash).ok_or(Error::MechanismParamInvalid)?;
    if p.mgf != mgf_of(hash) {
        return Err(Error::MechanismParamInvalid);
    }
    match p.source {
        CKZ_DATA_SPECIFIED => Ok((hash, p.label.clone())),
        0 if p.label.is_empty() => Ok((hash, Vec::new())),
        _ => Err(Error::MechanismParamInvalid),
    }
}

/// The private key of a PSS signature, refused at `C_SignInit` when the salt does not fit
/// it with the hash (`CKR_MECHANISM_PARAM_INVALID`, which `C_Sign` may not answer; review
/// 23b). A verification with such a salt answers `CKR_SIGNATURE_INVALID`, as RFC 8017
/// §9.1.2 has it ("inconsistent").
fn pss_signing_key(key: &Key, hash: HashAlg, salt: usize) -> Result<&RsaPrivateKey> {
    let private = private(key)?;
    if !private.takes_pss_salt(hash, salt) {
        return Err(Error::MechanismParamInvalid);
    }
    Ok(private)
}

fn pss_params(param: &Param, mechanism_hash: Option<HashAlg>) -> Result<(HashAlg, usize)> {
    let Param::Pss(PssParams {
        hash,
        mgf,
        salt_len,
    }) = param
    else {
        return Err(Error::MechanismParamInvalid);
    };
    let hash = hash_of(*hash).ok_or(Error::MechanismParamInvalid)?;
    if *mgf != mgf_of(hash) || mechanism_hash.is_some_and(|h| h != hash) {
        return Err(Error::MechanismParamInvalid);
    }
    // No modulus here is longer than 16,384 bits (2,048 bytes), and the salt must fit in
    // one with the hash: a longer salt is refused at Init, whatever the key.
    let salt_len = usize::try_from(*salt_len)
        .ok()
        .filter(|l| *l <= MAX_BITS as usize / 8)
        .ok_or(Error::MechanismParamInvalid)?;
    Ok((hash, salt_len))
}

impl Mechanism for KeyPairGen {
    fn kind(&self) -> MechType {
        CKM_RSA_PKCS_KEY_PAIR_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(min_bits(), MAX_BITS, CKF_GENERATE_KEY_PAIR)
    }
    fn generate_key_pair(
        &self,
        param: &Param,
        req: &KeyRequest,
    ) -> Result<(KeyType, GeneratedPair)> {
        no_param(param)?;
        let bits = req.modulus_bits.ok_or(Error::TemplateIncomplete)?;
        if let Some(e) = &req.public_exponent {
            let start = e.iter().position(|b| *b != 0).unwrap_or(e.len());
            if e[start..] != [1, 0, 1] {
                // aws-lc generates with e = 65537 only.
                return Err(Error::AttributeValueInvalid);
            }
        }
        if !(min_bits()..=MAX_BITS).contains(&bits) {
            return Err(Error::KeySizeRange);
        }
        let c = RsaComponents::generate(usize::try_from(bits).map_err(|_| Error::KeySizeRange)?)?;
        let bytes = |ty: AttrType, v: &[u8]| (ty, Value::Bytes(v.to_vec()));
        let public: Generated = vec![
            bytes(CKA_MODULUS, &c.n),
            bytes(CKA_PUBLIC_EXPONENT, &c.e),
            (CKA_MODULUS_BITS, Value::Ulong(bits)),
        ];
        let private: Generated = private_key_attributes(&c);
        Ok((CKK_RSA, (public, private)))
    }
}

/// The attributes of an RSA private key object holding `c` (PKCS#11 3.0 §6.1.5), the
/// one list every path that makes such an object uses (generation, unwrap, import).
pub(crate) fn private_key_attributes(c: &RsaComponents) -> Vec<(AttrType, Value)> {
    let bytes = |ty: AttrType, v: &[u8]| (ty, Value::Bytes(v.to_vec()));
    vec![
        bytes(CKA_MODULUS, &c.n),
        bytes(CKA_PUBLIC_EXPONENT, &c.e),
        bytes(CKA_PRIVATE_EXPONENT, &c.d),
        bytes(CKA_PRIME_1, &c.p),
        bytes(CKA_PRIME_2, &c.q),
        bytes(CKA_EXPONENT_1, &c.dp),
        bytes(CKA_EXPONENT_2, &c.dq),
        bytes(CKA_COEFFICIENT, &c.qinv),
    ]
}

pub(super) fn boxed_cipher<F>(bound: usize, run: F) -> Box<dyn Cipher>
where
    F: FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>> + Send + 'static,
{
    buffered::cipher(
        buffered::ONE_BLOCK_CAP,
        Error::DataLenRange,
        move |_| bound,
        run,
    )
}

impl Mechanism for Pkcs {
    fn kind(&self) -> MechType {
        CKM_RSA_PKCS
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            min_bits(),
            MAX_BITS,
            CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        )
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        no_param(param)?;
        let size = private(key)?.size();
        let key = Arc::clone(key);
        Ok(buffered::signer(size, move |data| {
            Ok(Zeroizing::new(private(&key)?.sign_pkcs1(data)?))
        }))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        no_param(param)?;
        public(key)?;
        let key = Arc::clone(key);
        Ok(buffered::verifier(move |data, sig| {
            public(&key)?.verify_pkcs1(data, sig)
        }))
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        no_param(param)?;
        let size = public(key)?.size();
        let key = Arc::clone(key);
        Ok(boxed_cipher(size, move |data| {
            Ok(Zeroizing::new(public(&key)?.encrypt_pkcs1(data)?))
        }))
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        no_param(param)?;
        let size = private(key)?.size();
        let key = Arc::clone(key);
        Ok(boxed_cipher(size, move |data| {
            private(&key)?.decrypt_pkcs1(data)
        }))
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        no_param(param)?;
        public(wrapping)?
            .encrypt_pkcs1(material)
            .map_err(|e| match e {
                Error::DataLenRange => Error::KeySizeRange,
                e => e,
            })
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        no_param(param)?;
        let key = private(unwrapping)?;
        // Implicit rejection throughout (docs/security.md, "PKCS#1 v1.5"): no return
        // code, length or key type check after the decryption depends on the padding.
        match expected {
            WrappedLen::Exact(len) => key.unwrap_pkcs1(wrapped, KeyLen::Exact(len)),
            WrappedLen::OneOf(lengths) => key.unwrap_pkcs1(wrapped, KeyLen::OneOf(lengths)),
            WrappedLen::Any => key.unwrap_pkcs1(wrapped, KeyLen::Any),
            // Parsing PKCS#8 would tell a real block from a substitute: refused before
            // any decryption.
            WrappedLen::Encoded => Err(Error::MechanismInvalid),
        }
    }
}

impl Mechanism for Oaep {
    fn kind(&self) -> MechType {
        CKM_RSA_PKCS_OAEP
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            min_bits(),
            MAX_BITS,
            CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
        )
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        let (hash, label) = oaep_params(param)?;
        let size = public(key)?.size();
        let key = Arc::clone(key);
        Ok(boxed_cipher(size, move |data| {
            Ok(Zeroizing::new(
                public(&key)?.encrypt_oaep(data, hash, &label)?,
            ))
        }))
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        let (hash, label) = oaep_params(param)?;
        let size = private(key)?.size();
        let key = Arc::clone(key);
        Ok(boxed_cipher(size, move |data| {
            private(&key)?.decrypt_oaep(data, hash, &label)
        }))
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        let (hash, label) = oaep_params(param)?;
        public(wrapping)?
            .encrypt_oaep(material, hash, &label)
            .map_err(|e| match e {
                Error::DataLenRange => Error::KeySizeRange,
                e => e,
            })
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (hash, label) = oaep_params(param)?;
        private(unwrapping)?
            .decrypt_oaep(wrapped, hash, &label)
            .map_err(|e| match e {
                Error::EncryptedDataLenRange => Error::WrappedKeyLenRange,
                _ => Error::WrappedKeyInvalid,
            })
    }
}

impl Mechanism for Pss {
    fn kind(&self) -> MechType {
        CKM_RSA_PKCS_PSS
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(min_bits(), MAX_BITS, CKF_SIGN | CKF_VERIFY)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        let (hash, salt) = pss_params(param, None)?;
        let size = pss_signing_key(key, hash, salt)?.size();
        let key = Arc::clone(key);
        Ok(buffered::signer(size, move |m_hash| {
            Ok(Zeroizing::new(private(&key)?.sign_pss(m_hash, hash, salt)?))
        }))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        let (hash, salt) = pss_params(param, None)?;
        public(key)?;
        let key = Arc::clone(key);
        Ok(buffered::verifier(move |m_hash, sig| {
            if m_hash.len() != hash.output_len() {
                return Err(Error::DataLenRange);
            }
            public(&key)?.verify_pss(m_hash, sig, hash, salt)
        }))
    }
}

/// Hash-then-sign: the hash runs over every update, the key acts once at the end. A
/// single-part signature hashes its data in one call (`HashAlg::hash`): no streaming
/// context is set up at init, and the hash is never allocated.
struct HashThen<F> {
    hash: HashAlg,
    /// The running hash of a multi-part signature, begun by its first update.
    ctx: Option<HashContext>,
    /// The signature was made (or refused): no step is taken again.
    done: bool,
    len: usize,
    run: F,
    /// The signature's measured stack reach (`Signer::stack_reach`).
    reach: usize,
}

impl<F> HashThen<F>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>> + Send,
{
    fn new(reach: usize, hash: HashAlg, len: usize, run: F) -> HashThen<F> {
        HashThen {
            hash,
            ctx: None,
            done: false,
            len,
            run,
            reach,
        }
    }

    /// Ends the operation: later steps answer `CKR_OPERATION_NOT_INITIALIZED`.
    fn end(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.done, true) {
            return Err(Error::OperationNotInitialized);
        }
        Ok(())
    }
}

impl<F> Signer for HashThen<F>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>> + Send,
{
    fn update(&mut self, data: &[u8]) -> Result<()> {
        if self.done {
            return Err(Error::OperationNotInitialized);
        }
        let hash = self.hash;
        self.ctx.get_or_insert_with(|| hash.context()).update(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        self.end()?;
        let value = match self.ctx.take() {
            Some(ctx) => ctx.finish_value(),
            // No update: the hash of no data.
            None => self.hash.hash(&[]),
        };
        (self.run)(value.as_ref())
    }
    fn one_shot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.ctx.is_some() {
            // Parts came before (the session refuses that mix; kept correct regardless).
            self.update(data)?;
            return self.finish();
        }
        self.end()?;
        (self.run)(self.hash.hash(data).as_ref())
    }
    fn signature_len(&self) -> usize {
        self.len
    }
    fn stack_reach(&self) -> usize {
        self.reach
    }
}

struct HashThenVerify<F> {
    ctx: Option<HashContext>,
    run: F,
}

impl<F> Verifier for HashThenVerify<F>
where
    F: FnMut(Vec<u8>, &[u8]) -> Result<()> + Send,
{
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.ctx
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let hash = self
            .ctx
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish();
        (self.run)(hash, signature)
    }
}

pub(super) fn hash_then_sign<F>(hash: HashAlg, len: usize, run: F) -> Box<dyn Signer>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>> + Send + 'static,
{
    Box::new(HashThen::new(crate::secret_use::WHOLE, hash, len, run))
}

/// `hash_then_sign` for a signature measured to keep its secrets within `reach` bytes of
/// stack (release builds, `secret_use`, `bench/stackreach.sh`): ECDSA.
pub(super) fn hash_then_sign_within<F>(
    reach: usize,
    hash: HashAlg,
    len: usize,
    run: F,
) -> Box<dyn Signer>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>> + Send + 'static,
{
    Box::new(HashThen::new(reach, hash, len, run))
}

pub(super) fn hash_then_verify<F>(hash: HashAlg, run: F) -> Box<dyn Verifier>
where
    F: FnMut(Vec<u8>, &[u8]) -> Result<()> + Send + 'static,
{
    Box::new(HashThenVerify {
        ctx: Some(hash.context()),
        run,
    })
}

impl Mechanism for HashPkcs {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(min_bits(), MAX_BITS, CKF_SIGN | CKF_VERIFY)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        no_param(param)?;
        let size = private(key)?.size();
        let (hash, key) = (self.1, Arc::clone(key));
        Ok(hash_then_sign(hash, size, move |h| {
            private(&key)?.sign_pkcs1(&[hash.digest_info_prefix(), h].concat())
        }))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        no_param(param)?;
        public(key)?;
        let (hash, key) = (self.1, Arc::clone(key));
        Ok(hash_then_verify(hash, move |h, sig| {
            public(&key)?.verify_pkcs1(&[hash.digest_info_prefix(), &h].concat(), sig)
        }))
    }
}

impl Mechanism for HashPss {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(min_bits(), MAX_BITS, CKF_SIGN | CKF_VERIFY)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        let (hash, salt) = pss_params(param, Some(self.1))?;
        let size = pss_signing_key(key, hash, salt)?.size();
        let key = Arc::clone(key);
        Ok(hash_then_sign(hash, size, move |h| {
            private(&key)?.sign_pss(h, hash, salt)
        }))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        let (hash, salt) = pss_params(param, Some(self.1))?;
        public(key)?;
        let key = Arc::clone(key);
        Ok(hash_then_verify(hash, move |h, sig| {
            public(&key)?.verify_pss(&h, sig, hash, salt)
        }))
    }
}

//! Ed25519 and Ed448 (PKCS#11 3.0 §2.3.6, §2.3.14): `CKM_EC_EDWARDS_KEY_PAIR_GEN` and
//! `CKM_EDDSA` sign/verify. Ed25519 in RFC 8032's three forms, chosen by the parameter:
//! absent, or a `CK_EDDSA_PARAMS` without pre-hash and without context, is pure Ed25519; a
//! context without pre-hash is Ed25519ctx (1 to 255 bytes); the pre-hash flag is
//! Ed25519ph (SHA-512 of the message, streamed, with a context of 0 to 255 bytes). Ed448
//! (from libcrypto.so.3, `crypto::curve448`) in its pure form only: OpenSSL 3.0 signs
//! Ed448 without a context and has no Ed448ph, so a context or the pre-hash flag is
//! `CKR_MECHANISM_PARAM_INVALID`; without the library the curve is
//! `CKR_CURVE_NOT_SUPPORTED`. Key sizes in bits (255, 448).
//! This module must not touch sessions or the store.

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::{buffered, info, no_param, GeneratedPair, KeyRequest, Mechanism, Param};
use crate::crypto::curve25519::{self, Curve25519, Ed25519Private};
use crate::crypto::curve448::{self, Ed448Private};
use crate::crypto::ed25519_variants;
use crate::crypto::hash::{HashAlg, HashContext};
use crate::error::{Error, Result};
use crate::object::attr::Value;
use crate::object::key::{Key, Material};
use crate::operation::{Signer, Verifier};

/// Ed25519's key size as PKCS#11 counts it (the field's bits).
const BITS: u64 = 255;

/// The largest key size offered: Ed448's when libcrypto.so.3 gives it, else Ed25519's.
fn max_bits() -> u64 {
    if curve448::available() {
        curve448::BITS
    } else {
        BITS
    }
}

#[derive(Debug)]
pub(super) struct KeyPairGen;
#[derive(Debug)]
pub(super) struct Eddsa;

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[&KeyPairGen, &Eddsa];

fn private(key: &Key) -> Result<&Ed25519Private> {
    match &key.material {
        Material::Ed25519Private(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn public(key: &Key) -> Result<&[u8; curve25519::KEY_LEN]> {
    match &key.material {
        Material::Ed25519Public(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn ed448_private(key: &Key) -> Result<&Ed448Private> {
    match &key.material {
        Material::Ed448Private(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn ed448_public(key: &Key) -> Result<&[u8; curve448::ED448_KEY_LEN]> {
    match &key.material {
        Material::Ed448Public(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn is_ed448(key: &Key) -> bool {
    matches!(
        key.material,
        Material::Ed448Private(_) | Material::Ed448Public(_)
    )
}

/// Ed448 in its pure form only: a context (Ed448 with one) or the pre-hash flag
/// (Ed448ph) is refused, as OpenSSL 3.0's Ed448 has neither. Without libcrypto.so.3 (a
/// public key object needs none to exist) the curve is refused at `Init`.
fn ed448_form(param: &Param) -> Result<()> {
    if !curve448::available() {
        return Err(Error::CurveNotSupported);
    }
    match form(param)? {
        Form::Pure => Ok(()),
        Form::Ctx(_) | Form::Ph(_) => Err(Error::MechanismParamInvalid),
    }
}

/// Which of RFC 8032's Ed25519 forms the parameter asks for.
#[derive(Debug, Clone)]
enum Form {
    Pure,
    Ctx(Vec<u8>),
    Ph(Vec<u8>),
}

fn form(param: &Param) -> Result<Form> {
    match param {
        Param::None => Ok(Form::Pure),
        Param::Eddsa {
            prehash: false,
            context,
        } if context.is_empty() => Ok(Form::Pure),
        Param::Eddsa {
            prehash: false,
            context,
        } => Ok(Form::Ctx(context.clone())),
        Param::Eddsa {
            prehash: true,
            context,
        } => Ok(Form::Ph(context.clone())),
        _ => Err(Error::MechanismParamInvalid),
    }
    .and_then(|f| match &f {
        Form::Ctx(c) | Form::Ph(c) if c.len() > ed25519_variants::MAX_CONTEXT_LEN => {
            Err(Error::MechanismParamInvalid)
        }
        _ => Ok(f),
    })
}

/// Ed25519ph: the message is hashed as it arrives; the signature is made over the digest.
struct Prehashed {
    key: Arc<Key>,
    hash: Option<HashContext>,
    context: Vec<u8>,
}

impl Prehashed {
    fn new(key: &Arc<Key>, context: Vec<u8>) -> Prehashed {
        Prehashed {
            key: Arc::clone(key),
            hash: Some(HashAlg::Sha512.context()),
            context,
        }
    }
    fn digest(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .hash
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish())
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.hash
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(data);
        Ok(())
    }
}

impl Signer for Prehashed {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Prehashed::update(self, data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let digest = self.digest()?;
        private(&self.key)?.sign_ph_digest(&digest, &self.context)
    }
    fn signature_len(&self) -> usize {
        curve25519::SIGNATURE_LEN
    }
}

impl Verifier for Prehashed {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Prehashed::update(self, data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let digest = self.digest()?;
        let digest = digest
            .as_slice()
            .try_into()
            .map_err(|_| Error::Internal("SHA-512 length"))?;
        ed25519_variants::ph_verify_digest(public(&self.key)?, digest, signature, &self.context)
    }
}

/// The attributes of a generated Edwards or Montgomery key pair (Ed25519, X25519,
/// Ed448): both halves keep the caller's encoding of the curve (OID or name: clients
/// compare it), the public half gets `point_attribute` (the DER OCTET STRING of the
/// public key), the private half its secret.
pub(super) fn curve_pair(params: &[u8], point_attribute: Vec<u8>, secret: &[u8]) -> GeneratedPair {
    let params = Value::Bytes(params.to_vec());
    let public = vec![
        (CKA_EC_PARAMS, params.clone()),
        (CKA_EC_POINT, Value::Bytes(point_attribute)),
    ];
    let private = vec![
        (CKA_EC_PARAMS, params),
        (CKA_VALUE, Value::Bytes(secret.to_vec())),
    ];
    (public, private)
}

impl Mechanism for KeyPairGen {
    fn kind(&self) -> MechType {
        CKM_EC_EDWARDS_KEY_PAIR_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(BITS, max_bits(), CKF_GENERATE_KEY_PAIR | CKF_EC_NAMEDCURVE)
    }
    fn generate_key_pair(
        &self,
        param: &Param,
        req: &KeyRequest,
    ) -> Result<(KeyType, GeneratedPair)> {
        no_param(param)?;
        let params = req.ec_params.as_deref().ok_or(Error::TemplateIncomplete)?;
        if curve448::is_ed448_params(params) {
            let (seed, point) = Ed448Private::generate()?;
            let point = curve448::public_to_attribute(&point);
            return Ok((CKK_EC_EDWARDS, curve_pair(params, point, &seed[..])));
        }
        if Curve25519::from_params(params)? != Curve25519::Edwards {
            return Err(Error::CurveNotSupported);
        }
        let (seed, point) = Ed25519Private::generate()?;
        let point = curve25519::public_to_attribute(&point);
        Ok((CKK_EC_EDWARDS, curve_pair(params, point, &seed[..])))
    }
}

impl Mechanism for Eddsa {
    fn kind(&self) -> MechType {
        CKM_EDDSA
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(BITS, max_bits(), CKF_SIGN | CKF_VERIFY | CKF_EC_NAMEDCURVE)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        if is_ed448(key) {
            ed448_form(param)?;
            ed448_private(key)?;
            let key = Arc::clone(key);
            return Ok(buffered::signer_capped(
                buffered::MESSAGE_CAP,
                curve448::ED448_SIGNATURE_LEN,
                move |message| Ok(Zeroizing::new(ed448_private(&key)?.sign(message)?)),
            ));
        }
        let form = form(param)?;
        private(key)?;
        if let Form::Ph(context) = form {
            return Ok(Box::new(Prehashed::new(key, context)));
        }
        let key = Arc::clone(key);
        Ok(buffered::signer_capped(
            buffered::MESSAGE_CAP,
            curve25519::SIGNATURE_LEN,
            move |message| {
                let k = private(&key)?;
                Ok(Zeroizing::new(match &form {
                    Form::Ctx(context) => k.sign_ctx(message, context)?,
                    _ => k.sign(message)?,
                }))
            },
        ))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        if is_ed448(key) {
            ed448_form(param)?;
            ed448_public(key)?;
            let key = Arc::clone(key);
            return Ok(buffered::verifier_capped(
                buffered::MESSAGE_CAP,
                move |message, sig| curve448::ed448_verify(ed448_public(&key)?, message, sig),
            ));
        }
        let form = form(param)?;
        public(key)?;
        if let Form::Ph(context) = form {
            return Ok(Box::new(Prehashed::new(key, context)));
        }
        let key = Arc::clone(key);
        Ok(buffered::verifier_capped(
            buffered::MESSAGE_CAP,
            move |message, sig| match &form {
                Form::Ctx(context) => {
                    ed25519_variants::ctx_verify(public(&key)?, message, sig, context)
                }
                _ => curve25519::ed25519_verify(public(&key)?, message, sig),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Arc<Key>, Arc<Key>) {
        let req = KeyRequest {
            ec_params: Some(curve25519::NAME_EDWARDS25519.to_vec()),
            ..KeyRequest::default()
        };
        let (kt, (public, private)) = KeyPairGen.generate_key_pair(&Param::None, &req).unwrap();
        assert_eq!(kt, CKK_EC_EDWARDS);
        let bytes = |attrs: &[(AttrType, Value)], ty: AttrType| {
            attrs
                .iter()
                .find(|(t, _)| *t == ty)
                .and_then(|(_, v)| v.as_bytes())
                .unwrap()
                .to_vec()
        };
        let seed = bytes(&private, CKA_VALUE);
        let point = curve25519::public_from_attribute(&bytes(&public, CKA_EC_POINT)).unwrap();
        let key = |class, material| {
            Arc::new(Key {
                class,
                key_type: CKK_EC_EDWARDS,
                material,
                prepared: Default::default(),
            })
        };
        (
            key(CKO_PUBLIC_KEY, Material::Ed25519Public(point)),
            key(
                CKO_PRIVATE_KEY,
                Material::Ed25519Private(Ed25519Private::from_seed(&seed).unwrap()),
            ),
        )
    }

    #[test]
    fn pure_ed25519_signs_and_verifies_with_or_without_params() {
        let (public, private) = pair();
        let pure = Param::Eddsa {
            prehash: false,
            context: Vec::new(),
        };
        for param in [Param::None, pure] {
            let mut s = Eddsa.sign(&param, &private).unwrap();
            s.update(b"two ").unwrap();
            s.update(b"parts").unwrap();
            let sig = s.finish().unwrap();
            assert_eq!(sig.len(), 64);
            Eddsa
                .verify(&param, &public)
                .unwrap()
                .one_shot(b"two parts", &sig)
                .unwrap();
            assert!(matches!(
                Eddsa
                    .verify(&param, &public)
                    .unwrap()
                    .one_shot(b"other", &sig),
                Err(Error::SignatureInvalid)
            ));
        }
    }

    #[test]
    fn other_params_and_wrong_keys_are_refused() {
        let (public, private) = pair();
        for param in [
            Param::Eddsa {
                prehash: true,
                context: vec![0; 256],
            },
            Param::Bytes(vec![0]),
        ] {
            assert!(matches!(
                Eddsa.sign(&param, &private),
                Err(Error::MechanismParamInvalid)
            ));
        }
        assert!(matches!(
            Eddsa.sign(&Param::None, &public),
            Err(Error::KeyTypeInconsistent)
        ));
        assert!(matches!(
            Eddsa.verify(&Param::None, &private),
            Err(Error::KeyTypeInconsistent)
        ));
        let curve448 = KeyRequest {
            ec_params: Some(b"\x06\x03\x2b\x65\x6f".to_vec()),
            ..KeyRequest::default()
        };
        assert!(matches!(
            KeyPairGen.generate_key_pair(&Param::None, &curve448),
            Err(Error::CurveNotSupported)
        ));
        let x25519 = KeyRequest {
            ec_params: Some(curve25519::OID_X25519.to_vec()),
            ..KeyRequest::default()
        };
        assert!(matches!(
            KeyPairGen.generate_key_pair(&Param::None, &x25519),
            Err(Error::CurveNotSupported)
        ));
    }

    #[test]
    fn ed448_pairs_sign_and_verify_in_the_pure_form_only() {
        assert!(
            curve448::available(),
            "Ed448 needs libcrypto.so.3 (OpenSSL 3)"
        );
        for params in [curve448::OID_ED448, curve448::NAME_EDWARDS448] {
            let req = KeyRequest {
                ec_params: Some(params.to_vec()),
                ..KeyRequest::default()
            };
            let (kt, (public, private)) = KeyPairGen.generate_key_pair(&Param::None, &req).unwrap();
            assert_eq!(kt, CKK_EC_EDWARDS);
            let bytes = |attrs: &[(AttrType, Value)], ty: AttrType| {
                attrs
                    .iter()
                    .find(|(t, _)| *t == ty)
                    .and_then(|(_, v)| v.as_bytes())
                    .unwrap()
                    .to_vec()
            };
            assert_eq!(bytes(&public, CKA_EC_PARAMS), params);
            let point = bytes(&public, CKA_EC_POINT);
            assert_eq!(&point[..2], &[0x04, 0x39]);
            let seed = bytes(&private, CKA_VALUE);
            assert_eq!(seed.len(), 57);
            let key = |class, material| {
                Arc::new(Key {
                    class,
                    key_type: CKK_EC_EDWARDS,
                    material,
                    prepared: Default::default(),
                })
            };
            let public = key(
                CKO_PUBLIC_KEY,
                Material::Ed448Public(curve448::public_from_attribute(&point).unwrap()),
            );
            let private = key(
                CKO_PRIVATE_KEY,
                Material::Ed448Private(Ed448Private::from_seed(&seed).unwrap()),
            );
            let mut s = Eddsa.sign(&Param::None, &private).unwrap();
            s.update(b"two ").unwrap();
            s.update(b"parts").unwrap();
            let sig = s.finish().unwrap();
            assert_eq!(sig.len(), 114);
            Eddsa
                .verify(&Param::None, &public)
                .unwrap()
                .one_shot(b"two parts", &sig)
                .unwrap();
            assert!(matches!(
                Eddsa
                    .verify(&Param::None, &public)
                    .unwrap()
                    .one_shot(b"other", &sig),
                Err(Error::SignatureInvalid)
            ));
            for param in [
                Param::Eddsa {
                    prehash: false,
                    context: b"ctx".to_vec(),
                },
                Param::Eddsa {
                    prehash: true,
                    context: Vec::new(),
                },
            ] {
                assert!(matches!(
                    Eddsa.sign(&param, &private),
                    Err(Error::MechanismParamInvalid)
                ));
                assert!(matches!(
                    Eddsa.verify(&param, &public),
                    Err(Error::MechanismParamInvalid)
                ));
            }
        }
        assert_eq!(Eddsa.info().ulMaxKeySize, 448);
        assert_eq!(KeyPairGen.info().ulMinKeySize, 255);
    }
}

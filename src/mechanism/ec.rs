//! EC mechanisms on P-256, P-384, P-521 and secp256k1: `CKM_EC_KEY_PAIR_GEN`,
//! `CKM_ECDSA` (over a caller-supplied hash), `CKM_ECDSA_SHA1` ... `CKM_ECDSA_SHA512`,
//! and `CKM_ECDH1_DERIVE` (raw or with the ANSI X9.63 KDF of §6.3.14; X25519 and X448 base keys
//! go to `montgomery`). Key sizes in bits.

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::rsa::{hash_then_sign_within, hash_then_verify};
use super::{info, no_param, GeneratedPair, KeyRequest, Mechanism, Param};
use crate::crypto::ec::{self, Curve, EcPrivateKey};
use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::object::attr::Value;
use crate::object::key::{Key, Material};
use crate::operation::{Signer, Verifier};

const MIN_BITS: u64 = 256;
const MAX_BITS: u64 = 521;
const RAW_HASH_MAX: usize = 1 << 10;

#[derive(Debug)]
pub(super) struct KeyPairGen;
#[derive(Debug)]
pub(super) struct Ecdsa;
#[derive(Debug)]
pub(super) struct HashEcdsa(MechType, HashAlg);
#[derive(Debug)]
pub(super) struct Ecdh1;

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &KeyPairGen,
    &Ecdsa,
    &HashEcdsa(CKM_ECDSA_SHA1, HashAlg::Sha1),
    &HashEcdsa(CKM_ECDSA_SHA224, HashAlg::Sha224),
    &HashEcdsa(CKM_ECDSA_SHA256, HashAlg::Sha256),
    &HashEcdsa(CKM_ECDSA_SHA384, HashAlg::Sha384),
    &HashEcdsa(CKM_ECDSA_SHA512, HashAlg::Sha512),
    &Ecdh1,
];

fn private(key: &Key) -> Result<&EcPrivateKey> {
    match &key.material {
        Material::EcPrivate(k) => Ok(k),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

/// How far below the entry point an ECDSA signature's secrets may lie on the stack
/// (`secret_use`): measured for aws-lc's NIST curves and for secp256k1, which goes deeper.
fn signing_reach(curve: Curve) -> usize {
    match curve {
        Curve::P256 | Curve::P384 | Curve::P521 => crate::secret_use::ECDSA_NIST_REACH,
        Curve::Secp256k1 => crate::secret_use::ECDSA_SECP256K1_REACH,
    }
}

fn public(key: &Key) -> Result<(Curve, &[u8])> {
    match &key.material {
        Material::EcPublic { curve, point } => Ok((*curve, point)),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

impl Mechanism for KeyPairGen {
    fn kind(&self) -> MechType {
        CKM_EC_KEY_PAIR_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            MIN_BITS,
            MAX_BITS,
            CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
        )
    }
    fn generate_key_pair(
        &self,
        param: &Param,
        req: &KeyRequest,
    ) -> Result<(KeyType, GeneratedPair)> {
        no_param(param)?;
        let params = req.ec_params.as_deref().ok_or(Error::TemplateIncomplete)?;
        let curve = Curve::from_oid(params)?;
        let (d, point) = EcPrivateKey::generate(curve)?;
        let params = Value::Bytes(curve.oid().to_vec());
        let public = vec![
            (CKA_EC_PARAMS, params.clone()),
            (CKA_EC_POINT, Value::Bytes(ec::point_to_attribute(&point))),
        ];
        let private = vec![
            (CKA_EC_PARAMS, params),
            (CKA_VALUE, Value::Bytes(d.to_vec())),
        ];
        Ok((CKK_EC, (public, private)))
    }
}

/// Raw ECDSA: the caller's input is the hash.
struct RawEcdsa {
    input: Vec<u8>,
    key: Arc<Key>,
    len: usize,
}

impl RawEcdsa {
    fn push(&mut self, data: &[u8]) -> Result<()> {
        if self.input.len() + data.len() > RAW_HASH_MAX {
            return Err(Error::DataLenRange);
        }
        self.input.extend_from_slice(data);
        Ok(())
    }
}

impl Signer for RawEcdsa {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.push(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        private(&self.key)?.sign_hash(&self.input)
    }
    fn signature_len(&self) -> usize {
        self.len
    }
    fn stack_reach(&self) -> usize {
        private(&self.key).map_or(crate::secret_use::WHOLE, |k| signing_reach(k.curve()))
    }
}

impl Verifier for RawEcdsa {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.push(data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let (curve, point) = public(&self.key)?;
        ec::verify_hash(curve, point, &self.input, signature)
    }
}

impl Mechanism for Ecdsa {
    fn kind(&self) -> MechType {
        CKM_ECDSA
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            MIN_BITS,
            MAX_BITS,
            CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
        )
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        no_param(param)?;
        let len = 2 * private(key)?.curve().field_len();
        Ok(Box::new(RawEcdsa {
            input: Vec::new(),
            key: Arc::clone(key),
            len,
        }))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        no_param(param)?;
        let (curve, _) = public(key)?;
        Ok(Box::new(RawEcdsa {
            input: Vec::new(),
            key: Arc::clone(key),
            len: 2 * curve.field_len(),
        }))
    }
}

impl Mechanism for HashEcdsa {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            MIN_BITS,
            MAX_BITS,
            CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
        )
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        no_param(param)?;
        let curve = private(key)?.curve();
        let len = 2 * curve.field_len();
        let key = Arc::clone(key);
        Ok(hash_then_sign_within(
            signing_reach(curve),
            self.1,
            len,
            move |h| private(&key)?.sign_hash(h),
        ))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        no_param(param)?;
        public(key)?;
        let key = Arc::clone(key);
        Ok(hash_then_verify(self.1, move |h, sig| {
            let (curve, point) = public(&key)?;
            ec::verify_hash(curve, point, &h, sig)
        }))
    }
}

impl Mechanism for Ecdh1 {
    fn kind(&self) -> MechType {
        CKM_ECDH1_DERIVE
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            super::montgomery::BITS,
            MAX_BITS,
            CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
        )
    }
    fn derive(&self, param: &Param, base: &Key, len: Option<usize>) -> Result<Zeroizing<Vec<u8>>> {
        let Param::Ecdh1(p) = param else {
            return Err(Error::MechanismParamInvalid);
        };
        if super::montgomery::is_montgomery(base) {
            return super::montgomery::derive(p, base, len);
        }
        let key = private(base)?;
        // The peer's point may come bare or as a DER OCTET STRING (§6.3.14 allows both).
        let peer = ec::point_from_attribute(&p.public_data);
        super::ecdh_kdf::apply_kdf(p, key.agree(&peer)?, len)
    }
}

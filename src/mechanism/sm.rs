//! The Chinese algorithms as vendor mechanisms (values in `include/kmshsm.h`): SM2 key
//! generation, SM2 signatures with SM3 over Z_A (default distinguishing identifier
//! "1234567812345678", or the mechanism parameter), SM2 encryption (C1C3C2; also the
//! SM2PKE wrap), the SM3 digest, SM4 key generation and SM4 ECB, CBC, CBC-PAD and GCM.
//! SM2 key sizes are in bits (256); SM4 in bytes (16).

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::{
    buffered, info, no_param, Generated, GeneratedPair, KeyRequest, Mechanism, Param, WrappedLen,
};
use crate::crypto::ec;
use crate::crypto::sm::{self, Sm3};
use crate::error::{Error, Result};
use crate::object::attr::Value;
use crate::object::key::{Key, Material, CKK_SM2, CKK_SM4};
use crate::operation::{Cipher, Digester, Signer, Verifier};
use crate::vendor;

pub const CKM_SM2_KEY_PAIR_GEN: MechType = vendor::CKM_KMSHSM_SM2_KEY_PAIR_GEN;
pub const CKM_SM2_SM3: MechType = vendor::CKM_KMSHSM_SM2_SM3;
pub const CKM_SM2_ENCRYPT: MechType = vendor::CKM_KMSHSM_SM2_ENCRYPT;
pub const CKM_SM3: MechType = vendor::CKM_KMSHSM_SM3;
pub const CKM_SM4_KEY_GEN: MechType = vendor::CKM_KMSHSM_SM4_KEY_GEN;
pub const CKM_SM4_ECB: MechType = vendor::CKM_KMSHSM_SM4_ECB;
pub const CKM_SM4_CBC: MechType = vendor::CKM_KMSHSM_SM4_CBC;
pub const CKM_SM4_CBC_PAD: MechType = vendor::CKM_KMSHSM_SM4_CBC_PAD;
pub const CKM_SM4_GCM: MechType = vendor::CKM_KMSHSM_SM4_GCM;

#[derive(Debug)]
pub(crate) struct Sm2KeyGen;
#[derive(Debug)]
pub(crate) struct Sm2Sm3;
#[derive(Debug)]
pub(crate) struct Sm2Encrypt;
#[derive(Debug)]
pub(crate) struct Sm3Digest;
#[derive(Debug)]
pub(crate) struct Sm4KeyGen;
#[derive(Debug)]
pub struct Sm4(MechType);

pub(crate) static MECHANISMS: &[&dyn Mechanism] = &[
    &Sm2KeyGen,
    &Sm2Sm3,
    &Sm2Encrypt,
    &Sm3Digest,
    &Sm4KeyGen,
    &Sm4(CKM_SM4_ECB),
    &Sm4(CKM_SM4_CBC),
    &Sm4(CKM_SM4_CBC_PAD),
    &Sm4(CKM_SM4_GCM),
];

fn sm2_private(key: &Key) -> Result<(&[u8], &[u8])> {
    match &key.material {
        Material::Sm2Private { d, point } => Ok((d, point)),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn sm2_public(key: &Key) -> Result<&[u8]> {
    match &key.material {
        Material::Sm2Public { point } => Ok(point),
        _ => Err(Error::KeyTypeInconsistent),
    }
}

fn sm4_key(key: &Key) -> Result<&[u8]> {
    key.secret_of(CKK_SM4, &[16])
}

impl Mechanism for Sm2KeyGen {
    fn kind(&self) -> MechType {
        CKM_SM2_KEY_PAIR_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(256, 256, CKF_GENERATE_KEY_PAIR)
    }
    fn generate_key_pair(
        &self,
        param: &Param,
        req: &KeyRequest,
    ) -> Result<(KeyType, GeneratedPair)> {
        no_param(param)?;
        if req.ec_params.as_deref().is_some_and(|p| p != sm::OID_SM2) {
            return Err(Error::CurveNotSupported);
        }
        let (d, point) = sm::sm2_generate()?;
        let params = Value::Bytes(sm::OID_SM2.to_vec());
        let point = Value::Bytes(ec::point_to_attribute(&point));
        let public = vec![
            (CKA_EC_PARAMS, params.clone()),
            (CKA_EC_POINT, point.clone()),
        ];
        let private = vec![
            (CKA_EC_PARAMS, params),
            (CKA_VALUE, Value::Bytes(d.to_vec())),
            (CKA_EC_POINT, point),
        ];
        Ok((CKK_SM2, (public, private)))
    }
}

fn distinguishing_id(param: &Param) -> Result<Vec<u8>> {
    match param {
        Param::None => Ok(sm::SM2_DEFAULT_ID.to_vec()),
        Param::Bytes(id) => Ok(id.clone()),
        _ => Err(Error::MechanismParamInvalid),
    }
}

/// SM2 with SM3: the hash runs over Z_A and every update; the key acts at the end.
struct Sm2Op {
    hasher: Option<Sm3>,
    key: Arc<Key>,
}

impl Sm2Op {
    fn new(key: &Arc<Key>, point: &[u8], id: &[u8]) -> Result<Sm2Op> {
        Ok(Sm2Op {
            hasher: Some(sm::sm2_sm3_hasher(point, id)?),
            key: Arc::clone(key),
        })
    }
    fn digest(&mut self) -> Result<[u8; 32]> {
        Ok(self
            .hasher
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finalize())
    }
    fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.hasher
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(data);
        Ok(())
    }
}

impl Signer for Sm2Op {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let e = self.digest()?;
        let (d, _) = sm2_private(&self.key)?;
        Ok(sm::sm2_sign_digest(d, &e)?.to_vec())
    }
    fn signature_len(&self) -> usize {
        64
    }
}

impl Verifier for Sm2Op {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let e = self.digest()?;
        sm::sm2_verify_digest(sm2_public(&self.key)?, &e, signature)
    }
}

impl Mechanism for Sm2Sm3 {
    fn kind(&self) -> MechType {
        CKM_SM2_SM3
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(256, 256, CKF_SIGN | CKF_VERIFY)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        let id = distinguishing_id(param)?;
        let (_, point) = sm2_private(key)?;
        Ok(Box::new(Sm2Op::new(key, point, &id)?))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        let id = distinguishing_id(param)?;
        let point = sm2_public(key)?;
        Ok(Box::new(Sm2Op::new(key, point, &id)?))
    }
}

/// C1 (65) + C3 (32) around the plaintext.
const SM2_OVERHEAD: usize = 97;

impl Mechanism for Sm2Encrypt {
    fn kind(&self) -> MechType {
        CKM_SM2_ENCRYPT
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(256, 256, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP)
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        no_param(param)?;
        sm2_public(key)?;
        let key = Arc::clone(key);
        Ok(buffered::cipher(
            buffered::BULK_CAP,
            Error::DataLenRange,
            |n| n + SM2_OVERHEAD,
            move |data| Ok(Zeroizing::new(sm::sm2_encrypt(sm2_public(&key)?, data)?)),
        ))
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        no_param(param)?;
        sm2_private(key)?;
        let key = Arc::clone(key);
        Ok(buffered::cipher(
            buffered::BULK_CAP,
            Error::EncryptedDataLenRange,
            |n| n,
            move |data| sm::sm2_decrypt(sm2_private(&key)?.0, data),
        ))
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        no_param(param)?;
        sm::sm2_encrypt(sm2_public(wrapping)?, material)
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        no_param(param)?;
        sm::sm2_decrypt(sm2_private(unwrapping)?.0, wrapped).map_err(|e| match e {
            Error::EncryptedDataLenRange => Error::WrappedKeyLenRange,
            _ => Error::WrappedKeyInvalid,
        })
    }
}

struct Sm3Op(Option<Sm3>);

impl Digester for Sm3Op {
    fn update(&mut self, data: &[u8]) {
        if let Some(h) = self.0.as_mut() {
            h.update(data);
        }
    }
    fn finish(&mut self) -> Vec<u8> {
        self.0
            .take()
            .map(|h| h.finalize().to_vec())
            .unwrap_or_default()
    }
    fn output_len(&self) -> usize {
        32
    }
}

impl Mechanism for Sm3Digest {
    fn kind(&self) -> MechType {
        CKM_SM3
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(0, 0, CKF_DIGEST)
    }
    fn digest(&self, param: &Param) -> Result<Box<dyn Digester>> {
        no_param(param)?;
        Ok(Box::new(Sm3Op(Some(Sm3::new()))))
    }
}

impl Mechanism for Sm4KeyGen {
    fn kind(&self) -> MechType {
        CKM_SM4_KEY_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(16, 16, CKF_GENERATE)
    }
    fn generate_key(&self, param: &Param, req: &KeyRequest) -> Result<(KeyType, Generated)> {
        no_param(param)?;
        if req.value_len.is_some_and(|l| l != 16) {
            // A template value the generation cannot take (C_GenerateKey, §5.14).
            return Err(Error::AttributeValueInvalid);
        }
        let key = sm::sm4_generate_key()?;
        Ok((CKK_SM4, vec![(CKA_VALUE, Value::Bytes(key.to_vec()))]))
    }
}

/// The GCM tag length in bytes; one this machine cannot hold is a bad parameter.
fn gcm_tag_len(g: &super::params::GcmParams) -> Result<usize> {
    usize::try_from(g.tag_bits / 8).map_err(|_| Error::MechanismParamInvalid)
}

impl Sm4 {
    /// Encrypts or decrypts `data` in one go with this mode and `param`.
    fn run(
        &self,
        param: &Param,
        key: &[u8],
        encrypt: bool,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        match (self.0, param, encrypt) {
            (CKM_SM4_ECB, Param::None, true) => Ok(Zeroizing::new(sm::sm4_ecb_encrypt(key, data)?)),
            (CKM_SM4_ECB, Param::None, false) => sm::sm4_ecb_decrypt(key, data),
            (CKM_SM4_CBC | CKM_SM4_CBC_PAD, Param::Bytes(iv), true) => Ok(Zeroizing::new(
                sm::sm4_cbc_encrypt(key, iv, data, self.0 == CKM_SM4_CBC_PAD)?,
            )),
            (CKM_SM4_CBC | CKM_SM4_CBC_PAD, Param::Bytes(iv), false) => {
                sm::sm4_cbc_decrypt(key, iv, data, self.0 == CKM_SM4_CBC_PAD)
            }
            (CKM_SM4_GCM, Param::Gcm(g), true) => Ok(Zeroizing::new(sm::sm4_gcm_encrypt(
                key,
                &g.iv,
                &g.aad,
                data,
                gcm_tag_len(g)?,
            )?)),
            (CKM_SM4_GCM, Param::Gcm(g), false) => {
                sm::sm4_gcm_decrypt(key, &g.iv, &g.aad, data, gcm_tag_len(g)?)
            }
            _ => Err(Error::MechanismParamInvalid),
        }
    }

    fn op(&self, param: &Param, key: &Arc<Key>, encrypt: bool) -> Result<Box<dyn Cipher>> {
        if let Param::Gcm(g) = param {
            if g.tag_bits % 8 != 0 {
                return Err(Error::MechanismParamInvalid);
            }
        }
        // Check the parameter against the key now: an empty run fails as a bad
        // parameter would, and succeeds otherwise (GCM accepts empty input).
        let secret = sm4_key(key)?;
        if self.0 == CKM_SM4_GCM {
            self.run(param, secret, true, &[])?;
        } else if !matches!(
            (self.0, param),
            (CKM_SM4_ECB, Param::None) | (CKM_SM4_CBC | CKM_SM4_CBC_PAD, Param::Bytes(_))
        ) {
            return Err(Error::MechanismParamInvalid);
        }
        let (mech, param, key) = (Sm4(self.0), param.clone(), Arc::clone(key));
        let tag = match &param {
            Param::Gcm(g) => gcm_tag_len(g)?,
            _ => 16,
        };
        let too_long = if encrypt {
            Error::DataLenRange
        } else {
            Error::EncryptedDataLenRange
        };
        Ok(buffered::cipher(
            buffered::BULK_CAP,
            too_long,
            move |n| n + tag,
            move |data| mech.run(&param, sm4_key(&key)?, encrypt, data),
        ))
    }
}

impl Mechanism for Sm4 {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        let wrap = if self.0 == CKM_SM4_GCM {
            0
        } else {
            CKF_WRAP | CKF_UNWRAP
        };
        info(16, 16, CKF_ENCRYPT | CKF_DECRYPT | wrap)
    }
    fn unwrap_unauthenticated(&self) -> bool {
        self.0 != CKM_SM4_GCM
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        self.op(param, key, true)
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        self.op(param, key, false)
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        if self.0 == CKM_SM4_GCM {
            return Err(Error::MechanismInvalid);
        }
        Ok(self
            .run(param, sm4_key(wrapping)?, true, material)
            .map_err(|e| match e {
                Error::DataLenRange => Error::KeySizeRange,
                e => e,
            })?
            .to_vec())
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if self.0 == CKM_SM4_GCM {
            return Err(Error::MechanismInvalid);
        }
        let kek = sm4_key(unwrapping)?;
        let unwrap_errors = |e| match e {
            Error::EncryptedDataLenRange => Error::WrappedKeyLenRange,
            Error::EncryptedDataInvalid => Error::WrappedKeyInvalid,
            e => e,
        };
        if self.0 != CKM_SM4_CBC_PAD {
            return self.run(param, kek, false, wrapped).map_err(unwrap_errors);
        }
        // Decrypted without unpadding: `keypad::unpad` judges the padding, with
        // implicit rejection (as AES's unwrap).
        let plain = Sm4(CKM_SM4_CBC)
            .run(param, kek, false, wrapped)
            .map_err(unwrap_errors)?;
        let iv: &[u8] = match param {
            Param::Bytes(iv) => iv,
            _ => &[],
        };
        super::keypad::unpad(
            plain,
            expected,
            16,
            super::keypad::Padding::Pkcs7,
            kek,
            iv,
            wrapped,
        )
    }
}

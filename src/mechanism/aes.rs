//! AES mechanisms (128, 192 and 256-bit keys; sizes in bytes): `CKM_AES_KEY_GEN`,
//! `CKM_AES_ECB`, `CKM_AES_CBC`, `CKM_AES_CBC_PAD`, `CKM_AES_CTR`, `CKM_AES_GCM`,
//! `CKM_AES_CMAC`, and the key wraps `CKM_AES_KEY_WRAP` (RFC 3394) and RFC 5649 under both
//! numbers in use, `CKM_AES_KEY_WRAP_PAD` and `CKM_AES_KEY_WRAP_KWP` (DESIGN.md §7).

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::{
    aes_key, buffered, info, keypad, no_param, Generated, KeyRequest, Mechanism, Param, WrappedLen,
};
use crate::crypto::aes::{self, AesStream, Cmac, Direction};
use crate::error::{Error, Result};
use crate::mechanism::params::Iv;
use crate::object::attr::Value;
use crate::object::key::Key;
use crate::operation::{Cipher, Signer, Verifier};

/// RFC 3394's default IV and RFC 5649's alternative IV prefix.
const KW_DEFAULT_IV: [u8; 8] = [0xa6; 8];
const KWP_DEFAULT_IV: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];
/// RFC 3394's unit: the plaintext is whole 64-bit semiblocks.
const KW_SEMIBLOCK: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ecb,
    Cbc,
    CbcPad,
    Ctr,
}

#[derive(Debug)]
pub(super) struct KeyGen;
#[derive(Debug)]
pub(super) struct Block(MechType, Mode);
#[derive(Debug)]
pub(super) struct Gcm;
#[derive(Debug)]
pub(super) struct CmacMech;
#[derive(Debug)]
pub(super) struct KeyWrap;
#[derive(Debug)]
pub(super) struct KeyWrapPad(MechType);

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &KeyGen,
    &Block(CKM_AES_ECB, Mode::Ecb),
    &Block(CKM_AES_CBC, Mode::Cbc),
    &Block(CKM_AES_CBC_PAD, Mode::CbcPad),
    &Block(CKM_AES_CTR, Mode::Ctr),
    &Gcm,
    &CmacMech,
    &KeyWrap,
    &KeyWrapPad(CKM_AES_KEY_WRAP_PAD),
    &KeyWrapPad(CKM_AES_KEY_WRAP_KWP),
];

impl Mechanism for KeyGen {
    fn kind(&self) -> MechType {
        CKM_AES_KEY_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(16, 32, CKF_GENERATE)
    }
    fn generate_key(&self, param: &Param, req: &KeyRequest) -> Result<(KeyType, Generated)> {
        no_param(param)?;
        let len = req.value_len.ok_or(Error::TemplateIncomplete)?;
        if !matches!(len, 16 | 24 | 32) {
            // A template value the generation cannot take (C_GenerateKey, §5.14).
            return Err(Error::AttributeValueInvalid);
        }
        let len = usize::try_from(len).map_err(|_| Error::AttributeValueInvalid)?;
        let value = aes::generate_key(len)?;
        Ok((CKK_AES, vec![(CKA_VALUE, Value::Bytes(value.to_vec()))]))
    }
}

/// A streaming mode under `AesStream`; the stream is consumed by `finish`.
struct Stream(Option<AesStream>);

impl Cipher for Stream {
    fn update(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.0
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(input)
    }
    fn finish(&mut self) -> Result<Zeroizing<Vec<u8>>> {
        self.0
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finish()
    }
    fn update_bound(&self, input_len: usize) -> usize {
        self.0.as_ref().map_or(0, |s| s.update_len_bound(input_len))
    }
    fn finish_bound(&self) -> usize {
        self.0.as_ref().map_or(0, AesStream::finish_len_bound)
    }
    fn one_shot_bound(&self, input_len: usize) -> usize {
        self.0.as_ref().map_or(0, |s| s.total_len_bound(input_len))
    }
}

impl Block {
    fn stream(&self, param: &Param, key: &Key, dir: Direction) -> Result<AesStream> {
        let key = aes_key(key)?;
        match (self.1, param) {
            (Mode::Ecb, Param::None) => AesStream::ecb(key, dir),
            (Mode::Cbc | Mode::CbcPad, Param::Bytes(iv)) if iv.len() == 16 => {
                AesStream::cbc(key, iv, dir, self.1 == Mode::CbcPad)
            }
            (
                Mode::Ctr,
                Param::Ctr {
                    counter_bits,
                    block,
                },
            ) => {
                let bits =
                    usize::try_from(*counter_bits).map_err(|_| Error::MechanismParamInvalid)?;
                AesStream::ctr(key, block, bits, dir)
            }
            _ => Err(Error::MechanismParamInvalid),
        }
    }

    fn one_shot(
        &self,
        param: &Param,
        key: &Key,
        dir: Direction,
        input: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.stream(param, key, dir)?.run(input)
    }
}

impl Mechanism for Block {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        let wrap = if self.1 != Mode::Ctr {
            CKF_WRAP | CKF_UNWRAP
        } else {
            0
        };
        info(16, 32, CKF_ENCRYPT | CKF_DECRYPT | wrap)
    }
    fn unwrap_unauthenticated(&self) -> bool {
        self.1 != Mode::Ctr
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        Ok(Box::new(Stream(Some(self.stream(
            param,
            key,
            Direction::Encrypt,
        )?))))
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        Ok(Box::new(Stream(Some(self.stream(
            param,
            key,
            Direction::Decrypt,
        )?))))
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        let material = match self.1 {
            Mode::CbcPad => Zeroizing::new(material.to_vec()),
            // ECB and CBC without padding (PKCS#11 3.0 §2.10.3, §2.10.4): the value is
            // padded on the trailing end with up to 15 zero bytes to whole blocks.
            Mode::Ecb | Mode::Cbc => keypad::zero_padded(material, aes::BLOCK_LEN)?,
            Mode::Ctr => return Err(Error::MechanismInvalid),
        };
        Ok(self
            .one_shot(param, wrapping, Direction::Encrypt, &material)?
            .to_vec())
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if self.1 == Mode::Ctr {
            return Err(Error::MechanismInvalid);
        }
        if wrapped.is_empty() {
            return Err(Error::WrappedKeyLenRange);
        }
        // Decrypted without unpadding: `keypad::unpad` judges the padding, with
        // implicit rejection.
        let (raw, padding) = match self.1 {
            Mode::CbcPad => (Block(self.0, Mode::Cbc), keypad::Padding::Pkcs7),
            _ => (Block(self.0, self.1), keypad::Padding::Zero),
        };
        let plain = raw
            .one_shot(param, unwrapping, Direction::Decrypt, wrapped)
            .map_err(|e| match e {
                Error::EncryptedDataLenRange | Error::DataLenRange => Error::WrappedKeyLenRange,
                Error::EncryptedDataInvalid => Error::WrappedKeyInvalid,
                e => e,
            })?;
        let iv: &[u8] = match param {
            Param::Bytes(iv) => iv,
            _ => &[],
        };
        keypad::unpad(
            plain,
            expected,
            aes::BLOCK_LEN,
            padding,
            aes_key(unwrapping)?,
            iv,
            wrapped,
        )
    }
}

/// A GCM encryption's primitive: ciphertext and tag into a vector of its own or, for a
/// single-part call, straight into the caller's buffer (ciphertext is no secret).
struct GcmSeal {
    key: Arc<Key>,
    iv: Iv,
    aad: Vec<u8>,
    tag_bits: usize,
}

impl buffered::WholeInput for GcmSeal {
    fn run(&mut self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (value, prepared) = self.key.aes_gcm()?;
        let sealed =
            aes::gcm_encrypt_prepared(prepared, value, &self.iv, &self.aad, data, self.tag_bits)?;
        Ok(Zeroizing::new(sealed))
    }
    fn run_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<Option<usize>> {
        let (value, prepared) = self.key.aes_gcm()?;
        aes::gcm_encrypt_prepared_into(
            prepared,
            value,
            &self.iv,
            &self.aad,
            data,
            self.tag_bits,
            out,
        )
    }
}

/// A GCM decryption's primitive: plaintext into a vector of its own or, for a single-part
/// call, into the caller's buffer once its tag has been checked
/// (`aes::gcm_decrypt_prepared_into`: never unauthenticated plaintext there).
struct GcmOpen {
    key: Arc<Key>,
    iv: Iv,
    aad: Vec<u8>,
    tag_bits: usize,
}

impl buffered::WholeInput for GcmOpen {
    fn run(&mut self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (value, prepared) = self.key.aes_gcm()?;
        aes::gcm_decrypt_prepared(prepared, value, &self.iv, &self.aad, data, self.tag_bits)
    }
    fn run_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<Option<usize>> {
        let (value, prepared) = self.key.aes_gcm()?;
        aes::gcm_decrypt_prepared_into(
            prepared,
            value,
            &self.iv,
            &self.aad,
            data,
            self.tag_bits,
            out,
        )
    }
    /// The input less the tag: the caller's buffer needs room for the plaintext only.
    fn exact_len(&self, input_len: usize) -> Option<usize> {
        input_len.checked_sub(self.tag_bits / 8)
    }
}

/// The stack a GCM step on so many input bytes may leave secrets in: the measured reach
/// on aws-lc's AEAD path (shallower for small inputs), the whole scrub area on any other
/// (an odd IV or a short tag: unmeasured).
fn gcm_reach(iv: &[u8], tag_bits: usize) -> fn(usize) -> usize {
    use crate::secret_use::{AES_GCM_REACH, AES_GCM_SMALL_INPUT, AES_GCM_SMALL_REACH, WHOLE};
    if aes::gcm_fast_path(iv, tag_bits) {
        |input_len| {
            if input_len <= AES_GCM_SMALL_INPUT {
                AES_GCM_SMALL_REACH
            } else {
                AES_GCM_REACH
            }
        }
    } else {
        |_| WHOLE
    }
}

/// GCM parameters as the primitive wants them.
fn gcm_params(param: &Param) -> Result<(Iv, Vec<u8>, usize)> {
    let Param::Gcm(p) = param else {
        return Err(Error::MechanismParamInvalid);
    };
    // PKCS#11 allows IVs of 1 to 2^32-1 bytes; the C boundary caps every input.
    if p.iv.is_empty() {
        return Err(Error::MechanismParamInvalid);
    }
    let tag_bits = usize::try_from(p.tag_bits).map_err(|_| Error::MechanismParamInvalid)?;
    Ok((p.iv.clone(), p.aad.clone(), tag_bits))
}

impl Mechanism for Gcm {
    fn kind(&self) -> MechType {
        CKM_AES_GCM
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            16,
            32,
            CKF_ENCRYPT | CKF_DECRYPT | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT,
        )
    }
    fn message_aead(&self, key: &Arc<Key>) -> Result<Box<dyn super::message::Aead>> {
        super::message::aes_gcm(key)
    }
    // Init checks the parameters and computes nothing: the key schedule is the key's own,
    // prepared once (`Key::aes_gcm`), so an init handles no secret (`init_handles_secret`).
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        let (iv, aad, tag_bits) = gcm_params(param)?;
        aes::gcm_check(aes_key(key)?, &iv, tag_bits)?;
        let reach = gcm_reach(&iv, tag_bits);
        Ok(buffered::cipher_direct(
            reach,
            buffered::BULK_CAP,
            Error::DataLenRange,
            move |n| n + tag_bits / 8,
            GcmSeal {
                key: Arc::clone(key),
                iv,
                aad,
                tag_bits,
            },
        ))
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        let (iv, aad, tag_bits) = gcm_params(param)?;
        aes::gcm_check(aes_key(key)?, &iv, tag_bits)?;
        let reach = gcm_reach(&iv, tag_bits);
        Ok(buffered::cipher_direct(
            reach,
            buffered::BULK_CAP,
            Error::EncryptedDataLenRange,
            |n| n,
            GcmOpen {
                key: Arc::clone(key),
                iv,
                aad,
                tag_bits,
            },
        ))
    }
    fn init_handles_secret(&self) -> bool {
        false
    }
}

struct CmacOp(Option<Cmac>);

impl Signer for CmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.0
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .0
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .finalize()?
            .to_vec())
    }
    fn signature_len(&self) -> usize {
        aes::BLOCK_LEN
    }
}

impl Verifier for CmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Signer::update(self, data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != aes::BLOCK_LEN {
            return Err(Error::SignatureLenRange);
        }
        self.0
            .take()
            .ok_or(Error::OperationNotInitialized)?
            .verify(signature)
    }
}

impl Mechanism for CmacMech {
    fn kind(&self) -> MechType {
        CKM_AES_CMAC
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(16, 32, CKF_SIGN | CKF_VERIFY)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        no_param(param)?;
        Ok(Box::new(CmacOp(Some(Cmac::new(aes_key(key)?)?))))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        no_param(param)?;
        Ok(Box::new(CmacOp(Some(Cmac::new(aes_key(key)?)?))))
    }
}

/// Accepts only the default IV of the wrap algorithm, given or implied.
fn default_iv(param: &Param, iv: &[u8]) -> Result<()> {
    match param {
        Param::None => Ok(()),
        Param::Bytes(given) if given == iv => Ok(()),
        _ => Err(Error::MechanismParamInvalid),
    }
}

fn unwrap_errors(e: Error) -> Error {
    match e {
        Error::DataLenRange | Error::EncryptedDataLenRange => Error::WrappedKeyLenRange,
        e => e,
    }
}

impl Mechanism for KeyWrap {
    fn kind(&self) -> MechType {
        CKM_AES_KEY_WRAP
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(16, 32, CKF_WRAP | CKF_UNWRAP)
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        default_iv(param, &KW_DEFAULT_IV)?;
        // PKCS#11 3.0 §2.14: a key whose length is not a multiple of the 8-byte semiblock
        // (a PKCS#8 private key, usually) is zero padded to fit.
        let material = keypad::zero_padded(material, KW_SEMIBLOCK)?;
        aes::key_wrap(aes_key(wrapping)?, &material).map_err(|e| match e {
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
        default_iv(param, &KW_DEFAULT_IV)?;
        let plain = aes::key_unwrap(aes_key(unwrapping)?, wrapped).map_err(unwrap_errors)?;
        // The zero padding of `wrap` is cut as ECB/CBC unwraps cut theirs: to
        // CKA_VALUE_LEN, the key type's length, or a private key's PKCS#8 length; but
        // only padding: the blob is authenticated, so refusing a cut of key bytes tells
        // nothing of a blob the caller altered, and a cut would make a key of a few
        // unknown bytes fewer than a wrapped key (review 15a).
        keypad::trim_authenticated_padding(plain, expected, KW_SEMIBLOCK)
    }
}

impl Mechanism for KeyWrapPad {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(16, 32, CKF_WRAP | CKF_UNWRAP)
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        default_iv(param, &KWP_DEFAULT_IV)?;
        aes::key_wrap_pad(aes_key(wrapping)?, material)
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        default_iv(param, &KWP_DEFAULT_IV)?;
        aes::key_unwrap_pad(aes_key(unwrapping)?, wrapped).map_err(unwrap_errors)
    }
}

//! DES and Triple-DES mechanisms, legacy only (available with `legacy_algorithms` on,
//! docs/security.md): `CKM_DES_KEY_GEN`, `CKM_DES2_KEY_GEN`, `CKM_DES3_KEY_GEN`, and
//! `CKM_DES_ECB`/`CBC`/`CBC_PAD`, `CKM_DES3_ECB`/`CBC`/`CBC_PAD` for encryption,
//! decryption, wrapping and unwrapping (PKCS#11 3.0 mechanisms §2.x "DES", "Triple-DES",
//! the general block cipher rules of §2.10). Key sizes are in bytes.
//!
//! `CKM_DES_*` take `CKK_DES` keys (8 bytes); `CKM_DES3_*` take `CKK_DES2` (16 bytes, two-
//! key EDE) and `CKK_DES3` (24 bytes). Generated keys have odd parity; the object layer
//! refuses DES keys of other parity. This module must not be reachable with the switch
//! off: every mechanism here says `legacy()`.

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::{info, keypad, no_param, Generated, KeyRequest, Mechanism, Param, WrappedLen};
use crate::crypto::des::{self, DesStream, BLOCK_LEN};
use crate::error::{Error, Result};
use crate::object::attr::Value;
use crate::object::key::Key;
use crate::operation::Cipher;

#[derive(Debug)]
pub(super) struct KeyGen(MechType, KeyType, usize);

/// Single DES or Triple-DES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Des,
    Des3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ecb,
    Cbc,
    CbcPad,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Block(MechType, Alg, Mode);

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &KeyGen(CKM_DES_KEY_GEN, CKK_DES, 8),
    &KeyGen(CKM_DES2_KEY_GEN, CKK_DES2, 16),
    &KeyGen(CKM_DES3_KEY_GEN, CKK_DES3, 24),
    &Block(CKM_DES_ECB, Alg::Des, Mode::Ecb),
    &Block(CKM_DES_CBC, Alg::Des, Mode::Cbc),
    &Block(CKM_DES_CBC_PAD, Alg::Des, Mode::CbcPad),
    &Block(CKM_DES3_ECB, Alg::Des3, Mode::Ecb),
    &Block(CKM_DES3_CBC, Alg::Des3, Mode::Cbc),
    &Block(CKM_DES3_CBC_PAD, Alg::Des3, Mode::CbcPad),
];

impl Mechanism for KeyGen {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(self.2 as u64, self.2 as u64, CKF_GENERATE)
    }
    fn legacy(&self) -> bool {
        true
    }
    fn generate_key(&self, param: &Param, req: &KeyRequest) -> Result<(KeyType, Generated)> {
        no_param(param)?;
        if req.value_len.is_some_and(|l| l != self.2 as u64) {
            // The key type fixes the length (C_GenerateKey, §5.14).
            return Err(Error::AttributeValueInvalid);
        }
        let value = des::generate_key(self.2)?;
        Ok((self.1, vec![(CKA_VALUE, Value::Bytes(value.to_vec()))]))
    }
}

impl Block {
    /// The key's bytes, checked for the key types this algorithm takes.
    fn key_bytes<'k>(&self, key: &'k Key) -> Result<&'k [u8]> {
        match (self.1, key.key_type) {
            (Alg::Des, CKK_DES) => key.secret_of(CKK_DES, &[8]),
            (Alg::Des3, CKK_DES2) => key.secret_of(CKK_DES2, &[16]),
            (Alg::Des3, CKK_DES3) => key.secret_of(CKK_DES3, &[24]),
            _ => Err(Error::KeyTypeInconsistent),
        }
    }

    /// The IV the mode needs: none for ECB, 8 bytes for CBC.
    fn iv(self, param: &Param) -> Result<Option<Vec<u8>>> {
        match (self.2, param) {
            (Mode::Ecb, Param::None) => Ok(None),
            (Mode::Cbc | Mode::CbcPad, Param::Bytes(iv)) if iv.len() == BLOCK_LEN => {
                Ok(Some(iv.clone()))
            }
            _ => Err(Error::MechanismParamInvalid),
        }
    }

    fn run(
        self,
        key: &[u8],
        iv: Option<&[u8]>,
        encrypt: bool,
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let pad = self.2 == Mode::CbcPad;
        if encrypt {
            Ok(Zeroizing::new(des::encrypt(key, iv, data, pad)?))
        } else {
            des::decrypt(key, iv, data, pad)
        }
    }

    fn op(&self, param: &Param, key: &Arc<Key>, encrypt: bool) -> Result<Box<dyn Cipher>> {
        let iv = self.iv(param)?;
        let stream = DesStream::new(
            self.key_bytes(key)?,
            iv.as_deref(),
            encrypt,
            self.2 == Mode::CbcPad,
        )?;
        Ok(Box::new(Stream(Some(stream))))
    }
}

/// A multi-part operation over `DesStream`; the stream is consumed by `finish`.
struct Stream(Option<DesStream>);

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
        self.0.as_ref().map_or(0, |s| s.update_len(input_len))
    }
    fn finish_bound(&self) -> usize {
        self.0.as_ref().map_or(0, DesStream::finish_len)
    }
    fn one_shot_bound(&self, input_len: usize) -> usize {
        self.0.as_ref().map_or(0, |s| s.total_len(input_len))
    }
}

impl Mechanism for Block {
    fn kind(&self) -> MechType {
        self.0
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        let (min, max) = match self.1 {
            Alg::Des => (8, 8),
            Alg::Des3 => (16, 24),
        };
        info(min, max, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP)
    }
    fn legacy(&self) -> bool {
        true
    }
    fn unwrap_unauthenticated(&self) -> bool {
        true
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        self.op(param, key, true)
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        self.op(param, key, false)
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        let iv = self.iv(param)?;
        let material = match self.2 {
            Mode::CbcPad => Zeroizing::new(material.to_vec()),
            // ECB and CBC: padded on the trailing end with zero bytes (§2.10.3-4).
            Mode::Ecb | Mode::Cbc => keypad::zero_padded(material, BLOCK_LEN)?,
        };
        Ok(self
            .run(self.key_bytes(wrapping)?, iv.as_deref(), true, &material)?
            .to_vec())
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let iv = self.iv(param)?;
        if wrapped.is_empty() {
            return Err(Error::WrappedKeyLenRange);
        }
        // Decrypted without unpadding: `keypad::unpad` judges the padding, with
        // implicit rejection (as AES's unwrap).
        let (raw, padding) = match self.2 {
            Mode::CbcPad => (Block(self.0, self.1, Mode::Cbc), keypad::Padding::Pkcs7),
            _ => (*self, keypad::Padding::Zero),
        };
        let kek = self.key_bytes(unwrapping)?;
        let plain = raw
            .run(kek, iv.as_deref(), false, wrapped)
            .map_err(|e| match e {
                Error::EncryptedDataLenRange => Error::WrappedKeyLenRange,
                Error::EncryptedDataInvalid => Error::WrappedKeyInvalid,
                e => e,
            })?;
        keypad::unpad(
            plain,
            expected,
            BLOCK_LEN,
            padding,
            kek,
            iv.as_deref().unwrap_or_default(),
            wrapped,
        )
    }
}

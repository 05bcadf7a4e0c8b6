//! The Chinese commercial algorithms ("ShangMi"): SM2 public-key cryptography, the SM3
//! hash and the SM4 block cipher, as thin wrappers over the RustCrypto `sm2`, `sm3`,
//! `sm4`, `cbc` and `aes-gcm` crates (the cipher-0.5 generation).
//!
//! Like the rest of `crypto/`, this module takes and returns plain bytes: it knows nothing
//! of sessions, objects or PKCS#11 structures, and it never logs. Randomness comes only
//! from `crypto::rand::random_fill` (aws-lc), so the module has one random source.
//!
//! Errors name the caller's mistake: wrong key sizes are `KeySizeRange`, bad IV, tag or
//! identifier lengths `MechanismParamInvalid`, bad plaintext lengths `DataLenRange`, and
//! ciphertexts that are too short, mis-padded or fail to authenticate
//! `EncryptedDataLenRange` / `EncryptedDataInvalid`. `Internal` is kept for impossible
//! states.

mod sm2;
mod sm3;
mod sm4;

#[cfg(test)]
mod openssl_interop;
#[cfg(test)]
mod test_support;

pub(crate) use self::sm2::{
    sm2_check_public, sm2_decrypt, sm2_public_from_private, sm2_sign_digest, sm2_sm3_hasher,
    sm2_verify_digest, OID_SM2,
};
#[cfg(test)]
use self::sm2::{sm2_decrypt_der, sm2_encrypt_der, sm2_sign_sm3, sm2_verify_sm3};
pub use self::sm2::{sm2_encrypt, sm2_generate, SM2_DEFAULT_ID};
pub use self::sm3::sm3;
pub(crate) use self::sm3::Sm3;
pub(crate) use self::sm4::{
    sm4_cbc_decrypt, sm4_cbc_encrypt, sm4_ecb_decrypt, sm4_gcm_decrypt, sm4_gcm_encrypt,
};
pub use self::sm4::{sm4_ecb_encrypt, sm4_generate_key};

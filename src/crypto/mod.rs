//! Thin wrappers over the cryptographic primitives: aws-lc-rs for RSA, ECDSA, AES,
//! Ed25519 and X25519 (aws-lc itself, through `aws-lc-sys`, where aws-lc-rs has no
//! call or a costly one: raw RSA, ECDSA signing, Ed25519ctx/ph), RustCrypto for SM2,
//! SM3, SM4 and (legacy only) DES and for the DER key encodings (`pkcs1`, `pkcs8`,
//! `sec1`, `spki` over `der`), and the system's OpenSSL 3 libcrypto, opened at run time,
//! for Ed448 and X448 (`curve448.rs`).
//!
//! Functions here take and return plain bytes and `crate::error::Result`; they know
//! nothing of sessions, objects or PKCS#11 structures, so the mechanism layer can be
//! tested against published vectors through them and through the C ABI alike.
//! Secrets they return are zeroizing; they never log.
pub mod aes;
pub mod asn1;
pub mod curve25519;
#[allow(unsafe_code)] // Ed448 from libcrypto.so.3, opened at run time; see curve448.rs
pub(crate) mod curve448;
pub(crate) mod des;
pub mod ec;
#[allow(unsafe_code)] // aws-lc's ECDSA_do_sign; see ecdsa_sign.rs
mod ecdsa_sign;
#[allow(unsafe_code)] // aws-lc's Ed25519ctx/ph; see ed25519_variants.rs
pub(crate) mod ed25519_variants;
pub mod hash;
pub mod pkcs8;
pub mod rand;
pub mod rsa;
pub mod sm;

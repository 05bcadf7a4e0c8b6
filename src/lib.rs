//! kmshsm: a PKCS#11 module whose keys follow the cloud-KMS "bring your own key" model.
//!
//! Layers point inwards (see docs/architecture.md): `ffi` (the C ABI) → `provider`,
//! `token`, `session`, `object`, `mechanism` (PKCS#11 semantics over safe types) → `kms`
//! (the key model, no `CK_*` types) → `store` (transactional persistence and at-rest
//! sealing). Below them all, `os` holds the memory mappings. `unsafe` is allowed in
//! `ffi`, `os`, `crypto::rsa::raw`, `crypto::ecdsa_sign`, `crypto::ed25519_variants` and
//! `crypto::curve448`
//! (Ed448 and X448 from the system's libcrypto.so.3, opened at run time: aws-lc has no
//! Curve448) only.

#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]
// CK_ULONG is u64 on this target but u32 on others; casts between CK_ULONG and u64 are
// needed there, so clippy's same-type cast lint would only push non-portable code.
#![allow(clippy::unnecessary_cast)]

pub mod ck;
pub mod config;
pub mod crypto;
pub mod error;
mod ffi;
pub mod ids;
pub mod kms;
mod legacy;
mod logging;
pub mod mechanism;
pub mod object;
pub mod operation;
#[allow(unsafe_code)] // memory mappings; see os/mod.rs
mod os;
pub mod provider;
mod secret_use;
pub mod session;
pub mod store;
pub mod token;
pub mod vendor;

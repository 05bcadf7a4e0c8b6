//! kmshsm: a PKCS#11 module whose keys follow the cloud-KMS "bring your own key" model.
//!
//! Layers point inwards (see docs/architecture.md): `ffi` (the C ABI, the only place
//! with `unsafe`) → `provider`, `token`, `session`, `object`, `mechanism` (PKCS#11
//! semantics over safe types) → `kms` (the key model, no `CK_*` types) → `store`
//! (transactional persistence and at-rest sealing).

#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod config;
pub mod error;
mod ffi;
pub mod kms;
mod logging;
pub mod mechanism;
pub mod object;
pub mod provider;
pub mod session;
pub mod store;
pub mod token;
pub mod vendor;

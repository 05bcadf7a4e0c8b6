//! The KMS key model: no `CK_*` type may appear below this line.
//!
//! `model` is the face: CreateKey, GetParametersForImport, ImportKeyMaterial,
//! DeleteKeyMaterial, the state changes and the sweep, run on current records through
//! the `records` trait the token implements. `key` names what a key is (KeyId, KeySpec,
//! usage, Origin, KeyState), `spec` is the one table of what each spec is, `lifecycle`
//! the one transition function, `decide` the rules as decisions on a key's current
//! facts, `material` the same-material rule, `import` the import parameters and tokens,
//! `audit` what an audit event says (the kms-docs' vocabulary), `blob` the
//! CiphertextBlob of the CLI's Encrypt, `byok` the import as tools without
//! vendor attributes see it, `clock` the injected time. The PKCS#11 layer (`token::kms`)
//! maps these onto objects and vendor attributes.

pub mod audit;
pub mod blob;
pub mod byok;
pub mod clock;
pub mod decide;
pub mod import;
pub mod key;
pub mod lifecycle;
pub mod material;
pub mod model;
pub mod records;
pub mod spec;

pub use crate::error::KmsError;

//! The KMS errors of the kms-docs (ImportKeyMaterial, GetParametersForImport), named as
//! the documents name them. `ffi::rv` maps each to a `CK_RV`; the CLI prints the codes.

/// A refusal by the key model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The material is not what the key takes: wrong size or spec, or not the material
    /// the key is bound to.
    #[error("InvalidKeyMaterial: key material is invalid")]
    InvalidKeyMaterial,
    /// The import token does not authenticate, or names another key or wrapping key.
    #[error("InvalidImportToken: import token is invalid")]
    InvalidImportToken,
    #[error("ExpiredImportToken: import token is expired")]
    ExpiredImportToken,
    /// The operation needs an EXTERNAL key.
    #[error("Unsupported.Origin: this key origin is not valid for this api")]
    UnsupportedOrigin,
    #[error("InvalidParameter: {0}")]
    InvalidParameter(&'static str),
    #[error("NotFound: the specified key does not exist")]
    NotFound,
    /// The key's state does not allow the operation (a KMS "IncorrectKeyState").
    #[error("IncorrectKeyState: the key is {0}")]
    IncorrectKeyState(&'static str),
}

impl KmsError {
    /// The error code as the kms-docs spell it.
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::InvalidKeyMaterial => "InvalidKeyMaterial",
            KmsError::InvalidImportToken => "InvalidImportToken",
            KmsError::ExpiredImportToken => "ExpiredImportToken",
            KmsError::UnsupportedOrigin => "Unsupported.Origin",
            KmsError::InvalidParameter(_) => "InvalidParameter",
            KmsError::NotFound => "Forbidden.KeyNotFound",
            KmsError::IncorrectKeyState(_) => "IncorrectKeyState",
        }
    }
}

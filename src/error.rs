//! The crate's one error type.
//!
//! Everything below the C boundary returns `Result<T, Error>`. Only `ffi::rv` turns an
//! `Error` into a `CK_RV`, in one table. This module must not know about `CK_RV`.

/// Failures of the store layer. Kept apart so the store knows nothing of PKCS#11.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be read or written (I/O, locking, corruption).
    #[error("token database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A file-system operation on the token directory failed.
    #[error("token directory: {0}")]
    Io(#[from] std::io::Error),
    /// A record did not decode: wrong version, truncated, or tampered with.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// The database was written by a newer kmshsm.
    #[error("unsupported schema version {0}")]
    SchemaVersion(i64),
    /// The database was written by an older kmshsm, and was opened to be read as it is:
    /// only a use of the token (the module opening it in a slot) upgrades it in place.
    #[error(
        "schema version {0}, written by an older kmshsm: opened as it is, it is not \
         upgraded (the module upgrades a token it puts in a slot)"
    )]
    OlderSchema(i64),
    /// Sealed data did not authenticate under the token master key.
    #[error("sealed data failed to authenticate")]
    Unseal,
    /// A record's plain attributes did not authenticate under the token master key, or
    /// a record that must be authenticated was not: changed outside the module.
    #[error("a stored record failed authentication (changed outside the module)")]
    Tampered,
    /// The PostgreSQL server answered with an error (a constraint, a timeout it enforced,
    /// a permission) or the client failed to talk to it. Shown without the parts of the
    /// server's answer that may quote stored rows ([`ServerError`]).
    #[error("token database server: {0}")]
    Server(ServerError),
    /// The PostgreSQL server could not be reached, or the connection to it was lost
    /// before the call could have changed anything. The next call connects again.
    #[error("token database server unreachable: {0}")]
    Unreachable(String),
    /// The connection was lost while a commit was being acknowledged: the change may or
    /// may not have been made (it was not acknowledged, so the caller must not count it).
    #[error("token database server lost during commit; the outcome is unknown")]
    CommitUnknown,
    /// The configuration of the store (`store_url` and its options) cannot be used.
    #[error("store configuration: {0}")]
    Config(String),
    /// A PIN record was replaced between the check of a PIN against it and a change
    /// that depends on that check (`Change::RequirePin`); nothing was written.
    #[error("the PIN record changed since the PIN was checked")]
    PinRecordChanged,
    /// A metadata value is not the one a change was judged against
    /// (`Change::RequireMeta`); nothing was written.
    #[error("the token's metadata changed since the change was judged")]
    MetaChanged,
    /// The audit trail's checkpoint is not the one a re-keying verified (a prune
    /// committed meanwhile: `Change::RekeyAudit`); nothing was written.
    #[error("the audit checkpoint changed since the trail was verified")]
    AuditCheckpointChanged,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Server(ServerError(e))
    }
}

/// A PostgreSQL client error, shown (by `Display` and `Debug` alike) as the server's
/// severity, SQLSTATE and the names of the constraint, table and column it names, with
/// its message only for the classes of error whose messages quote no value. The rows of
/// a token hold wrapped keys, the PIN records' among them, and the server quotes values:
/// a constraint's `DETAIL` the failing row (`Failing row contains (...)`, `Key
/// (...)=(...)`), a data exception's message the value it could not take (`invalid input
/// syntax for type integer: "..."`: review 23c, through an administrator's CHECK that
/// casts a column), a PL/pgSQL `RAISE` whatever its author wrote. So `DETAIL`, `HINT` and
/// context are never shown, and a message only for [`MESSAGE_SHOWN`]'s classes. The
/// server's own log keeps the whole answer. Not an error `source` either, so that no
/// chain of causes reaches the hidden parts.
pub struct ServerError(tokio_postgres::Error);

/// The SQLSTATE classes whose messages name things (roles, databases, relations,
/// constraints, columns, types) but quote no value: connection exceptions (08),
/// integrity constraint violations (23: the constraint's name; the row is in `DETAIL`),
/// invalid transaction state (25), invalid authorization (28), invalid catalog name (3D),
/// transaction rollback (40), syntax errors or access rule violations (42), insufficient
/// resources (53), objects not in prerequisite state (55, a lock not available),
/// operator intervention (57, a shutdown, a cancelled statement) and system errors (58).
const MESSAGE_SHOWN: [&str; 11] = [
    "08", "23", "25", "28", "3D", "40", "42", "53", "55", "57", "58",
];

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&server_text(&self.0))
    }
}

/// A PostgreSQL client error as [`ServerError`] shows it: an answer of the server as its
/// severity, SQLSTATE, the names it gives and, for [`MESSAGE_SHOWN`]'s classes, its
/// message; the client's own failures with their causes.
pub(crate) fn server_text(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return with_causes(e);
    };
    let code = db.code().code();
    let mut text = format!("{} {code}", db.severity());
    for (what, name) in [
        ("constraint", db.constraint()),
        ("table", db.table()),
        ("column", db.column()),
    ] {
        if let Some(name) = name {
            text.push_str(&format!(" {what} {name:?}"));
        }
    }
    if MESSAGE_SHOWN.iter().any(|class| code.starts_with(class)) {
        text.push_str(&format!(": {}", db.message()));
    } else {
        text.push_str(" (the server's message is not shown: it may quote a value)");
    }
    text
}

impl std::fmt::Debug for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerError({self})")
    }
}

/// The KMS errors of the kms-docs (ImportKeyMaterial, GetParametersForImport), named as
/// the documents name them: a refusal by the key model (`kms/`). `ffi::rv` maps each to
/// a `CK_RV`; the CLI prints the codes. It lives here, beside the store's errors, so that
/// the one error type depends on no layer above it.
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

/// Every failure the module can report. Variants name what went wrong for the caller;
/// `ffi::rv` maps each to exactly one `CK_RV`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- the library and its arguments
    #[error("the library is not initialised")]
    NotInitialized,
    #[error("the library is already initialised")]
    AlreadyInitialized,
    #[error("bad arguments: {0}")]
    ArgumentsBad(&'static str),
    #[error("the locking callbacks supplied cannot be used")]
    CantLock,
    #[error("function not supported")]
    FunctionNotSupported,
    #[error("functions do not run in parallel")]
    FunctionNotParallel,
    #[error("configuration: {0}")]
    Config(String),
    #[error("a previous call panicked; the library must be re-initialised")]
    Poisoned,

    // --- slots, tokens, PINs, login
    #[error("no such slot")]
    SlotIdInvalid,
    #[error("the token is not initialised")]
    TokenNotRecognized,
    #[error("the token was re-initialised elsewhere since this process last read it")]
    TokenReinitialized,
    #[error("sessions are open on the token")]
    SessionExists,
    #[error("a read-only session exists")]
    SessionReadOnlyExists,
    #[error("the SO is logged in, so a read-only session cannot be opened")]
    SessionReadWriteSoExists,
    #[error("PIN incorrect")]
    PinIncorrect,
    #[error("PIN locked after too many failures")]
    PinLocked,
    #[error("PIN length out of range")]
    PinLenRange,
    #[error("PIN contains invalid characters")]
    PinInvalid,
    #[error("user not logged in")]
    UserNotLoggedIn,
    #[error("user already logged in")]
    UserAlreadyLoggedIn,
    #[error("another user is already logged in")]
    UserAnotherAlreadyLoggedIn,
    #[error("user PIN not initialised")]
    UserPinNotInitialized,
    #[error("invalid user type")]
    UserTypeInvalid,

    // --- sessions and operations
    #[error("invalid session handle")]
    SessionHandleInvalid,
    #[error("the session was closed while the call ran")]
    SessionClosed,
    #[error("parallel sessions are not supported")]
    SessionParallelNotSupported,
    #[error("the session is read-only")]
    SessionReadOnly,
    #[error("an operation of this kind is already active")]
    OperationActive,
    #[error("no operation of this kind is active")]
    OperationNotInitialized,

    // --- objects and attributes
    #[error("invalid object handle")]
    ObjectHandleInvalid,
    #[error("attribute type invalid")]
    AttributeTypeInvalid,
    #[error("attribute value invalid")]
    AttributeValueInvalid,
    #[error("attribute is read-only")]
    AttributeReadOnly,
    #[error("attribute is sensitive")]
    AttributeSensitive,
    #[error("template incomplete")]
    TemplateIncomplete,
    #[error("template inconsistent")]
    TemplateInconsistent,
    #[error("action prohibited by the object's attributes")]
    ActionProhibited,
    #[error("output buffer too small")]
    BufferTooSmall,

    // --- mechanisms, keys and data
    #[error("mechanism invalid")]
    MechanismInvalid,
    #[error("mechanism parameter invalid")]
    MechanismParamInvalid,
    #[error("key handle invalid")]
    KeyHandleInvalid,
    #[error("key size out of range")]
    KeySizeRange,
    #[error("key type inconsistent with the mechanism")]
    KeyTypeInconsistent,
    #[error("key function not permitted")]
    KeyFunctionNotPermitted,
    #[error("key not wrappable")]
    KeyNotWrappable,
    #[error("key unextractable")]
    KeyUnextractable,
    #[error("data invalid")]
    DataInvalid,
    #[error("data length out of range")]
    DataLenRange,
    #[error("encrypted data invalid")]
    EncryptedDataInvalid,
    #[error("encrypted data length out of range")]
    EncryptedDataLenRange,
    #[error("signature invalid")]
    SignatureInvalid,
    #[error("signature length out of range")]
    SignatureLenRange,
    #[error("wrapped key invalid")]
    WrappedKeyInvalid,
    #[error("wrapped key length out of range")]
    WrappedKeyLenRange,
    #[error("wrapping key handle invalid")]
    WrappingKeyHandleInvalid,
    #[error("unwrapping key handle invalid")]
    UnwrappingKeyHandleInvalid,
    #[error("wrapping key type inconsistent")]
    WrappingKeyTypeInconsistent,
    #[error("unwrapping key type inconsistent")]
    UnwrappingKeyTypeInconsistent,
    #[error("curve not supported")]
    CurveNotSupported,
    #[error("key cannot be digested")]
    KeyIndigestible,
    #[error("seeding the random generator is not supported")]
    RandomSeedNotSupported,
    #[error("the random generator failed")]
    RandomFailed,

    // --- the KMS key model
    #[error(transparent)]
    Kms(#[from] KmsError),

    // --- below the PKCS#11 layer
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other threads or processes kept committing while this call loaded token objects,
    /// so that every attempt read a point already overtaken; retrying the call succeeds.
    #[error("the object cache kept moving while being loaded")]
    CacheContention,
    /// Other threads or processes kept changing an object while this call changed its
    /// attributes, so that every attempt was judged on a version already overtaken;
    /// retrying the call succeeds.
    #[error("the object kept changing while its attributes were being changed")]
    ObjectContention,
    /// A broken invariant inside the module: always a bug, never caller-caused.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(StoreError::Database(e))
    }
}

/// An error followed by those of its causes that its message does not already say
/// ("error performing TLS handshake: ... certificate verify failed").
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

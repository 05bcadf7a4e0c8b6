//! The narrow interface the key model needs from whoever keeps key records: run one
//! decision on a key's current record inside one transaction, and write what it says.
//! The token implements it on PKCS#11 objects and the store (`token::kms::key_records`);
//! the tests of `kms::model` implement it in memory.
//!
//! It must not carry rules: an implementation maps records to `KeyFacts` and a
//! `Decision` back to records, nothing more. What the decision is belongs to
//! `kms::model` and `kms::decide`.

use super::audit::Operation;
use super::decide::KeyFacts;
use super::key::KeyId;
use crate::error::KmsError;

/// What a decision does to the key's material, beside the facts it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaterialChange<M> {
    /// The material stays as it is.
    Keep,
    /// The secret material goes (DeleteKeyMaterial, expiry); the binding stays.
    Wipe,
    /// The key takes this material (ImportKeyMaterial).
    Install(M),
}

/// What a decision asks the records to say next, and the operation the audit trail
/// records for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<M> {
    pub facts: KeyFacts,
    pub material: MaterialChange<M>,
    pub operation: Operation,
    /// An operation decided in the same decision before `operation`, recorded before it:
    /// the expiry of material a state change found expired (`decide::change_state`).
    pub preceded_by: Option<Operation>,
}

pub use super::decide::Current;

/// A decision on one key: `Ok(None)` when there is nothing to write.
pub type Decide<'a, M> = dyn FnMut(&Current) -> Result<Option<Decision<M>>, KmsError> + 'a;

/// Where key records live. Each call decides exactly once: concurrent callers, in
/// threads, processes or hosts, are serialised by the implementation's transaction,
/// so each decides on what the one before it wrote.
pub trait KeyRecords {
    /// What an import installs, in the implementation's own form.
    type Material: Clone;
    /// The implementation's error; a refusal of the key model is one of its values.
    type Error: From<KmsError>;

    /// The time decisions are made at (unix seconds), from the injected clock.
    fn now(&self) -> i64;

    /// Runs `decide` on the current record of key `id` and writes the decision with
    /// its audit event in the same transaction; a refusal or `None` writes nothing.
    /// With `need_binding`, a record that holds material but no recorded binding is
    /// given the binding of that material in `facts.bound` (and the decision writes it).
    fn decide_on(
        &self,
        id: &KeyId,
        need_binding: bool,
        decide: &mut Decide<'_, Self::Material>,
    ) -> Result<(), Self::Error>;

    /// `decide_on` for many keys, where the implementation may group them into fewer
    /// transactions (the sweep of many expiries). Each key is still decided on its own
    /// current record; an error on one key does not keep the others from being decided,
    /// and the first error is returned at the end.
    fn decide_on_each(
        &self,
        ids: &[KeyId],
        decide: &mut Decide<'_, Self::Material>,
    ) -> Result<(), Self::Error>;
}

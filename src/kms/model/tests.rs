//! The key model over an in-memory `KeyRecords`: the contract any record keeper must
//! give (one decision per call, on the current record, written with its event or not
//! at all) and the rules the model runs through it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};

use super::*;
use crate::kms::records::{Current, Decide};

/// One key's record in memory: its facts and the material it holds (a name for it).
#[derive(Debug, Clone)]
struct Record {
    facts: KeyFacts,
    material: Option<&'static str>,
}

/// Records kept in a map behind one lock: the lock is the transaction.
#[derive(Debug, Default)]
struct MemoryRecords {
    keys: Mutex<BTreeMap<KeyId, Record>>,
    events: Mutex<Vec<(KeyId, Operation)>>,
    now: i64,
}

impl MemoryRecords {
    fn with(id: &KeyId, facts: KeyFacts, material: Option<&'static str>) -> Self {
        let records = MemoryRecords::default();
        records
            .keys
            .lock()
            .unwrap()
            .insert(id.clone(), Record { facts, material });
        records
    }

    fn record(&self, id: &KeyId) -> Record {
        self.keys.lock().unwrap()[id].clone()
    }

    fn operations(&self) -> Vec<Operation> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, o)| *o)
            .collect()
    }
}

/// The binding a material name stands for.
fn fingerprint(material: &str) -> [u8; 32] {
    let mut fp = [0u8; 32];
    fp[..material.len()].copy_from_slice(material.as_bytes());
    fp
}

impl KeyRecords for MemoryRecords {
    type Material = &'static str;
    type Error = KmsError;

    fn now(&self) -> i64 {
        self.now
    }

    fn decide_on(
        &self,
        id: &KeyId,
        need_binding: bool,
        decide: &mut Decide<'_, &'static str>,
    ) -> Result<(), KmsError> {
        let mut keys = self.keys.lock().unwrap();
        let record = keys.get_mut(id).ok_or(KmsError::NotFound)?;
        let mut facts = record.facts.clone();
        if need_binding && facts.bound.is_none() {
            facts.bound = record.material.map(fingerprint);
        }
        let current = Current {
            facts,
            holds_material: record.material.is_some(),
            holds_secret: record.material.is_some(),
        };
        if let Some(decision) = decide(&current)? {
            match decision.material {
                MaterialChange::Keep => {}
                MaterialChange::Wipe => record.material = None,
                MaterialChange::Install(m) => record.material = Some(m),
            }
            record.facts = decision.facts;
            self.events
                .lock()
                .unwrap()
                .push((id.clone(), decision.operation));
        }
        Ok(())
    }

    fn decide_on_each(
        &self,
        ids: &[KeyId],
        decide: &mut Decide<'_, &'static str>,
    ) -> Result<(), KmsError> {
        let mut first = Ok(());
        for id in ids {
            if let Err(e) = self.decide_on(id, false, decide) {
                first = first.and(Err(e));
            }
        }
        first
    }
}

fn external(state: KeyState, bound: Option<&str>, expiry: i64) -> KeyFacts {
    KeyFacts {
        origin: Origin::External,
        state,
        bound: bound.map(fingerprint),
        expiry,
    }
}

fn import_of(material: &str, expiry: i64) -> ImportRequest {
    ImportRequest {
        fingerprint: fingerprint(material),
        expiry,
        token_expiry: i64::MAX,
    }
}

#[test]
fn a_new_key_without_material_waits_for_it_with_a_usage_its_spec_allows() {
    let key = create_key(Origin::External, Some(KeySpec::Aes256), None, false, None).unwrap();
    assert_eq!(key.facts.state, KeyState::PendingImport);
    assert_eq!(key.usage, Some(KeyUsage::EncryptDecrypt));
    let rsa = create_key(Origin::External, Some(KeySpec::Rsa2048), None, false, None).unwrap();
    assert_eq!(rsa.usage, None);
    assert_eq!(
        create_key(Origin::Kms, Some(KeySpec::Aes256), None, false, None),
        Err(KmsError::UnsupportedOrigin)
    );
    let encrypt = Some(KeyUsage::EncryptDecrypt);
    // A key waiting for material must name a usage its spec allows...
    assert!(matches!(
        create_key(
            Origin::External,
            Some(KeySpec::EcP256),
            encrypt,
            false,
            None
        ),
        Err(KmsError::InvalidParameter(_))
    ));
    // ...while one made with material keeps the usage it was given, as it always did.
    let given = create_key(Origin::External, Some(KeySpec::EcP256), encrypt, true, None);
    assert_eq!(given.unwrap().usage, encrypt);
    let made = create_key(Origin::Kms, Some(KeySpec::EcP256), None, true, None).unwrap();
    assert_eq!(
        (made.facts.state, made.facts.bound),
        (KeyState::Enabled, None)
    );
}

#[test]
fn import_parameters_need_an_external_key_not_being_deleted_and_a_fitting_algorithm() {
    let sm2 = WrappingAlgorithm::Sm2Pke;
    for state in [
        KeyState::PendingImport,
        KeyState::Enabled,
        KeyState::Disabled,
    ] {
        assert_eq!(
            check_import_parameters(Origin::External, Some(state), Some(KeySpec::Sm4), sm2),
            Ok(KeySpec::Sm4)
        );
    }
    assert!(matches!(
        check_import_parameters(
            Origin::External,
            Some(KeyState::PendingImport),
            Some(KeySpec::Rsa2048),
            WrappingAlgorithm::RsaesPkcs1V15
        ),
        Err(KmsError::InvalidParameter(_))
    ));
    assert_eq!(
        check_import_parameters(Origin::External, Some(KeyState::PendingImport), None, sm2),
        Err(KmsError::NotFound)
    );
    assert_eq!(
        check_import_parameters(Origin::External, None, Some(KeySpec::Sm4), sm2),
        Err(KmsError::NotFound),
        "a record without a state"
    );
    assert_eq!(
        check_import_parameters(
            Origin::External,
            Some(KeyState::PendingDeletion),
            Some(KeySpec::Sm4),
            sm2
        ),
        Err(KmsError::IncorrectKeyState("PendingDeletion"))
    );
    // The origin is judged first, whatever the state or the spec.
    assert_eq!(
        check_import_parameters(Origin::Kms, Some(KeyState::PendingDeletion), None, sm2),
        Err(KmsError::UnsupportedOrigin)
    );
    assert_eq!(
        check_import_parameters(Origin::Kms, None, None, sm2),
        Err(KmsError::UnsupportedOrigin)
    );
}

#[test]
fn the_first_import_binds_and_only_the_same_material_comes_back() {
    let id = KeyId::generate();
    let records = MemoryRecords::with(&id, external(KeyState::PendingImport, None, 0), None);
    let model = KeyModel::new(&records);
    model
        .import_material(&id, &import_of("a", 0), &"a")
        .unwrap();
    assert_eq!(records.record(&id).facts.state, KeyState::Enabled);
    assert_eq!(
        model.import_material(&id, &import_of("b", 0), &"b"),
        Err(KmsError::InvalidKeyMaterial)
    );
    assert_eq!(records.record(&id).material, Some("a"));
    model.delete_material(&id).unwrap();
    let after = records.record(&id);
    assert_eq!(
        (after.material, after.facts.state, after.facts.bound),
        (None, KeyState::PendingImport, Some(fingerprint("a")))
    );
    assert_eq!(
        model.import_material(&id, &import_of("b", 0), &"b"),
        Err(KmsError::InvalidKeyMaterial)
    );
    model
        .import_material(&id, &import_of("a", 0), &"a")
        .unwrap();
    assert_eq!(
        records.operations(),
        [
            Operation::ImportKeyMaterial,
            Operation::DeleteKeyMaterial,
            Operation::ImportKeyMaterial
        ]
    );
}

#[test]
fn of_concurrent_first_imports_of_different_material_exactly_one_binds() {
    const THREADS: usize = 8;
    const MATERIALS: [&str; THREADS] = ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"];
    let id = KeyId::generate();
    let records = Arc::new(MemoryRecords::with(
        &id,
        external(KeyState::PendingImport, None, 0),
        None,
    ));
    let start = Arc::new(Barrier::new(THREADS));
    let outcomes: Vec<bool> = (0..THREADS)
        .map(|i| {
            let (records, start, id) = (Arc::clone(&records), Arc::clone(&start), id.clone());
            std::thread::spawn(move || {
                start.wait();
                KeyModel::new(&*records)
                    .import_material(&id, &import_of(MATERIALS[i], 0), &MATERIALS[i])
                    .is_ok()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1);
    let winner = MATERIALS[outcomes.iter().position(|ok| *ok).unwrap()];
    let record = records.record(&id);
    assert_eq!(record.material, Some(winner));
    assert_eq!(record.facts.bound, Some(fingerprint(winner)));
    assert_eq!(records.operations(), [Operation::ImportKeyMaterial]);
}

#[test]
fn a_refused_change_writes_nothing() {
    let id = KeyId::generate();
    let records = MemoryRecords::with(&id, external(KeyState::PendingImport, None, 0), None);
    let model = KeyModel::new(&records);
    assert_eq!(
        model.change_state(&id, KeyState::Enabled),
        Err(KmsError::IncorrectKeyState("PendingImport"))
    );
    assert!(records.operations().is_empty());
    assert_eq!(records.record(&id).facts.state, KeyState::PendingImport);
}

#[test]
fn deleting_material_records_the_binding_of_material_held_without_one() {
    let id = KeyId::generate();
    let records = MemoryRecords::with(&id, external(KeyState::Enabled, None, 0), Some("p"));
    let model = KeyModel::new(&records);
    model.change_state(&id, KeyState::Disabled).unwrap();
    assert_eq!(records.record(&id).facts.bound, None);
    model.delete_material(&id).unwrap();
    assert_eq!(records.record(&id).facts.bound, Some(fingerprint("p")));
    assert_eq!(
        model.import_material(&id, &import_of("q", 0), &"q"),
        Err(KmsError::InvalidKeyMaterial)
    );
}

#[test]
fn deletion_is_scheduled_and_cancelled_with_the_material_kept() {
    let id = KeyId::generate();
    let records = MemoryRecords::with(&id, external(KeyState::Enabled, Some("a"), 0), Some("a"));
    let model = KeyModel::new(&records);
    model.change_state(&id, KeyState::PendingDeletion).unwrap();
    model.change_state(&id, KeyState::Disabled).unwrap();
    let record = records.record(&id);
    assert_eq!(
        (record.facts.state, record.material),
        (KeyState::Disabled, Some("a"))
    );
    assert_eq!(
        records.operations(),
        [Operation::ScheduleKeyDeletion, Operation::CancelKeyDeletion]
    );
}

#[test]
fn the_sweep_expires_what_is_due_on_the_current_record_only() {
    let (due, later, gone) = (KeyId::generate(), KeyId::generate(), KeyId::generate());
    let mut records =
        MemoryRecords::with(&due, external(KeyState::Enabled, Some("a"), 100), Some("a"));
    records.now = 100;
    records.keys.lock().unwrap().extend([
        (
            later.clone(),
            Record {
                // Imported again with a later expiry after the sweep found it due.
                facts: external(KeyState::Enabled, Some("b"), 500),
                material: Some("b"),
            },
        ),
        (
            gone.clone(),
            Record {
                facts: external(KeyState::PendingImport, Some("c"), 100),
                material: None,
            },
        ),
    ]);
    let model = KeyModel::new(&records);
    let unknown = KeyId::generate();
    assert_eq!(
        model.expire(&[due.clone(), unknown, later.clone(), gone.clone()]),
        Err(KmsError::NotFound)
    );
    let expired = records.record(&due);
    assert_eq!(
        (expired.facts.state, expired.material, expired.facts.bound),
        (KeyState::PendingImport, None, Some(fingerprint("a")))
    );
    assert_eq!(records.record(&later).material, Some("b"));
    assert_eq!(records.operations(), [Operation::KeyMaterialExpired]);
}

//! An attacker's review (2026-12-06, branch attack14c) of 4e19952: multi-writer defects,
//! checks made on what one caller read and writes made later without deciding again on
//! the store's current records, so that concurrent callers (threads, processes, hosts)
//! end in a state no serial order of their calls could reach. Each test races the two
//! calls many times until the defect shows, asserts what the project's documents
//! promise, and fails against the module as it was reviewed. Its doc comment says what
//! is wrong.
//! Run with `cargo nextest run --test attack_review14c` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A public RSA token key of the caller's own, with `CKA_ID` `id`.
fn decoy(id: &[u8]) -> Vec<Attribute> {
    let mut modulus = vec![0xC5u8; 256];
    modulus[255] = 0x01;
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(b"decoy".to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Modulus(modulus),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Encrypt(true),
        Attribute::Wrap(true),
    ]
}

/// The public keys a tool selecting by `id` finds (`pkcs11-tool --id`).
fn public_keys_with_id(s: &Session, id: &[u8]) -> Vec<ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Id(id.to_vec()),
    ])
    .unwrap()
}

/// A short busy wait, so that the two racers' checks and commits overlap at different
/// offsets from one race to the next.
fn spin(micros: u64) {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Defect: the names reserved for import wrapping pairs are checked, then written, with
/// no decision on the store's current records in between: `token/kms/import.rs`
/// `wrapping_names` asks `id_held(id, false)` (no key holds the caller's `CKA_ID`) before
/// `insert_all_in` commits the pair, and `check_import_pair_names` asks
/// `id_held(id, true)` (no pair holds it) in `token/objects.rs` `insert_all_in` before
/// `commit_with_events` writes the new key; both read this process's cache or the store
/// outside the commit's transaction. A GetParametersForImport naming its own `CKA_ID`
/// and a `C_CreateObject` of a public key with that id, racing, both pass their checks
/// and both commit: the token ends with a planted public key beside the pair's public
/// half under the pair's id, which is what the rule exists to prevent (a tool selecting
/// the pair by its id, as the documented flow does, may wrap the material to the
/// planted key).
///
/// Expected (docs/key-model.md, "The names are the pair's": "No other public or private
/// key may take the id of a pair the token holds. A pair may not be given an id a key
/// already has ... So a public key found by a pair's id is that pair's, and not one
/// planted beside it"; "Exactly once": concurrent changes "end as some serial order of
/// them would"; in either serial order the second call is refused with
/// `CKR_ATTRIBUTE_VALUE_INVALID`): at most one of the two succeeds, and a search by the
/// id finds one public key. Actual: within some races both answer `CKR_OK` and the id
/// finds two public keys.
#[test]
fn a_key_planted_under_a_pair_id_while_the_pair_is_made_is_not_refused() {
    let env = TestEnv::new();
    let (ctx, slot, owner) = ready_token(&env);
    let target = create_external(&owner, Spec::Aes256, "import-target");
    let target = key_id(&owner, target);
    let start = Instant::now();
    let mut races = 0u64;
    let mut both_refused_or_one = 0u64;
    while races < 1000 && start.elapsed() < Duration::from_secs(90) {
        races += 1;
        let id = format!("pair-race-{races}").into_bytes();
        let barrier = Barrier::new(2);
        let (pair, planted) = std::thread::scope(|scope| {
            let pair = scope.spawn(|| {
                let mine = ctx.open_rw_session(slot).unwrap();
                let (public, mut private) = params_templates(&target, WRAP_SM2PKE);
                private.push(Attribute::Id(id.clone()));
                barrier.wait();
                mine.generate_key_pair(&wrapping_keygen(WRAP_SM2PKE), &public, &private)
            });
            let plant = scope.spawn(|| {
                let mine = ctx.open_rw_session(slot).unwrap();
                let template = decoy(&id);
                barrier.wait();
                spin(races % 40 * 50);
                mine.create_object(&template)
            });
            (pair.join().unwrap(), plant.join().unwrap())
        });
        if pair.is_ok() && planted.is_ok() {
            let found = public_keys_with_id(&owner, &id);
            assert!(
                found.len() <= 1,
                "race {races}: GetParametersForImport naming CKA_ID and a public key \
                 created under the same id both succeeded; the pair's id finds {} public \
                 keys, a planted one beside the pair's half",
                found.len()
            );
        } else {
            both_refused_or_one += 1;
        }
    }
    eprintln!("{races} races, {both_refused_or_one} with a refusal; the defect never showed");
}

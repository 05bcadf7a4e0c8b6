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

/// Slices of old events the audit-trail race prunes one at a time: slice `k` is dated
/// `SLICES - k` days ago.
const SLICES: i64 = 120;
/// Events in one slice.
const EVENTS_PER_SLICE: usize = 16;
/// The file that tells the re-initialising child to stop.
const STOP_FILE: &str = "stop-reinitialising";

/// Defect: `C_InitToken` carries the audit trail over to the new master key with the
/// checkpoint it read before its transaction (`token/audit.rs` `commit_rekeyed`: the
/// trail is read and verified with `store.audit_log()`, then the transaction checks only
/// that the head is unchanged and writes `Change::RekeyAudit { checkpoint_mac }`, the
/// MAC under the new key of the checkpoint it read; the stores' `RekeyAudit` puts that
/// MAC on whatever checkpoint row is there then). A prune by another process
/// (`kmshsm audit prune`, `Token::prune_audit`), committed between that read and that
/// transaction, moves the checkpoint without changing the head: the re-initialisation
/// goes ahead and leaves the new checkpoint with the MAC of the old one (or, when there
/// was none, with its MAC under the old master key). Both calls answered `CKR_OK`, and
/// the trail no longer verifies under the new key: the re-initialised token's audit
/// trail reports tampering that never happened, and stays broken (a broken trail is
/// neither re-authenticated nor pruned again).
///
/// Expected (docs/audit.md, "Re-initialisation": `C_InitToken` "verifies the trail under
/// the old master key and, when it holds, re-authenticates it under the new one (the
/// checkpoint's MAC, the anchor, and the head ...)"; "Pruning ... keeps a checkpoint ...
/// Verification starts from it"; CONTRIBUTING.md, "Decide inside the transaction ...
/// Never read, decide, then write"): in either serial order of a prune and a
/// re-initialisation the trail verifies afterwards (a prune decided under the old key
/// after the re-initialisation is refused). Actual: after a few dozen re-initialisations
/// racing prunes from another process, `kmshsm audit verify`'s check
/// (`Token::audit_trail`) finds the checkpoint not authentic.
#[test]
fn a_prune_racing_c_init_token_leaves_a_trail_that_does_not_verify() {
    let env = TestEnv::new();
    // The token's first events (C_InitToken, C_InitPIN) start the trail: older still.
    set_clock_offset(-(SLICES + 1) * 86_400);
    let (ctx, _slot, session) = ready_token(&env);
    // An Enabled key whose Disable/Enable each append one event.
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Value(vec![0x5a; 32]),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_EXTERNAL),
            vendor_ulong(CKA_KMSHSM_KEY_SPEC, Spec::Aes256.code()),
        ])
        .unwrap();
    // A trail of old events, each slice a day younger than the one before, so that
    // every prune below moves the checkpoint by one slice.
    for k in 0..SLICES {
        set_clock_offset(-(SLICES - k) * 86_400);
        for n in 0..EVENTS_PER_SLICE {
            let wanted = if n % 2 == 0 {
                STATE_DISABLED
            } else {
                STATE_ENABLED
            };
            set_state(&session, key, wanted).unwrap();
        }
    }
    set_clock_offset(0);
    session.logout().unwrap();
    drop(session);
    ctx.finalize().unwrap();

    let stop = env.dir.path().join(STOP_FILE);
    let mut reinit = child_command(CHILD_ENTRY, "reinitialise-until-stopped");
    reinit.env("KMSHSM_TEST_STOP_FILE", &stop);
    let prune = child_command(CHILD_ENTRY, "prune-every-slice");
    let (mut children, mut outputs) = spawn_ready([reinit, prune]);
    let prune_said: Vec<String> = outputs[1]
        .by_ref()
        .map_while(|l| l.ok())
        .filter_map(|l| child_line(&l).map(str::to_owned))
        .collect();
    assert!(
        children[1].wait().unwrap().success(),
        "the pruning child failed"
    );
    std::fs::write(&stop, b"").unwrap();
    let reinit_said: Vec<String> = outputs[0]
        .by_ref()
        .map_while(|l| l.ok())
        .filter_map(|l| child_line(&l).map(str::to_owned))
        .collect();
    assert!(
        children[0].wait().unwrap().success(),
        "the re-initialising child failed"
    );
    let verdict = child_command(CHILD_ENTRY, "verify-trail").output().unwrap();
    assert!(verdict.status.success(), "the verifying child failed");
    let verdict: Vec<String> = child_lines(&String::from_utf8_lossy(&verdict.stdout));
    assert_eq!(
        verdict.first().map(String::as_str),
        Some("intact"),
        "after {reinit_said:?} and {prune_said:?} (each answering CKR_OK), the trail does \
         not verify under the re-initialised token's key: {verdict:?}"
    );
}

const CHILD_ENTRY: &str = "child_process_entry_point";

#[test]
#[ignore = "child-process entry point: the audit-trail race's re-initialiser, pruner and verifier"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "reinitialise-until-stopped" => {
            let stop = std::path::PathBuf::from(std::env::var("KMSHSM_TEST_STOP_FILE").unwrap());
            let ctx = load_module();
            initialize(&ctx).unwrap();
            let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
            tell_parent("ready");
            let (mut done, mut refused) = (0u32, 0u32);
            while !stop.exists() && done < 2000 {
                match ctx.init_token(slot, &pin(SO_PIN), TOKEN_LABEL) {
                    Ok(()) => done += 1,
                    Err(_) => refused += 1,
                }
            }
            tell_parent(&format!("{done} re-initialisations, {refused} refused"));
        }
        "prune-every-slice" => prune_every_slice(),
        "verify-trail" => {
            let (_provider, session) = so_session();
            let trail = session.token.audit_trail().unwrap();
            match trail.verdict {
                Ok(_) => tell_parent("intact"),
                Err(b) => tell_parent(&format!("broken at {}: {}", b.first, b.reason)),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// In a child: the token's one slot, through the library itself (the `kmshsm` command
/// line's way in), with a read/write session logged in as the SO.
fn so_session() -> (
    std::sync::Arc<kmshsm::provider::Provider>,
    std::sync::Arc<kmshsm::session::Session>,
) {
    use kmshsm::provider::{self, InitOptions};
    provider::initialize(InitOptions::default()).unwrap();
    let p = provider::get().unwrap();
    p.rescan().unwrap();
    let slot = p
        .slot_ids()
        .into_iter()
        .find(|id| p.slot(*id).unwrap().token.is_some())
        .unwrap();
    let handle = p.open_session(slot, true).unwrap();
    let session = p.session(handle).unwrap();
    session
        .token
        .login(
            session.handle,
            kmshsm::token::UserKind::So,
            SO_PIN.as_bytes(),
        )
        .unwrap();
    (p, session)
}

/// In a child: prunes the old slices one at a time (`kmshsm audit prune
/// --older-than-days N`, N falling), logging in again whenever the token was
/// re-initialised meanwhile.
fn prune_every_slice() {
    use kmshsm::error::Error;
    let (_provider, mut session) = so_session();
    tell_parent("ready");
    let start = Instant::now();
    let (mut pruned, mut again, mut unverified) = (0u32, 0u32, 0u32);
    'slices: for days in (1..=SLICES).rev() {
        for _ in 0..50 {
            if start.elapsed() > Duration::from_secs(90) {
                break 'slices;
            }
            match session.token.prune_audit_older_than(Some(days as u32)) {
                Ok(Some(_)) => {
                    pruned += 1;
                    unverified = 0;
                    break;
                }
                Ok(None) => break,
                Err(Error::TokenReinitialized | Error::UserNotLoggedIn) => {
                    again += 1;
                    session = so_session_again(&session);
                }
                // A login older than the last re-initialisation verifies the trail
                // under the old key and finds it broken (`Error::Internal`): log in
                // again and retry. Found so again and again right after fresh logins,
                // the trail is broken (the verifier says how).
                Err(Error::Internal(_)) => {
                    unverified += 1;
                    if unverified >= 10 {
                        break 'slices;
                    }
                    again += 1;
                    session = so_session_again(&session);
                }
                Err(e) => {
                    tell_parent(&format!("prune refused: {e}"));
                    return;
                }
            }
        }
    }
    tell_parent(&format!(
        "{pruned} prunes, {again} logins again, {unverified} unverified in a row"
    ));
}

/// A new SO session on the token of `old` (whose login a re-initialisation ended).
fn so_session_again(old: &kmshsm::session::Session) -> std::sync::Arc<kmshsm::session::Session> {
    let p = kmshsm::provider::get().unwrap();
    let _ = p.close_session(old.handle);
    let handle = p.open_session(old.slot_id, true).unwrap();
    let session = p.session(handle).unwrap();
    let _ = session.token.login(
        session.handle,
        kmshsm::token::UserKind::So,
        SO_PIN.as_bytes(),
    );
    session
}

/// Defect: `C_DestroyObject` of a token object decides on the object as this process
/// cached it and then commits an unconditional `Change::RemoveObject`
/// (`token/objects.rs` `Token::destroy_object`: `entry_with_epoch`, then
/// `commit_with_events` with the `DestroyKey` event), and the stores remove a record
/// that is no longer there without a word (`store/sqlite/writes.rs` `remove_object`).
/// Two destructions of one key, from two threads (or two processes, each with its
/// handle), both answer `CKR_OK`, and the audit trail records the key destroyed twice.
///
/// Expected (PKCS#11 3.0 §5.7: a handle whose object is gone is
/// `CKR_OBJECT_HANDLE_INVALID`; docs/key-model.md, "Exactly once": concurrent changes
/// "end as some serial order of them would"; docs/audit.md: each lifecycle change is
/// committed together with its event): of two destructions of one object exactly one
/// succeeds and one `DestroyKey` event is written; the other finds no object. Actual:
/// within some races both succeed, and `kmshsm audit list` shows two `DestroyKey`
/// events for the one key.
#[test]
fn two_destructions_of_one_key_both_succeed_and_are_both_recorded() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let start = Instant::now();
    let mut races = 0u32;
    while races < 1000 && start.elapsed() < Duration::from_secs(90) {
        races += 1;
        let key = create_external(&session, Spec::Aes256, &format!("destroyed-{races}"));
        let id = key_id(&session, key);
        let barrier = Barrier::new(2);
        let destroy = || {
            let mine = ctx.open_rw_session(slot).unwrap();
            barrier.wait();
            mine.destroy_object(key)
        };
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(destroy);
            let second = scope.spawn(destroy);
            (first.join().unwrap(), second.join().unwrap())
        });
        if first.is_ok() && second.is_ok() {
            let recorded = common::audit::events(&[])
                .iter()
                .filter(|e| e["EventName"] == "DestroyKey" && e["KeyId"] == id.as_str())
                .count();
            panic!(
                "race {races}: two C_DestroyObject of one key both answered CKR_OK; the \
                 audit trail records {recorded} DestroyKey events for it"
            );
        }
    }
}

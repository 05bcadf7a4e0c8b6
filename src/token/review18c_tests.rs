//! An attacker's review (branch attack18c): the time of a KMS state change. Review 17b
//! moved the import's rules to the time the decision is written (inside the store
//! transaction); the other lifecycle decisions still take no time at all. A store whose
//! transaction moves a `FixedClock` on when armed (`ClockStore`, as in
//! `review17b_tests.rs`) stands for the wait a real transaction can have before it
//! decides (a PostgreSQL row lock held by another host, SQLite's busy wait). Each test
//! asserts what the project's documents promise, so it fails against the module as
//! reviewed (a9a7e16).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::*;
use crate::ck::*;
use crate::ids::{ObjectHandle, SessionHandle, SlotId};
use crate::kms::clock::{Clock, FixedClock};
use crate::object::attr::{RawAttribute, RawValue};
use crate::store::sqlite::SqliteStore;
use crate::store::{
    AuditLog, Due, Loaded, ObjectUid, PinAttempt, PinRecordId, PinSettle, ReadMark, StoreResult,
};

const SO_PIN: &[u8] = b"so-pin-1234";
const USER_PIN: &[u8] = b"user-pin-5678";

const CALLER: Caller = Caller {
    session: SessionHandle::new(1),
    rw: true,
};

/// A store whose next transaction, when armed, first moves the clock on by the armed
/// number of seconds (the time the transaction waited for its lock).
struct ClockStore {
    inner: Box<dyn Store>,
    clock: Arc<FixedClock>,
    wait: Arc<AtomicI64>,
}

impl Store for ClockStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        self.inner.changed_elsewhere()
    }
    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        self.inner.read(since, epoch, scope)
    }
    fn applied(&self, mark: &ReadMark) -> StoreResult<()> {
        self.inner.applied(mark)
    }
    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        self.inner.lookup(key)
    }
    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        self.inner.load(uids)
    }
    fn load_by_key(&self, key: &[u8]) -> StoreResult<Loaded> {
        self.inner.load_by_key(key)
    }
    fn due(&self, now: i64) -> StoreResult<Due> {
        self.inner.due(now)
    }
    fn object_count_hint(&self) -> StoreResult<u64> {
        self.inner.object_count_hint()
    }
    fn commit(&self, changes: Vec<Change>) -> StoreResult<()> {
        self.inner.commit(changes)
    }
    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool> {
        let waited = self.wait.swap(0, Ordering::SeqCst);
        if waited != 0 {
            self.clock.advance(waited);
        }
        self.inner.transact(uids, lookup, decide)
    }
    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        self.inner
            .reserve_pin_attempt(role, epoch, limit, now, lease_until)
    }
    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle> {
        self.inner.settle_pin_attempt(role, right, record)
    }
    fn pin_counts(
        &self,
        now: i64,
    ) -> StoreResult<std::collections::BTreeMap<PinRole, crate::store::PinCount>> {
        self.inner.pin_counts(now)
    }
    fn audit_log(&self) -> StoreResult<AuditLog> {
        self.inner.audit_log()
    }
    fn check_integrity(&self) -> StoreResult<()> {
        self.inner.check_integrity()
    }
}

fn raw(ty: crate::object::attr::AttrType, value: &[u8]) -> RawAttribute {
    RawAttribute {
        ty,
        value: RawValue::Bytes(Zeroizing::new(value.to_vec())),
    }
}

fn ulong(ty: crate::object::attr::AttrType, v: u64) -> RawAttribute {
    raw(ty, &(v as crate::ck::CK_ULONG).to_ne_bytes())
}

/// A new token `serial` in `dir` on a clock that stands still until moved, opened
/// through a `ClockStore`, with session 1 open and the user logged in; the clock, and
/// the wait to arm.
fn token_on_a_fixed_clock(
    dir: &std::path::Path,
    serial: &str,
) -> (Token, Arc<FixedClock>, Arc<AtomicI64>) {
    let clock = FixedClock::new(1_700_000_000);
    let shared = Arc::new(Shared {
        config: Arc::clone(&shared_for_tests(dir).config),
        handles: Default::default(),
        clock: clock.clone(),
    });
    let backend = crate::store::Backend::Files(dir.to_path_buf());
    drop(
        Token::create(
            &backend,
            SlotId::new(1),
            serial,
            [b' '; LABEL_LEN],
            SO_PIN,
            Arc::clone(&shared),
        )
        .expect("token"),
    );
    let wait = Arc::new(AtomicI64::new(0));
    let store = ClockStore {
        inner: Box::new(
            SqliteStore::open(&crate::store::Backend::file_of(dir, serial)).expect("store"),
        ),
        clock: clock.clone(),
        wait: Arc::clone(&wait),
    };
    let token = Token::open_store(Box::new(store), "here".into(), shared).expect("token");
    token
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    token
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    token.init_pin(true, USER_PIN).expect("user PIN");
    token.logout().expect("logout");
    token
        .login(SessionHandle::new(1), UserKind::User, USER_PIN)
        .expect("user login");
    (token, clock, wait)
}

/// An EXTERNAL AES-256 token key, Enabled with 32 random bytes of material imported
/// (RSAES_OAEP_SHA_256) with `CKA_KMSHSM_MATERIAL_EXPIRY` = `expiry`; its handle and KeyId.
fn imported_key_expiring_at(token: &Token, expiry: u64) -> (ObjectHandle, Vec<u8>) {
    use crate::kms::import::WrappingAlgorithm;
    use crate::kms::key::{KeySpec, Origin};
    use crate::mechanism::params::OaepParams;
    use crate::mechanism::{MechanismArg, Param};
    use crate::object::attr::{
        IMPORT_TARGET, IMPORT_TOKEN, KEY_ID, KEY_SPEC, MATERIAL_EXPIRY, ORIGIN,
        WRAPPING_ALGORITHM,
    };
    let key = token
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
                ulong(CKA_KEY_TYPE, CKK_AES.raw()),
                raw(CKA_TOKEN, &[1]),
                raw(CKA_ENCRYPT, &[1]),
                raw(CKA_DECRYPT, &[1]),
                ulong(ORIGIN, Origin::External.code()),
                ulong(KEY_SPEC, KeySpec::Aes256.code()),
            ],
        )
        .expect("EXTERNAL key");
    let key_id = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.bytes(KEY_ID).map(<[u8]>::to_vec))
        .expect("KeyId");
    let (public, private) = token
        .generate_key_pair(
            CALLER,
            &MechanismArg {
                kind: CKM_RSA_PKCS_KEY_PAIR_GEN,
                param: Param::None,
            },
            &[raw(CKA_TOKEN, &[1]), ulong(CKA_MODULUS_BITS, 2048)],
            &[
                raw(CKA_TOKEN, &[1]),
                raw(IMPORT_TARGET, &key_id),
                ulong(
                    WRAPPING_ALGORITHM,
                    WrappingAlgorithm::RsaesOaepSha256.code(),
                ),
            ],
        )
        .expect("import parameters");
    let (spki, import_token) = {
        let table = token.objects.read();
        let spki = table
            .get(public)
            .and_then(|e| e.object.bytes(CKA_PUBLIC_KEY_INFO).map(<[u8]>::to_vec))
            .expect("the wrapping public key");
        let t = table
            .get(private)
            .and_then(|e| e.object.bytes(IMPORT_TOKEN).map(<[u8]>::to_vec))
            .expect("the import token");
        (spki, t)
    };
    let mut material = [0u8; 32];
    crate::crypto::rand::random_fill(&mut material).expect("random");
    let wrapping = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).expect("SPKI");
    let oaep = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(wrapping).expect("OAEP key");
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped_len = oaep
        .encrypt(
            &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
            &material,
            &mut wrapped,
            None,
        )
        .expect("wrap")
        .len();
    wrapped.truncate(wrapped_len);
    let mech = MechanismArg {
        kind: CKM_RSA_PKCS_OAEP,
        param: Param::Oaep(OaepParams {
            hash: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: CKZ_DATA_SPECIFIED,
            label: Vec::new(),
        }),
    };
    let imported = token
        .unwrap_key(
            CALLER,
            &mech,
            private,
            &wrapped,
            &[
                raw(IMPORT_TOKEN, &import_token),
                ulong(MATERIAL_EXPIRY, expiry),
            ],
        )
        .expect("ImportKeyMaterial with an expiry");
    assert_eq!(imported, key);
    (key, key_id)
}

/// Defect: EnableKey (and every other state change) is decided without the time.
/// `kms::decide::change_state` takes the record's facts and the state wanted, not `now`;
/// the only expiry check on the way is the sweep the call runs before its transaction
/// (`entry_read` → `refresh`). A transaction that waits past the material's expiry
/// (here: DisableKey earlier, then an EnableKey 10 s before the expiry whose transaction
/// waits 20 s for the store's lock) decides on a Disabled record "holding material" and
/// writes Enabled, answering `CKR_OK` and recording `EnableKey` with outcome Success, at
/// a time when the material had expired 10 s before: a key whose material is gone by
/// every rule of the module (`state_now` reads it PendingImport, every use is refused)
/// is recorded as enabled by its owner after that. The same holds for
/// CancelKeyDeletion (Disabled instead of PendingImport) and ScheduleKeyDeletion (which
/// then keeps the expired material, see `tests/attack_review18c.rs`).
///
/// Expected (docs/key-model.md, "Exactly once": each rule is decided inside the
/// transaction as "a pure function of the key's facts, the request and the time", the
/// answer that counts being the transaction's; "States": "no key without material is
/// enabled", and expired material is material the key no longer has — "When the material
/// expires ... it is wiped and the key goes back to PendingImport"; review 17b's fix did
/// exactly this for the import token): an EnableKey decided after the expiry is refused
/// with `CKR_KMSHSM_INCORRECT_KEY_STATE` (the key is PendingImport), and the trail holds
/// no successful EnableKey after the expiry. Actual: `CKR_OK`, the record is Enabled,
/// and the trail says EnableKey Success.
#[test]
fn an_enable_key_decided_after_the_material_expired_is_written() {
    use crate::kms::audit::{Operation, Outcome};
    use crate::kms::key::KeyState;
    use crate::object::attr::KEY_STATE;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock, wait) = token_on_a_fixed_clock(dir.path(), "review18c1");
    let start = clock.now();
    let expiry = start + 100;
    let (key, _) = imported_key_expiring_at(&token, expiry as u64);
    token
        .set_attributes(CALLER, key, &[ulong(KEY_STATE, KeyState::Disabled.code())])
        .expect("DisableKey");

    // 10 s before the expiry the owner asks EnableKey; its transaction waits 20 s.
    clock.advance(90);
    wait.store(20, Ordering::SeqCst);
    let result =
        token.set_attributes(CALLER, key, &[ulong(KEY_STATE, KeyState::Enabled.code())]);
    assert_eq!(
        wait.load(Ordering::SeqCst),
        0,
        "the EnableKey reached its transaction (the clock was moved on there)"
    );
    assert!(clock.now() > expiry, "decided after the expiry");
    let trail = token.audit_trail().expect("the trail");
    let enabled_after_expiry: Vec<i64> = trail
        .entries
        .iter()
        .filter_map(|e| e.event.as_ref())
        .filter(|e| {
            e.event_name == Operation::EnableKey
                && e.outcome == Outcome::Success
                && e.event_time >= expiry
        })
        .map(|e| e.event_time)
        .collect();
    let record_state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert!(
        matches!(
            result,
            Err(Error::Kms(crate::error::KmsError::IncorrectKeyState(_)))
        ),
        "an EnableKey decided 10 s after the material expired answered {:?}; the record \
         is now in state {record_state:?} (Enabled is {}), and the trail records EnableKey \
         Success at {enabled_after_expiry:?} (the material expired at {expiry})",
        result.as_ref().map(|_| "CKR_OK"),
        KeyState::Enabled.code()
    );
    assert!(enabled_after_expiry.is_empty());
}

//! A store for the token's tests that wraps a real one and lets a test stand in for
//! another process, or for time, at chosen moments: steps armed to run once at the next
//! call of a kind (after a read, after a read of every object, before `applied`, before a
//! load by index key, after a PIN attempt's reservation, before a settle, before a
//! transaction), a change check that can be made deaf (it answers "unchanged" whatever
//! happened elsewhere, as a PostgreSQL store in notify mode does between another host's
//! commit and its notification), and an object count that can be set (standing for a
//! token of that many objects). Where the real race would need luck, a step puts the
//! other process's act exactly between two steps of this one. Test code only; it
//! decides nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::objects::Caller;
use super::{shared_for_tests, Token, UserKind, LABEL_LEN};
use crate::ck::*;
use crate::ids::{SessionHandle, SlotId};
use crate::kms::clock::FixedClock;
use crate::kms::key::KeyState;
use crate::object::attr::{AttrType, RawAttribute, RawValue, KEY_STATE};
use crate::object::table::ObjectHandle;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    AuditLog, Change, Due, Loaded, ObjectUid, PinAttempt, PinCount, PinRecordId, PinRole,
    PinSettle, ReadMark, Scope, Snapshot, Store, StoreResult,
};

/// Where an armed step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// After a read (its mark moved, its snapshot not yet applied).
    Read,
    /// After a read of every object (`Scope::All`), once the steps armed at `Read` ran.
    ReadAll,
    /// Before a read is marked applied.
    Applied,
    /// Before a load of the objects an index key names (`load_by_key`).
    LoadByKey,
    /// After a PIN attempt's reservation.
    Reserved,
    /// Before a PIN attempt is settled.
    Settle,
    /// Before a transaction begins.
    Transact,
}

type Step = Box<dyn FnOnce() + Send>;

/// What a test arms on a [`TestStore`]; clones share it.
#[derive(Clone, Default)]
pub(super) struct StoreHooks {
    steps: Arc<Mutex<Vec<(At, Step)>>>,
    deaf: Arc<AtomicBool>,
    count_hint: Arc<Mutex<Option<u64>>>,
    fail_after_commit: Arc<AtomicBool>,
}

impl StoreHooks {
    /// Runs `step` once, at the next call of kind `at`.
    pub(super) fn arm(&self, at: At, step: impl FnOnce() + Send + 'static) {
        self.steps.lock().push((at, Box::new(step)));
    }

    /// How many armed steps have not run yet.
    pub(super) fn armed(&self) -> usize {
        self.steps.lock().len()
    }

    /// Makes the change check answer "unchanged" (`true`) or ask the store again.
    pub(super) fn set_deaf(&self, deaf: bool) {
        self.deaf.store(deaf, Ordering::SeqCst);
    }

    /// Makes the store's object count (`object_count_hint`) answer `count`, standing for
    /// a token of that many objects; `None`: the real store's count.
    pub(super) fn set_count_hint(&self, count: Option<u64>) {
        *self.count_hint.lock() = count;
    }

    /// Makes the next transaction that commits answer an error once its commit is made,
    /// as a SQLite store does when the fsync its commit waits for fails, or a PostgreSQL
    /// store when the connection is lost after the COMMIT was sent.
    pub(super) fn fail_after_next_commit(&self) {
        self.fail_after_commit.store(true, Ordering::SeqCst);
    }

    /// Runs the step armed at `at`, if any, with no lock held.
    fn run(&self, at: At) {
        let step = {
            let mut armed = self.steps.lock();
            let found = armed.iter().position(|(a, _)| *a == at);
            found.map(|i| armed.remove(i).1)
        };
        if let Some(step) = step {
            step();
        }
    }
}

/// `inner`, with `hooks`.
pub(super) struct TestStore {
    pub(super) inner: Box<dyn Store>,
    pub(super) hooks: StoreHooks,
}

impl TestStore {
    /// `inner` with hooks of its own; the answer's clone of them arms it.
    pub(super) fn wrap(inner: Box<dyn Store>) -> (Box<dyn Store>, StoreHooks) {
        let hooks = StoreHooks::default();
        let store = TestStore {
            inner,
            hooks: hooks.clone(),
        };
        (Box::new(store), hooks)
    }
}

impl Store for TestStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        if self.hooks.deaf.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.inner.changed_elsewhere()
    }
    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        let snap = self.inner.read(since, epoch, scope)?;
        self.hooks.run(At::Read);
        if scope == Scope::All {
            self.hooks.run(At::ReadAll);
        }
        Ok(snap)
    }
    fn applied(&self, mark: &ReadMark) -> StoreResult<()> {
        self.hooks.run(At::Applied);
        self.inner.applied(mark)
    }
    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        self.inner.lookup(key)
    }
    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        self.inner.load(uids)
    }
    fn load_by_key(&self, key: &[u8]) -> StoreResult<Loaded> {
        self.hooks.run(At::LoadByKey);
        self.inner.load_by_key(key)
    }
    fn due(&self, now: i64) -> StoreResult<Due> {
        self.inner.due(now)
    }
    fn object_count_hint(&self) -> StoreResult<u64> {
        if let Some(count) = *self.hooks.count_hint.lock() {
            return Ok(count);
        }
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
        self.hooks.run(At::Transact);
        let wrote = self.inner.transact(uids, lookup, decide)?;
        if wrote && self.hooks.fail_after_commit.swap(false, Ordering::SeqCst) {
            return Err(std::io::Error::other("the commit's fsync failed").into());
        }
        Ok(wrote)
    }
    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        let attempt = self
            .inner
            .reserve_pin_attempt(role, epoch, limit, now, lease_until)?;
        self.hooks.run(At::Reserved);
        Ok(attempt)
    }
    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle> {
        self.hooks.run(At::Settle);
        self.inner.settle_pin_attempt(role, right, record)
    }
    fn pin_counts(&self, now: i64) -> StoreResult<std::collections::BTreeMap<PinRole, PinCount>> {
        self.inner.pin_counts(now)
    }
    fn audit_log(&self) -> StoreResult<AuditLog> {
        self.inner.audit_log()
    }
    fn check_integrity(&self) -> StoreResult<()> {
        self.inner.check_integrity()
    }
}

/// The SO PIN of the tokens these helpers make.
pub(super) const SO_PIN: &[u8] = b"so-pin-1234";

/// The set-up of a test that stands in for another process through a [`TestStore`]: a new
/// token `serial` made in `dir` (SO PIN [`SO_PIN`], no user PIN) by a process sharing
/// `shared`, then opened again from its database file through a `TestStore`, with
/// `shared`, as this process's token (its location `here`). The token (no session open),
/// its store's hooks, and the database file, where a test opens the other process's
/// token with `Token::open`.
pub(super) fn created_then_wrapped(
    dir: &std::path::Path,
    serial: &str,
    shared: &Arc<super::Shared>,
) -> (Token, StoreHooks, std::path::PathBuf) {
    let path = created(dir, serial, shared);
    let (store, hooks) = TestStore::wrap(Box::new(SqliteStore::open(&path).expect("store")));
    let here =
        Token::open_store(store, "here".into(), Arc::clone(shared)).expect("this process's token");
    (here, hooks, path)
}

/// A new token `serial` made in `dir` (SO PIN [`SO_PIN`], no user PIN) by a process
/// sharing `shared`, then closed: its database file.
pub(super) fn created(
    dir: &std::path::Path,
    serial: &str,
    shared: &Arc<super::Shared>,
) -> std::path::PathBuf {
    let backend = crate::store::Backend::Files(dir.to_path_buf());
    drop(
        Token::create(
            &backend,
            SlotId::new(1),
            serial,
            [b' '; LABEL_LEN],
            SO_PIN,
            Arc::clone(shared),
        )
        .expect("token"),
    );
    crate::store::Backend::file_of(dir, serial)
}

/// One KMS key seen by two processes of token `serial` (made in `dir`): this one through a
/// `TestStore`, the other directly; both logged in as the user in session 1. An EXTERNAL
/// AES key labelled `label` was made here, the other process scheduled its deletion, this
/// one saw that, and its change check is now deaf: what the other does next, this one has
/// not heard of.
pub(super) struct StaleKey {
    pub(super) here: Token,
    pub(super) elsewhere: Token,
    pub(super) caller: Caller,
    /// The key's handle here, and in the other process.
    pub(super) key: ObjectHandle,
    pub(super) theirs: ObjectHandle,
    /// The token's database file.
    pub(super) path: std::path::PathBuf,
}

impl StaleKey {
    pub(super) fn new(dir: &std::path::Path, serial: &str, label: &[u8]) -> StaleKey {
        let (here, hooks, path) = created_then_wrapped(dir, serial, &shared_for_tests(dir));
        let elsewhere =
            Token::open(&path, shared_for_tests(dir)).expect("the other process's token");
        let session = SessionHandle::new(1);
        let caller = Caller { session, rw: true };
        let user_pin = b"user-pin-5678";
        here.add_session(session, true).expect("session");
        here.login(session, UserKind::So, SO_PIN).expect("SO login");
        here.init_pin(true, user_pin).expect("user PIN");
        here.logout().expect("logout");
        here.login(session, UserKind::User, user_pin)
            .expect("user login");
        elsewhere.add_session(session, true).expect("session");
        elsewhere
            .login(session, UserKind::User, user_pin)
            .expect("user login elsewhere");
        let bytes = |ty: AttrType, value: &[u8]| RawAttribute {
            ty: ty as _,
            value: RawValue::Bytes(zeroize::Zeroizing::new(value.to_vec())),
        };
        let key = here
            .create_object(
                caller,
                &[
                    bytes(CKA_CLASS, &CKO_SECRET_KEY.raw().to_ne_bytes()),
                    bytes(CKA_KEY_TYPE, &CKK_AES.raw().to_ne_bytes()),
                    bytes(CKA_TOKEN, &[1]),
                    bytes(CKA_PRIVATE, &[1]),
                    bytes(CKA_LABEL, label),
                    bytes(CKA_VALUE, &[7; 32]),
                ],
            )
            .expect("an EXTERNAL key with material");
        let theirs = elsewhere
            .find(&[bytes(CKA_LABEL, label)])
            .expect("find elsewhere");
        assert_eq!(theirs.len(), 1);
        let stale = StaleKey {
            here,
            elsewhere,
            caller,
            key,
            theirs: theirs[0],
            path,
        };
        stale.set_elsewhere(KeyState::PendingDeletion);
        stale
            .here
            .sync()
            .expect("this process sees the deletion scheduled");
        hooks.set_deaf(true);
        stale
    }

    /// The template of a state change to `state`.
    pub(super) fn state(state: KeyState) -> [RawAttribute; 1] {
        [RawAttribute {
            ty: KEY_STATE as _,
            value: RawValue::Bytes(zeroize::Zeroizing::new(state.code().to_ne_bytes().to_vec())),
        }]
    }

    /// The other process changes the key's state to `state`.
    pub(super) fn set_elsewhere(&self, state: KeyState) {
        self.elsewhere
            .set_attributes(self.caller, self.theirs, &StaleKey::state(state))
            .expect("a state change elsewhere");
    }
}

/// The user's PIN of the tokens these helpers make (their SO PIN is [`SO_PIN`]).
const USER_PIN: &[u8] = b"user-pin-5678";

/// The caller of these helpers' calls: session 1, read/write.
pub(super) const CALLER: Caller = Caller {
    session: SessionHandle::new(1),
    rw: true,
};

/// The attribute `ty` holding `value`.
pub(super) fn bytes(ty: AttrType, value: &[u8]) -> RawAttribute {
    RawAttribute {
        ty: ty as _,
        value: RawValue::Bytes(zeroize::Zeroizing::new(value.to_vec())),
    }
}

/// The attribute `ty` holding the `CK_ULONG` `v`.
pub(super) fn ulong(ty: AttrType, v: u64) -> RawAttribute {
    bytes(ty, &(v as CK_ULONG).to_ne_bytes())
}

/// A new token `serial` in `dir` on a clock that stands still until moved, opened
/// through a `TestStore`, with session 1 open and the user logged in; the clock, and the
/// store's hooks (a step armed at `At::Transact` that moves the clock stands for the wait
/// a real transaction can have for its lock).
pub(super) fn token_on_a_fixed_clock(
    dir: &std::path::Path,
    serial: &str,
) -> (Token, Arc<FixedClock>, StoreHooks) {
    let clock = FixedClock::new(1_700_000_000);
    let shared = Arc::new(super::Shared {
        config: Arc::clone(&shared_for_tests(dir).config),
        handles: Default::default(),
        clock: clock.clone(),
    });
    let (token, hooks, _path) = created_then_wrapped(dir, serial, &shared);
    user_pin_set_and_logged_in(&token, SO_PIN);
    (token, clock, hooks)
}

/// Opens session 1 on the new `token`, sets the user PIN [`USER_PIN`] as the SO
/// (`so_pin`), and logs the user in.
fn user_pin_set_and_logged_in(token: &Token, so_pin: &[u8]) {
    token.add_session(CALLER.session, true).expect("session");
    token
        .login(CALLER.session, UserKind::So, so_pin)
        .expect("SO login");
    token.init_pin(true, USER_PIN).expect("user PIN");
    token.logout().expect("logout");
    token
        .login(CALLER.session, UserKind::User, USER_PIN)
        .expect("user login");
}

/// An EXTERNAL AES-256 key waiting for its material, made in session 1, a token object or
/// a session object: its handle and KeyId.
pub(super) fn external_key(token: &Token, token_object: bool) -> (ObjectHandle, Vec<u8>) {
    use crate::kms::key::{KeySpec, Origin};
    use crate::object::attr::{KEY_ID, KEY_SPEC, ORIGIN};
    let key = token
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
                ulong(CKA_KEY_TYPE, CKK_AES.raw()),
                bytes(CKA_TOKEN, &[u8::from(token_object)]),
                bytes(CKA_ENCRYPT, &[1]),
                bytes(CKA_DECRYPT, &[1]),
                ulong(ORIGIN, Origin::External.code()),
                ulong(KEY_SPEC, KeySpec::Aes256.code()),
            ],
        )
        .expect("an EXTERNAL key");
    let key_id = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.bytes(KEY_ID).map(<[u8]>::to_vec))
        .expect("KeyId");
    (key, key_id)
}

/// Whether the token holds any object of an import wrapping pair for `key_id`, once it
/// has caught up with the store.
pub(super) fn pair_stored(token: &Token, key_id: &[u8]) -> bool {
    use crate::object::attr::IMPORT_TARGET;
    token.sync().expect("sync");
    !token
        .find(&[bytes(IMPORT_TARGET, key_id)])
        .expect("find")
        .is_empty()
}

/// GetParametersForImport for the key `key_id` through `caller`: an RSA_2048 wrapping
/// pair for RSAES_OAEP_SHA_256, both halves token objects.
pub(super) fn import_parameters(
    token: &Token,
    caller: Caller,
    key_id: &[u8],
) -> crate::error::Result<(ObjectHandle, ObjectHandle)> {
    use crate::kms::import::WrappingAlgorithm;
    use crate::object::attr::{IMPORT_TARGET, WRAPPING_ALGORITHM};
    token.generate_key_pair(
        caller,
        &crate::mechanism::MechanismArg {
            kind: CKM_RSA_PKCS_KEY_PAIR_GEN,
            param: crate::mechanism::Param::None,
        },
        &[bytes(CKA_TOKEN, &[1]), ulong(CKA_MODULUS_BITS, 2048)],
        &[
            bytes(CKA_TOKEN, &[1]),
            bytes(IMPORT_TARGET, key_id),
            ulong(
                WRAPPING_ALGORITHM,
                WrappingAlgorithm::RsaesOaepSha256.code(),
            ),
        ],
    )
}

/// An EXTERNAL AES-256 token key waiting for its material (CreateKey), its import
/// parameters (RSA_2048, RSAES_OAEP_SHA_256) and 32 random bytes of material wrapped
/// under them: everything ImportKeyMaterial needs.
pub(super) struct PreparedImport {
    pub(super) key: ObjectHandle,
    unwrapping: ObjectHandle,
    wrapped: Vec<u8>,
    import_token: Vec<u8>,
}

impl PreparedImport {
    pub(super) fn new(token: &Token) -> PreparedImport {
        use crate::object::attr::IMPORT_TOKEN;
        let (key, key_id) = external_key(token, true);
        let (public, unwrapping) =
            import_parameters(token, CALLER, &key_id).expect("import parameters");
        let (spki, import_token) = {
            let table = token.objects.read();
            let spki = table
                .get(public)
                .and_then(|e| e.object.bytes(CKA_PUBLIC_KEY_INFO).map(<[u8]>::to_vec))
                .expect("the wrapping public key");
            let t = table
                .get(unwrapping)
                .and_then(|e| e.object.bytes(IMPORT_TOKEN).map(<[u8]>::to_vec))
                .expect("the import token");
            (spki, t)
        };
        // The owner's side: the material under RSA-OAEP-SHA-256.
        let mut material = zeroize::Zeroizing::new([0u8; 32]);
        crate::crypto::rand::random_fill(&mut material[..]).expect("random");
        let wrapping = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).expect("SPKI");
        let oaep = aws_lc_rs::rsa::OaepPublicEncryptingKey::new(wrapping).expect("OAEP key");
        let mut wrapped = vec![0u8; oaep.ciphertext_size()];
        let wrapped_len = oaep
            .encrypt(
                &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
                &material[..],
                &mut wrapped,
                None,
            )
            .expect("wrap")
            .len();
        wrapped.truncate(wrapped_len);
        PreparedImport {
            key,
            unwrapping,
            wrapped,
            import_token,
        }
    }

    /// ImportKeyMaterial (`C_UnwrapKey` with the import token and `more`).
    pub(super) fn import(
        &self,
        token: &Token,
        more: &[RawAttribute],
    ) -> crate::error::Result<ObjectHandle> {
        use crate::mechanism::params::OaepParams;
        use crate::mechanism::{MechanismArg, Param};
        let mech = MechanismArg {
            kind: CKM_RSA_PKCS_OAEP,
            param: Param::Oaep(OaepParams {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                source: CKZ_DATA_SPECIFIED,
                label: Vec::new(),
            }),
        };
        let mut template = vec![bytes(crate::object::attr::IMPORT_TOKEN, &self.import_token)];
        template.extend(more.iter().cloned());
        token.unwrap_key(CALLER, &mech, self.unwrapping, &self.wrapped, &template)
    }
}

/// What a process shares, configured with the separation-of-duties policy or without it;
/// its new PIN records derived with `kdf`, or with the tests' cheap derivation.
pub(super) fn configured(
    dir: &std::path::Path,
    separation_of_duties: bool,
    kdf: Option<crate::config::KdfConfig>,
) -> Arc<super::Shared> {
    let base = shared_for_tests(dir);
    Arc::new(super::Shared {
        config: Arc::new(crate::config::Config {
            separation_of_duties,
            kdf: kdf.unwrap_or(base.config.kdf),
            ..(*base.config).clone()
        }),
        handles: crate::object::table::HandleSource,
        clock: Arc::clone(&base.clock),
    })
}

/// A token `serial` as kmshsm wrote it before records were authenticated, made in `dir`
/// by a process sharing `shared`: SO PIN `so_pin`, user PIN [`USER_PIN`], `objects`
/// created by the user, then every object record turned back into format 1, both PIN
/// records sealed with the old associated data, and the record-authentication marker
/// deleted. The database's path.
pub(super) fn legacy_token(
    dir: &std::path::Path,
    shared: &Arc<super::Shared>,
    serial: &str,
    so_pin: &[u8],
    objects: &[&[RawAttribute]],
) -> std::path::PathBuf {
    use super::records::legacy_master_aad;
    use super::META_RECORD_AUTH;
    use crate::object::Object;
    use crate::store::seal::{self, PinKdf};
    use crate::store::PinRecord;

    let token = Token::create(
        &crate::store::Backend::Files(dir.to_path_buf()),
        SlotId::new(1),
        serial,
        [b' '; LABEL_LEN],
        so_pin,
        Arc::clone(shared),
    )
    .expect("token");
    user_pin_set_and_logged_in(&token, so_pin);
    for template in objects {
        token.create_object(CALLER, template).expect("object");
    }
    let master = token.master().expect("logged in");
    let all = token.store.read(0, 0, Scope::All).expect("read");
    let mut changes = Vec::new();
    for rec in &all.objects {
        let object = Object::from_record(rec).expect("record");
        let legacy = object.to_legacy_record(&token.serial, &master);
        changes.push(Change::PutObject(legacy.expect("legacy record")));
    }
    for (role, pin) in [(PinRole::So, so_pin), (PinRole::User, USER_PIN)] {
        let kdf = PinKdf::fresh(&shared.config.kdf).expect("kdf");
        let aad = legacy_master_aad(&token.serial, role);
        let wrapped = seal::wrap_master_key(&master, &kdf, pin, &aad).expect("wrap");
        changes.push(Change::PutPin(
            role,
            PinRecord {
                kdf: kdf.encode(),
                wrapped_key: wrapped,
                failures: 0,
            },
        ));
    }
    token.store.commit(changes).expect("legacy records");
    token.logout().expect("logout");
    token.remove_session(CALLER.session);
    let path = crate::store::Backend::file_of(dir, &token.serial);
    drop(token);
    let db = rusqlite::Connection::open(&path).expect("database");
    db.execute("DELETE FROM meta WHERE name = ?1", [META_RECORD_AUTH])
        .expect("marker deleted");
    path
}

/// Whether the stored record-authentication marker covers the policy, as the master key
/// of the logged-in `token` tells (`None`: no marker, or none this key made).
pub(super) fn marker_covers_the_policy(token: &Token) -> Option<bool> {
    use super::META_RECORD_AUTH;
    let stored = token.store.read(0, 0, Scope::Changes).expect("read");
    let found = stored.meta.get(META_RECORD_AUTH)?;
    let master = token.master().expect("logged in");
    super::records::read_record_auth_marker(found, &master, &token.serial)
}

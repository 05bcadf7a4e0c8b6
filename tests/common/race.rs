//! Races between processes on one token: children started from a test binary's
//! `#[ignore]`d entry point, held until a `go` file appears, each reporting one line. Used
//! by the tests of the KMS rules across processes (tests/race_import.rs and the reviews'
//! files); what each child does is its test file's.

use std::path::Path;
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::kms::{import, vendor_bytes, ImportParams, CKA_KMSHSM_IMPORT_TARGET};
use super::{
    child_command, child_line, hex, initialize, load_module, slot_of_token, spawn_ready,
    tell_parent, to_hex, user_session, TestEnv, TOKEN_LABEL,
};

/// The environment variable naming the `go` file a child waits for.
pub const GO_ENV: &str = "KMSHSM_RACE_GO";

/// Starts one child of `entry` per `(role, extra environment)`, waits until all are
/// ready, starts them together and returns each one's report (in the order given).
pub fn run_children(
    env: &TestEnv,
    entry: &str,
    trial: usize,
    children: Vec<(&str, Vec<(&str, String)>)>,
) -> Vec<String> {
    let go = env.dir.path().join(format!("go-{}-{trial}", children[0].0));
    let (spawned, outputs) = spawn_ready(children.iter().map(|(role, vars)| {
        let mut command = child_command(entry, role);
        command.env(GO_ENV, &go);
        for (k, v) in vars {
            command.env(k, v);
        }
        command
    }));
    std::fs::write(&go, b"").unwrap();
    let mut reports = Vec::new();
    for (mut lines, mut child) in outputs.into_iter().zip(spawned) {
        reports.push(
            lines
                .find_map(|l| child_line(&l.unwrap()).map(str::to_owned))
                .unwrap_or_else(|| panic!("trial {trial}: a child reported nothing")),
        );
        assert!(
            child.wait().unwrap().success(),
            "trial {trial}: a child failed"
        );
    }
    reports
}

/// In a child: waits for the parent's signal; gives up (so no child outlives a failed
/// parent) after a minute.
pub fn wait_for_go() {
    let go = std::path::PathBuf::from(std::env::var(GO_ENV).unwrap());
    wait_for(&go);
}

fn wait_for(go: &Path) {
    let until = Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(Instant::now() < until, "no signal from the parent");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The import wrapping private key of key `id`, as another process finds it.
pub fn wrapping_private_key(session: &Session, id: &str) -> ObjectHandle {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, id.as_bytes()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "wrapping keys of {id}");
    found[0]
}

/// The environment of an import child ([`import_child`]): the key, the import token and
/// the wrapped material, for `run_children`.
pub fn import_vars(id: &str, token: &[u8], wrapped: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("KMSHSM_RACE_KEY_ID", id.to_owned()),
        ("KMSHSM_RACE_TOKEN", to_hex(token)),
        ("KMSHSM_RACE_WRAPPED", to_hex(wrapped)),
    ]
}

/// In a child started with [`import_vars`]: logs in, finds the key's wrapping private
/// key, says `ready`, and at the signal imports the material with algorithm `alg`,
/// reporting `ok`, `refused <CK_RV>` or `failed <error>`.
pub fn import_child(alg: u64) {
    let var = |name: &str| std::env::var(name).unwrap();
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let private = wrapping_private_key(&session, &var("KMSHSM_RACE_KEY_ID"));
    let params = ImportParams {
        public: private,
        private,
        alg,
        token: hex(&var("KMSHSM_RACE_TOKEN")),
        spki: Vec::new(),
    };
    let wrapped = hex(&var("KMSHSM_RACE_WRAPPED"));
    tell_parent("ready");
    wait_for_go();
    match import(&session, &params, &wrapped, None) {
        Ok(_) => tell_parent("ok"),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => tell_parent(&format!("refused {rv:?}")),
        Err(e) => tell_parent(&format!("failed {e}")),
    }
}

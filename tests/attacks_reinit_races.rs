//! From an independent review: a change decided on an object of a token another process
//! has since re-initialised (the object read from the old table) was committed into the
//! new token when nothing it was sealed under carried an epoch (no login: a public
//! object) and another thread of the process had seen the new token before the commit.
//! The object's epoch, read with it, now goes with the change (`commit_decided`).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]

mod common;

use std::time::Instant;

use common::*;
use cryptoki::error::RvError;
use cryptoki::object::Attribute;

fn refused_as_stale<T: std::fmt::Debug>(answer: &cryptoki::error::Result<T>) -> bool {
    matches!(
        answer,
        Err(cryptoki::error::Error::Pkcs11(
            RvError::DeviceRemoved | RvError::UserNotLoggedIn | RvError::ObjectHandleInvalid,
            _
        ))
    )
}

fn run_child(role: &str) -> Vec<String> {
    let output = child_command(CHILD_ENTRY, role).output().unwrap();
    assert!(
        output.status.success(),
        "the child {role} failed: {output:?}"
    );
    child_lines(&String::from_utf8_lossy(&output.stdout))
}

/// `op` 0: C_CopyObject; 1: C_SetAttributeValue(CKA_LABEL).
fn stale_public_change_is_written(op: u8) -> Option<String> {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    // A public session, nobody logged in.
    let session = ctx.open_rw_session(slot).unwrap();
    // A large public value: copying/rewriting it takes long enough for another
    // process to re-initialise the token meanwhile.
    let value = vec![5u8; 128 << 20];
    let original = session
        .create_object(&data_template("old-token-object", &value, true))
        .unwrap();
    drop(value);
    let started = Instant::now();
    let probe = session
        .copy_object(original, &[Attribute::Label(b"probe".to_vec())])
        .unwrap();
    let one = started.elapsed();
    session.destroy_object(probe).unwrap();
    eprintln!("one copy: {one:?}");

    // The other process, ready to re-initialise the token when told.
    let mut child = child_command(CHILD_ENTRY, "reinitialise-when-told")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut child_in = child.stdin.take().unwrap();
    let wait_for = |out: &mut std::io::BufReader<std::process::ChildStdout>, what: &str| {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "the child ended");
            if child_line(&line) == Some(what) {
                return;
            }
        }
    };
    wait_for(&mut child_out, "ready");
    let changing = std::thread::spawn(move || {
        let answer = match op {
            0 => session
                .copy_object(original, &[Attribute::Label(b"copied".to_vec())])
                .map(|_| ()),
            _ => session.update_attributes(original, &[Attribute::Label(b"renamed".to_vec())]),
        };
        (session, answer)
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    let reinit = Instant::now();
    {
        use std::io::Write;
        writeln!(child_in, "go").unwrap();
        child_in.flush().unwrap();
    }
    wait_for(&mut child_out, "done");
    let took = reinit.elapsed();
    assert!(child.wait().unwrap().success());
    // Another thread of this process looks at the token: its view is now the new token.
    let _ = ctx.get_token_info(slot).unwrap();
    let (session, answer) = changing.join().unwrap();
    eprintln!("reinit took {took:?}; the change answered {answer:?}");
    // Whichever came first, the new token must hold nothing of the old one: a change
    // committed before the re-initialisation is wiped by it, one decided before and
    // committed after must be refused.
    drop(session);
    ctx.finalize().unwrap();
    let lines = run_child("new-owner");
    (lines != vec!["objects 0".to_string()]).then(|| {
        format!(
            "a change decided on the old token's object answered {answer:?}; the new \
             token's objects: {lines:?}"
        )
    })
}

/// The race is timed: a few tries, each of which must leave the new token empty.
fn stale_public_change_is_not_written(op: u8) {
    for _ in 0..3 {
        if let Some(failure) = stale_public_change_is_written(op) {
            panic!("{failure}");
        }
    }
}

#[test]
fn a_copy_of_an_old_token_object_is_not_written_into_the_new_token() {
    stale_public_change_is_not_written(0);
}

#[test]
fn a_change_to_an_old_token_object_is_not_written_into_the_new_token() {
    stale_public_change_is_not_written(1);
}

const CHILD_ENTRY: &str = "child_process_entry_point";

#[test]
#[ignore = "child-process entry point"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
    match role.as_str() {
        "reinitialise" => ctx
            .init_token(slot, &pin(SO_PIN), "renewed")
            .expect("C_InitToken"),
        "reinitialise-when-told" => {
            tell_parent("ready");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            ctx.init_token(slot, &pin(SO_PIN), "renewed")
                .expect("C_InitToken");
            tell_parent("done");
        }
        "new-owner" => report_new_owners_objects(&ctx, slot),
        other => panic!("unknown role {other}"),
    }
}

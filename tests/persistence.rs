//! Durable token store across processes: token objects survive finalisation and come back
//! in a new process with every attribute; a second process running at the same time sees
//! the first one's committed changes without re-initialising (DESIGN.md §3).
//! Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::material::*;
use common::raw::Raw;
use common::*;
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki::session::Session;
use cryptoki_sys::*;

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Attributes compared between processes (whatever an object has of these).
const DUMPED: &[(CK_ATTRIBUTE_TYPE, &str)] = &[
    (CKA_CLASS, "CLASS"),
    (CKA_TOKEN, "TOKEN"),
    (CKA_PRIVATE, "PRIVATE"),
    (CKA_LABEL, "LABEL"),
    (CKA_APPLICATION, "APPLICATION"),
    (CKA_VALUE, "VALUE"),
    (CKA_OBJECT_ID, "OBJECT_ID"),
    (CKA_CERTIFICATE_TYPE, "CERTIFICATE_TYPE"),
    (CKA_SUBJECT, "SUBJECT"),
    (CKA_ID, "ID"),
    (CKA_KEY_TYPE, "KEY_TYPE"),
    (CKA_SENSITIVE, "SENSITIVE"),
    (CKA_ENCRYPT, "ENCRYPT"),
    (CKA_DECRYPT, "DECRYPT"),
    (CKA_WRAP, "WRAP"),
    (CKA_UNWRAP, "UNWRAP"),
    (CKA_SIGN, "SIGN"),
    (CKA_VERIFY, "VERIFY"),
    (CKA_DERIVE, "DERIVE"),
    (CKA_START_DATE, "START_DATE"),
    (CKA_END_DATE, "END_DATE"),
    (CKA_MODULUS, "MODULUS"),
    (CKA_MODULUS_BITS, "MODULUS_BITS"),
    (CKA_PUBLIC_EXPONENT, "PUBLIC_EXPONENT"),
    (CKA_PRIVATE_EXPONENT, "PRIVATE_EXPONENT"),
    (CKA_PRIME_1, "PRIME_1"),
    (CKA_PRIME_2, "PRIME_2"),
    (CKA_EXPONENT_1, "EXPONENT_1"),
    (CKA_EXPONENT_2, "EXPONENT_2"),
    (CKA_COEFFICIENT, "COEFFICIENT"),
    (CKA_VALUE_LEN, "VALUE_LEN"),
    (CKA_EXTRACTABLE, "EXTRACTABLE"),
    (CKA_LOCAL, "LOCAL"),
    (CKA_NEVER_EXTRACTABLE, "NEVER_EXTRACTABLE"),
    (CKA_ALWAYS_SENSITIVE, "ALWAYS_SENSITIVE"),
    (CKA_MODIFIABLE, "MODIFIABLE"),
    (CKA_COPYABLE, "COPYABLE"),
    (CKA_DESTROYABLE, "DESTROYABLE"),
    (CKA_EC_PARAMS, "EC_PARAMS"),
    (CKA_EC_POINT, "EC_POINT"),
    (CKA_UNIQUE_ID, "UNIQUE_ID"),
];

/// One line per visible object, sorted: its label, then NAME=hex (or NAME=sensitive) for each
/// attribute of [`DUMPED`] it has.
fn dump(session: &Session) -> Vec<String> {
    let raw = Raw::load();
    let mut lines = Vec::new();
    for object in session.find_objects(&[]).unwrap() {
        let mut line = String::new();
        for (ty, name) in DUMPED {
            let (result, lengths) =
                raw.get_attributes(session.handle(), object.handle(), &[*ty], 0);
            match result {
                Ok(()) => {
                    let len = lengths[0].0 as usize;
                    let (result, values) =
                        raw.get_attributes(session.handle(), object.handle(), &[*ty], len.max(1));
                    result.unwrap_or_else(|e| panic!("reading {name}: {e:?}"));
                    let value = &values[0].1[..len];
                    line.push_str(&format!(" {name}={}", to_hex(value)));
                }
                Err(cryptoki::error::RvError::AttributeSensitive) => {
                    line.push_str(&format!(" {name}=sensitive"))
                }
                Err(cryptoki::error::RvError::AttributeTypeInvalid) => {}
                Err(e) => panic!("{name}: {e:?}"),
            }
        }
        let label =
            String::from_utf8(attribute_bytes(session, object, AttributeType::Label)).unwrap();
        lines.push(format!("{label}:{line}"));
    }
    lines.sort();
    lines
}

/// Not a test: the body of the child processes started below.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    match role.as_str() {
        "dump" => {
            for line in dump(&session) {
                tell_parent(&line);
            }
        }
        // Answers commands from stdin until "quit" or EOF.
        "watcher" => {
            tell_parent("ready");
            for command in std::io::stdin().lock().lines() {
                let command = command.unwrap();
                let (verb, label) = command.split_once(' ').unwrap_or((command.as_str(), ""));
                match verb {
                    "find" => {
                        let found = find_by_label(&session, label);
                        let values: Vec<String> = found
                            .iter()
                            .map(|h| to_hex(&attribute_bytes(&session, *h, AttributeType::Value)))
                            .collect();
                        tell_parent(&format!("found {} {}", found.len(), values.join(",")));
                    }
                    "create" => {
                        session
                            .create_object(&data_template(label, b"from B", true))
                            .unwrap();
                        tell_parent("created");
                    }
                    "quit" => break,
                    other => panic!("unknown command {other}"),
                }
            }
        }
        other => panic!("unknown child role {other}"),
    }
    drop(session);
    ctx.finalize().unwrap();
}

fn create_every_kind_of_object(session: &Session) {
    let templates: Vec<Vec<Attribute>> = vec![
        aes_template("aes", &[0xA5; 32], true),
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Id(b"gs".to_vec()),
            Attribute::Label(b"generic-sensitive".to_vec()),
            Attribute::Value(b"generic secret value".to_vec()),
        ],
        vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Extractable(true),
            Attribute::Label(b"rsa-private".to_vec()),
            Attribute::Id(b"rsa".to_vec()),
            Attribute::Sign(true),
            Attribute::Modulus(hex(RSA_MODULUS)),
            Attribute::PublicExponent(hex(RSA_PUBLIC_EXPONENT)),
            Attribute::PrivateExponent(hex(RSA_PRIVATE_EXPONENT)),
            Attribute::Prime1(hex(RSA_PRIME1)),
            Attribute::Prime2(hex(RSA_PRIME2)),
            Attribute::Exponent1(hex(RSA_EXPONENT1)),
            Attribute::Exponent2(hex(RSA_EXPONENT2)),
            Attribute::Coefficient(hex(RSA_COEFFICIENT)),
        ],
        vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Label(b"rsa-public".to_vec()),
            Attribute::Id(b"rsa".to_vec()),
            Attribute::Verify(true),
            Attribute::Modulus(hex(RSA_MODULUS)),
            Attribute::PublicExponent(hex(RSA_PUBLIC_EXPONENT)),
        ],
        vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Extractable(true),
            Attribute::Label(b"ec-private".to_vec()),
            Attribute::EcParams(hex(EC_PARAMS_P256)),
            Attribute::Value(hex(EC_PRIVATE_VALUE)),
        ],
        vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Label(b"ec-public".to_vec()),
            Attribute::EcParams(hex(EC_PARAMS_P256)),
            Attribute::EcPoint(hex(EC_POINT_DER)),
        ],
        vec![
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"data-private".to_vec()),
            Attribute::Application(b"app".to_vec()),
            Attribute::Value(b"private data value".to_vec()),
        ],
        data_template("data-public", b"public data value", true),
        vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(b"certificate".to_vec()),
            Attribute::Id(b"rsa".to_vec()),
            Attribute::Subject(hex(CERT_SUBJECT_DER)),
            Attribute::Value(hex(CERT_DER)),
        ],
    ];
    for template in templates {
        session.create_object(&template).unwrap();
    }
    // A change after creation persists too.
    let renamed = session
        .create_object(&aes_template("to-be-renamed", &[1; 16], true))
        .unwrap();
    session
        .update_attributes(renamed, &[Attribute::Label(b"renamed".to_vec())])
        .unwrap();
    session
        .update_attributes(renamed, &[Attribute::Sensitive(true)])
        .unwrap();
    // And so does a destruction.
    let doomed = session
        .create_object(&data_template("destroyed", b"x", true))
        .unwrap();
    session.destroy_object(doomed).unwrap();
}

#[test]
fn token_objects_survive_a_restart_with_every_attribute() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    create_every_kind_of_object(&session);
    let before = dump(&session);
    assert_eq!(
        before.len(),
        10,
        "objects before restart:\n{}",
        before.join("\n")
    );
    session
        .create_object(&data_template("session-only", b"x", false))
        .unwrap();
    drop(session);
    ctx.finalize().unwrap();

    let output = child_command(CHILD_ENTRY, "dump")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = child_lines(&stdout);
    assert_eq!(
        after, before,
        "objects differ after a restart in a new process"
    );
}

struct Watcher {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

impl Watcher {
    fn start() -> Watcher {
        let mut child = child_command(CHILD_ENTRY, "watcher")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if let Some(reply) = child_line(&line) {
                    if tx.send(reply.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut watcher = Watcher {
            child,
            stdin,
            replies,
        };
        assert_eq!(watcher.reply(), "ready");
        watcher
    }

    fn reply(&mut self) -> String {
        self.replies
            .recv_timeout(Duration::from_secs(60))
            .expect("no answer from the watcher process within 60 s (exited or hung)")
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.reply()
    }

    fn quit(mut self) {
        writeln!(self.stdin, "quit").unwrap();
        self.stdin.flush().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "watcher exited with {status}");
    }
}

impl Drop for Watcher {
    /// A failing test must not leave the watcher running (it would hold the runner's pipes).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_second_process_sees_changes_made_while_both_run() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    // B initialises, logs in and opens its session before A creates anything.
    let mut b = Watcher::start();
    let session = user_session(&ctx, slot);
    // B has looked for the label (and found nothing) before A creates it: what B learned
    // from that search must not hide A's object later.
    assert_eq!(b.ask("find from-a"), "found 0");

    session
        .create_object(&data_template("from-a", b"hello", true))
        .unwrap();
    assert_eq!(
        b.ask("find from-a"),
        format!("found 1 {}", to_hex(b"hello"))
    );

    let key = session
        .create_object(&aes_template("secret-from-a", &[0x5A; 32], true))
        .unwrap();
    assert_eq!(
        b.ask("find secret-from-a"),
        format!("found 1 {}", to_hex(&[0x5A; 32]))
    );

    session
        .update_attributes(key, &[Attribute::Label(b"renamed-by-a".to_vec())])
        .unwrap();
    assert_eq!(
        b.ask("find renamed-by-a"),
        format!("found 1 {}", to_hex(&[0x5A; 32]))
    );
    assert_eq!(b.ask("find secret-from-a"), "found 0");

    let object = find_by_label(&session, "from-a")[0];
    session.destroy_object(object).unwrap();
    assert_eq!(b.ask("find from-a"), "found 0");

    // And the other way round: A sees what B creates.
    assert_eq!(b.ask("create from-b"), "created");
    let found = find_by_label(&session, "from-b");
    assert_eq!(found.len(), 1, "A does not see B's object");
    assert_eq!(
        attribute_bytes(&session, found[0], AttributeType::Value),
        b"from B"
    );

    // Session objects stay private to their process.
    session
        .create_object(&data_template("a-session-object", b"x", false))
        .unwrap();
    assert_eq!(b.ask("find a-session-object"), "found 0");
    b.quit();
}

//! kmshsm2-util against softhsm2-util: the same command lines, in the same order, each tool
//! on its own empty token directory; exit codes and the informative output lines must
//! agree (slot numbers, serials and paths normalised), except for the rows marked as
//! DIVERGENCES.md entries. Then the objects `--import` made are read back through each
//! module and their attributes compared.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Env, Module};

const SOFTHSM_UTIL: &str = "softhsm2-util";
const KMSHSM_UTIL: &str = env!("CARGO_BIN_EXE_kmshsm2-util");

struct Run {
    rc: i32,
    stdout: String,
    stderr: String,
}

fn run_tool(tool: &str, env: &Env, args: &[String]) -> Run {
    let mut command = Command::new(tool);
    command.args(args).stdin(Stdio::null());
    env.apply(&mut command);
    // No controlling terminal either: a PIN prompt must fail, as in CI.
    command.env_remove("DISPLAY");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (apt-get install -y softhsm2)"));
    Run {
        rc: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The output lines that carry meaning, with numbers and parenthesised names generalised.
fn normalise(stdout: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("Please ") || line.starts_with("===") {
            continue; // PIN prompts
        }
        let mut text = String::new();
        let mut in_paren = false;
        let mut last_digit = false;
        for c in line.chars() {
            match c {
                '(' => {
                    in_paren = true;
                    text.push_str("(X)");
                }
                ')' => in_paren = false,
                _ if in_paren => {}
                c if c.is_ascii_digit() => {
                    if !last_digit {
                        text.push('N');
                    }
                }
                c => text.push(c),
            }
            last_digit = c.is_ascii_digit();
        }
        out.push(text.trim_end().to_string());
    }
    out
}

/// The shape of --show-slots output: each line's field name, plus the Initialized values.
fn slot_shape(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| match l.split_once(':') {
            Some((k, v)) if k.trim() == "Initialized" || k.trim() == "User PIN init." => {
                format!("{}: {}", k.trim(), v.trim())
            }
            Some((k, _)) => k.trim().to_string(),
            None if l.starts_with("Slot ") => "Slot".into(),
            None => l.trim().to_string(),
        })
        .collect()
}

struct Step {
    args: Vec<String>,
    /// Compare whole --show-slots layouts rather than lines.
    show: bool,
    /// A known difference: (softhsm2-util's exit code, kmshsm2-util's, DIVERGENCES.md section).
    diverges: Option<(i32, i32, &'static str)>,
}

fn step(line: &str) -> Step {
    Step {
        args: line.split('|').map(str::to_string).collect(),
        show: line.starts_with("--show-slots"),
        diverges: None,
    }
}

fn known(line: &str, softhsm: i32, kmshsm: i32, section: &'static str) -> Step {
    Step {
        diverges: Some((softhsm, kmshsm, section)),
        ..step(line)
    }
}

fn key_files(dir: &Path) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    common::openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p("rsa.pem"),
    ]);
    common::openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p("ec.pem"),
    ]);
    common::openssl(&["ec", "-in", &p("ec.pem"), "-out", &p("ec-sec1.pem")]);
    common::openssl(&[
        "rsa",
        "-in",
        &p("rsa.pem"),
        "-traditional",
        "-out",
        &p("rsa-pkcs1.pem"),
    ]);
    std::fs::write(dir.join("aes.bin"), [0x42u8; 32]).unwrap();
    std::fs::write(dir.join("garbage.pem"), "not a key\n").unwrap();
}

fn steps(keys: &Path) -> Vec<Step> {
    let k = |n: &str| keys.join(n).to_str().unwrap().to_string();
    let (rsa, ec, sec1, pkcs1, aes, garbage) = (
        k("rsa.pem"),
        k("ec.pem"),
        k("ec-sec1.pem"),
        k("rsa-pkcs1.pem"),
        k("aes.bin"),
        k("garbage.pem"),
    );
    let long = "x".repeat(33);
    vec![
        step("--show-slots"),
        step("--init-token|--free|--label|alpha|--so-pin|12345678|--pin|1234"),
        step("--init-token|--free|--label|beta|--so-pin|12345678|--pin|1234"),
        step("--init-token|--token|alpha|--label|alpha2|--so-pin|12345678|--pin|5678"),
        step("--init-token|--token|alpha2|--label|alpha3|--so-pin|87654321|--pin|5678"),
        step("--init-token|--label|x|--so-pin|12345678|--pin|1234"),
        step("--init-token|--free|--so-pin|12345678|--pin|1234"),
        step(&format!(
            "--init-token|--free|--label|{long}|--so-pin|12345678|--pin|1234"
        )),
        step("--init-token|--free|--label|nopin"),
        step("--init-token|--free|--label|shortpin|--so-pin|123|--pin|1234"),
        step("--init-token|--slot|99999|--label|x|--so-pin|12345678|--pin|1234"),
        step("--init-token|--token|nosuch|--label|x|--so-pin|12345678|--pin|1234"),
        step("--show-slots"),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|rsa|--id|01|--pin|5678"
        )),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|rsa|--id|01|--pin|5678"
        )),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|rsa2|--id|01|--pin|5678|--force"
        )),
        step(&format!(
            "--import|{ec}|--token|alpha2|--label|ec|--id|02|--pin|5678"
        )),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|x|--id|zz|--pin|5678"
        )),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|x|--id|123|--pin|5678"
        )),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|x|--id|09|--pin|0000"
        )),
        step(&format!("--import|{rsa}|--token|alpha2|--id|09|--pin|5678")),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|x|--pin|5678"
        )),
        step(&format!("--import|{rsa}|--label|x|--id|09|--pin|5678")),
        step(&format!("--import|{rsa}|--token|alpha2|--label|x|--id|09")),
        step(&format!(
            "--import|{}|--token|alpha2|--label|x|--id|09|--pin|5678",
            k("missing.pem")
        )),
        step(&format!(
            "--import|{garbage}|--token|alpha2|--label|x|--id|09|--pin|5678"
        )),
        step(&format!(
            "--import|{rsa}|--token|alpha2|--label|rsapriv|--id|03|--pin|5678|--no-public-key"
        )),
        step(&format!(
            "--import|{aes}|--aes|--token|alpha2|--label|aes|--id|04|--pin|5678"
        )),
        known(
            &format!("--import|{sec1}|--token|alpha2|--label|sec1|--id|05|--pin|5678"),
            1,
            0,
            "tool-traditional-pem",
        ),
        known(
            &format!("--import|{pkcs1}|--token|alpha2|--label|pkcs1|--id|06|--pin|5678"),
            1,
            0,
            "tool-traditional-pem",
        ),
        step("--delete-token"),
        step("--delete-token|--token|nosuch"),
        step("--delete-token|--token|beta"),
        step("--delete-token|--token|beta"),
        step("--show-slots"),
        step("--help"),
        step("-h"),
        step("--init-token|--show-slots"),
        known("--bogus-option", 0, 1, "tool-unknown-option"),
        known(
            "--show-slots|--module|/usr/lib/softhsm/libsofthsm2.so",
            0,
            1,
            "tool-module",
        ),
    ]
}

#[test]
fn same_command_lines_same_results() {
    let keys = tempfile::tempdir().unwrap();
    key_files(keys.path());
    let (env_s, env_k) = (Env::new(), Env::new());
    let mut failures = Vec::new();
    for step in steps(keys.path()) {
        let s = run_tool(SOFTHSM_UTIL, &env_s, &step.args);
        let k = run_tool(KMSHSM_UTIL, &env_k, &step.args);
        let what = step.args.join(" ");
        if let Some((rs, rk, section)) = step.diverges {
            if (s.rc, k.rc) != (rs, rk) {
                failures.push(format!(
                    "{what}: exit codes {}/{} but DIVERGENCES.md#{section} says {rs}/{rk}",
                    s.rc, k.rc
                ));
            }
            continue;
        }
        if s.rc != k.rc {
            failures.push(format!(
                "{what}: softhsm2-util exit {} ({}{}), kmshsm2-util exit {} ({}{})",
                s.rc, s.stdout, s.stderr, k.rc, k.stdout, k.stderr
            ));
            continue;
        }
        let (so, ko) = if step.show {
            (slot_shape(&s.stdout), slot_shape(&k.stdout))
        } else if s.stdout.contains("Usage:") {
            // Our own wording; the same options must be listed.
            let opts = |t: &str| -> Vec<String> {
                let mut v: Vec<String> = t
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|w| w.starts_with('-'))
                    .map(|w| w.trim_end_matches(',').to_string())
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            (opts(&s.stdout), opts(&k.stdout))
        } else {
            (normalise(&s.stdout), normalise(&k.stdout))
        };
        if so != ko {
            failures.push(format!(
                "{what}: output differs\nsofthsm2-util: {so:#?}\nkmshsm2-util: {ko:#?}"
            ));
        }
        if (s.rc != 0) != k.stderr.contains("ERROR")
            && !step.args.contains(&"--init-token".to_string())
        {
            failures.push(format!("{what}: kmshsm2-util stderr {:?}", k.stderr));
        }
    }
    // The imported objects, read back through each module.
    let mut dumps = BTreeMap::new();
    for (module, env) in [(Module::SoftHsm, &env_s), (Module::Kmshsm, &env_k)] {
        let mut command = common::child("dump_imported_objects", module.name());
        env.apply(&mut command);
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{module:?} dump: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        dumps.insert(module.name(), common::lines_of(&out));
    }
    // DIVERGENCES.md#tool-ec-recover-flags: SoftHSMv2 marks imported EC keys
    // sign-recover/verify-recover capable; kmshsm2-util does not claim what EC cannot do.
    let allowed = |l: &String| {
        l.starts_with("[Label([101, 99])")
            && (l.contains("SignRecover =") || l.contains("VerifyRecover ="))
    };
    let (s, k) = (&dumps["softhsm"], &dumps["kmshsm"]);
    let s: Vec<&String> = s.iter().filter(|l| !allowed(l)).collect();
    let k: Vec<&String> = k.iter().filter(|l| !allowed(l)).collect();
    for line in s.iter().filter(|l| !k.contains(l)) {
        failures.push(format!(
            "imported objects: softhsm has `{line}`, kmshsm differs"
        ));
    }
    for line in k.iter().filter(|l| !s.contains(l)) {
        failures.push(format!(
            "imported objects: kmshsm has `{line}`, softhsm differs"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Child: prints the attributes of every object on token "alpha2", one line each.
#[test]
fn dump_imported_objects() {
    let Some(role) = common::child_role() else {
        return;
    };
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::AttributeType as A;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let module = Module::from_name(&role);
    let ctx = Pkcs11::new(module.path()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == "alpha2")
        .expect("token alpha2");
    let session = ctx.open_ro_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from("5678")))
        .unwrap();
    let types = [
        A::Class,
        A::KeyType,
        A::Token,
        A::Private,
        A::Modifiable,
        A::Label,
        A::Id,
        A::Sensitive,
        A::Extractable,
        A::AlwaysSensitive,
        A::NeverExtractable,
        A::Local,
        A::Encrypt,
        A::Decrypt,
        A::Sign,
        A::SignRecover,
        A::Verify,
        A::VerifyRecover,
        A::Wrap,
        A::Unwrap,
        A::Derive,
        A::Trusted,
        A::WrapWithTrusted,
        A::AlwaysAuthenticate,
        A::Modulus,
        A::PublicExponent,
        A::EcParams,
        A::EcPoint,
        A::ValueLen,
    ];
    for handle in session.find_objects(&[]).unwrap() {
        let label = session
            .get_attributes(handle, &[A::Label, A::Class])
            .unwrap();
        let name = format!("{label:?}");
        if name.contains("[115, 101, 99, 49]") || name.contains("[112, 107, 99, 115, 49]") {
            continue; // "sec1", "pkcs1": only kmshsm2-util imports those files
        }
        for ty in types {
            let value = match session.get_attributes(handle, &[ty]) {
                Ok(v) if !v.is_empty() => format!("{:?}", v[0]),
                Ok(_) => "unavailable".into(),
                Err(e) => format!("error {e}"),
            };
            common::emit(&format!("{name} {ty:?} = {value}"));
        }
    }
}

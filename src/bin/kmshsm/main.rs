//! `kmshsm`: the KMS API of the kms-docs on the command line, over the same token store
//! and core as the PKCS#11 module. Output is JSON with the documents' field names;
//! errors carry their error codes, a message, and a non-zero exit.

// CK_ULONG is u64 on this target but u32 on others; the casts are needed there.
#![allow(clippy::unnecessary_cast)]

mod attrs;
mod audit;
mod client;
mod copy;
mod time;
mod wrap;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::{Parser, Subcommand};
use kmshsm::config::Config;
use kmshsm::error::Error;
use kmshsm::kms::blob::CiphertextBlob;
use kmshsm::kms::import::WrappingAlgorithm;
use kmshsm::kms::key::{KeySpec, KeyState, KeyUsage, Origin};
use serde_json::{json, Value};

use client::{Client, KeyMetadata, TokenChoice};

#[derive(Parser)]
#[command(
    name = "kmshsm",
    version,
    about = "The KMS API (CreateKey, GetParametersForImport, ImportKeyMaterial, ...) over kmshsm tokens"
)]
struct Cli {
    /// The token's label.
    #[arg(long, global = true)]
    token_label: Option<String>,
    /// The token's slot ID.
    #[arg(long, global = true)]
    slot: Option<u64>,
    /// The user PIN (else $KMSHSM_PIN, else a prompt that does not echo).
    #[arg(long, global = true)]
    pin: Option<String>,
    /// A configuration file (else $KMSHSM_CONF, else the default).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// CreateKey.
    CreateKey {
        #[arg(long, default_value = "AES_256")]
        key_spec: String,
        #[arg(long, default_value = "ENCRYPT/DECRYPT")]
        key_usage: String,
        /// KMS (Aliyun_KMS is accepted too) or EXTERNAL.
        #[arg(long, default_value = "KMS")]
        origin: String,
        #[arg(long, default_value = "")]
        alias: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// DescribeKey.
    DescribeKey {
        #[arg(long)]
        key_id: String,
    },
    /// ListKeys.
    ListKeys,
    /// GetParametersForImport.
    GetParametersForImport {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        wrapping_algorithm: String,
        #[arg(long, default_value = "RSA_2048")]
        wrapping_key_spec: String,
    },
    /// ImportKeyMaterial.
    ImportKeyMaterial {
        #[arg(long)]
        key_id: String,
        /// Base64.
        #[arg(long)]
        encrypted_key_material: String,
        /// Base64.
        #[arg(long)]
        import_token: String,
        #[arg(long, default_value_t = 0)]
        key_material_expire_unix: u64,
    },
    /// DeleteKeyMaterial.
    DeleteKeyMaterial {
        #[arg(long)]
        key_id: String,
    },
    /// EnableKey.
    EnableKey {
        #[arg(long)]
        key_id: String,
    },
    /// DisableKey.
    DisableKey {
        #[arg(long)]
        key_id: String,
    },
    /// ScheduleKeyDeletion.
    ScheduleKeyDeletion {
        #[arg(long)]
        key_id: String,
        #[arg(long, default_value_t = 30)]
        pending_window_in_days: u32,
    },
    /// GetPublicKey (PEM).
    GetPublicKey {
        #[arg(long)]
        key_id: String,
    },
    /// Encrypt (base64 plaintext).
    Encrypt {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        plaintext: String,
    },
    /// Decrypt (base64 CiphertextBlob). A symmetric key's blob names its key, so
    /// --key-id is optional (if given, it must be the blob's); RSA and SM2 keys need it.
    Decrypt {
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        ciphertext_blob: String,
    },
    /// AsymmetricSign of a base64 message: RSA_PKCS1_SHA_256, RSA_PSS_SHA_256, ECDSA_SHA_256, SM2DSA.
    Sign {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        algorithm: String,
        #[arg(long)]
        message: String,
    },
    /// AsymmetricVerify.
    Verify {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        algorithm: String,
        #[arg(long)]
        message: String,
        #[arg(long)]
        value: String,
    },
    /// Copies a token to another store (a token directory, a postgresql:// URL, or a
    /// configuration file's store), records as they are, and verifies the copy. No PIN
    /// is needed; the source is the configuration's store unless --from names one.
    CopyToken {
        /// The token's serial (needed when the source holds several).
        #[arg(long)]
        serial: Option<String>,
        /// The source: a token directory, a postgresql:// URL, or a *.toml configuration.
        #[arg(long)]
        from: Option<String>,
        /// The destination, named the same ways; it must not hold the token yet.
        #[arg(long)]
        to: String,
        /// A slot id for the copy (else the source's; refused if the destination has it).
        #[arg(long)]
        slot_id: Option<u64>,
    },
    /// The token's audit trail of the key lifecycle (docs/audit.md).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Builds EncryptedKeyMaterial locally (no token needed).
    WrapKeyMaterial {
        /// The wrapping public key: base64 DER SubjectPublicKeyInfo (GetParametersForImport's PublicKey).
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        wrapping_algorithm: String,
        /// The material: raw key bytes, PKCS#8 DER, or (EC_SM2) the 32-byte scalar.
        #[arg(long)]
        key_material_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// The events, one per line (oldest first).
    List {
        #[arg(long)]
        key_id: Option<String>,
        /// Unix seconds or 2026-01-31T12:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// Unix seconds or 2026-01-31T12:00:00Z.
        #[arg(long)]
        until: Option<String>,
        /// JSON lines, one object per event.
        #[arg(long)]
        json: bool,
    },
    /// Checks the hash chain and every MAC; exits non-zero naming the first bad event.
    Verify,
    /// Removes events older than the retention (the configuration's
    /// audit_retention_days, or --older-than-days), leaving an authenticated checkpoint.
    Prune {
        #[arg(long)]
        older_than_days: Option<u32>,
    },
}

/// What a command prints.
enum Printed {
    Json(Value),
    /// Text as is (JSON lines, or the text listing).
    Text(String),
}

/// A command-line failure with its kms-docs error code.
struct Failure {
    code: &'static str,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match &e {
            Error::Kms(k) => k.code(),
            Error::PinIncorrect
            | Error::PinLocked
            | Error::UserNotLoggedIn
            | Error::UserPinNotInitialized => "Forbidden.PinIncorrect",
            Error::SlotIdInvalid | Error::TokenNotRecognized => "Forbidden.TokenNotFound",
            Error::KeyHandleInvalid | Error::ObjectHandleInvalid => "Forbidden.KeyNotFound",
            Error::EncryptedDataInvalid | Error::EncryptedDataLenRange => "InvalidCiphertext",
            Error::Config(_) => "InvalidConfiguration",
            Error::Store(_) | Error::Internal(_) | Error::Poisoned | Error::RandomFailed => {
                "InternalFailure"
            }
            _ => "InvalidParameter",
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        code: "InvalidParameter",
        message: message.into(),
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, Failure> {
    B64.decode(text.trim())
        .map_err(|_| invalid(format!("{what} is not valid base64")))
}

fn metadata(m: &KeyMetadata) -> Value {
    json!({
        "KeyId": m.key_id,
        "KeySpec": m.key_spec.map(|s| s.name()),
        "KeyUsage": m.key_usage.map(|u| u.name()),
        "Origin": m.origin.map(|o| match o { Origin::Kms => "Aliyun_KMS", Origin::External => "EXTERNAL" }),
        "KeyState": m.state.map(|s| s.name()),
        "Alias": m.alias,
        "Description": m.description,
        "MaterialExpireTime": if m.material_expiry == 0 { Value::Null } else { json!(time::iso8601(m.material_expiry as i64)) },
    })
}

fn pin(cli: &Cli) -> Result<String, Failure> {
    if let Some(p) = &cli.pin {
        return Ok(p.clone());
    }
    if let Ok(p) = std::env::var("KMSHSM_PIN") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(invalid(
            "no PIN: pass --pin, set KMSHSM_PIN, or run on a terminal to be asked",
        ));
    }
    rpassword::prompt_password("User PIN: ")
        .map_err(|e| invalid(format!("cannot read the PIN: {e}")))
}

/// Progress for slow steps, on a terminal only (never part of the JSON output).
fn progress(what: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{what} ...");
    }
}

fn parse<T>(value: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<T, Failure> {
    f(value).ok_or_else(|| invalid(format!("unknown {what} {value:?}")))
}

fn open(cli: &Cli) -> Result<Client, Failure> {
    if let Some(path) = &cli.config {
        // The library reads the configuration from this variable in C_Initialize.
        std::env::set_var("KMSHSM_CONF", path);
    }
    let choice = match (&cli.token_label, cli.slot) {
        (Some(l), _) => TokenChoice::Label(l.clone()),
        (None, Some(s)) => TokenChoice::Slot(kmshsm::ids::SlotId::new(s)),
        (None, None) => TokenChoice::Only,
    };
    let pin = pin(cli)?;
    Client::open(choice, pin.as_bytes()).map_err(|e| match e {
        Error::SlotIdInvalid => Failure {
            code: "Forbidden.TokenNotFound",
            message: "no such token (name it with --token-label or --slot when there are several)"
                .into(),
        },
        e => e.into(),
    })
}

fn run(cli: &Cli) -> Result<Printed, Failure> {
    if let Command::WrapKeyMaterial {
        public_key,
        wrapping_algorithm,
        key_material_file,
    } = &cli.command
    {
        let alg = parse(
            wrapping_algorithm,
            "wrapping algorithm",
            WrappingAlgorithm::from_name,
        )?;
        let material = std::fs::read(key_material_file)
            .map_err(|e| invalid(format!("cannot read {}: {e}", key_material_file.display())))?;
        let wrapped = wrap::wrap(&b64(public_key, "PublicKey")?, alg, &material)?;
        return Ok(Printed::Json(
            json!({ "EncryptedKeyMaterial": B64.encode(wrapped) }),
        ));
    }
    if let Command::CopyToken {
        serial,
        from,
        to,
        slot_id,
    } = &cli.command
    {
        let config = Config::load(cli.config.as_deref())?;
        return copy::run(&config, serial.as_deref(), from.as_deref(), to, *slot_id)
            .map(Printed::Json);
    }
    let client = open(cli)?;
    if let Command::Audit { action } = &cli.command {
        return match action {
            AuditAction::List {
                key_id,
                since,
                until,
                json,
            } => {
                let filter = audit::Filter {
                    key_id: key_id.clone(),
                    since: since.as_deref().map(audit::parse_time).transpose()?,
                    until: until.as_deref().map(audit::parse_time).transpose()?,
                };
                Ok(Printed::Text(audit::list(&client, &filter, *json)?))
            }
            AuditAction::Verify => audit::verify(&client).map(Printed::Json),
            AuditAction::Prune { older_than_days } => {
                audit::prune(&client, *older_than_days).map(Printed::Json)
            }
        };
    }
    let id = request_id();
    let out = match &cli.command {
        Command::CreateKey {
            key_spec,
            key_usage,
            origin,
            alias,
            description,
        } => {
            let spec = parse(key_spec, "key spec", KeySpec::from_name)?;
            let usage = parse(key_usage, "key usage", KeyUsage::from_name)?;
            let origin = match origin.as_str() {
                "KMS" | "Aliyun_KMS" => Origin::Kms,
                "EXTERNAL" => Origin::External,
                other => return Err(invalid(format!("unknown origin {other:?}"))),
            };
            if spec.rsa_bits().is_some_and(|b| b >= 3072) && origin == Origin::Kms {
                progress(&format!("generating a {spec} key"));
            }
            let h = client.create_key(spec, usage, origin, alias, description)?;
            json!({ "KeyMetadata": metadata(&client.describe(h)?), "RequestId": id })
        }
        Command::DescribeKey { key_id } => {
            let (h, _) = client.key(key_id)?;
            json!({ "KeyMetadata": metadata(&client.describe(h)?), "RequestId": id })
        }
        Command::ListKeys => {
            let keys: Vec<Value> = client
                .list()?
                .iter()
                .map(|m| json!({ "KeyId": m.key_id, "KeyArn": m.key_id }))
                .collect();
            json!({ "Keys": { "Key": keys }, "TotalCount": keys.len(), "RequestId": id })
        }
        Command::GetParametersForImport {
            key_id,
            wrapping_algorithm,
            wrapping_key_spec,
        } => {
            let alg = parse(
                wrapping_algorithm,
                "wrapping algorithm",
                WrappingAlgorithm::from_name,
            )?;
            if alg.wrapping_key_spec().name() != wrapping_key_spec {
                return Err(invalid(format!(
                    "{wrapping_algorithm} needs WrappingKeySpec {}",
                    alg.wrapping_key_spec().name()
                )));
            }
            progress("generating the wrapping key");
            let p = client.parameters_for_import(key_id, alg)?;
            let hex: String = p.id.iter().map(|b| format!("{b:02x}")).collect();
            let pct: String = p.id.iter().map(|b| format!("%{b:02x}")).collect();
            json!({
                "KeyId": key_id,
                "ImportToken": B64.encode(&p.token),
                "PublicKey": B64.encode(&p.public_key),
                "TokenExpireTime": time::iso8601(p.expiry as i64),
                "WrappingKeyLabel": p.label,
                "WrappingKeyId": hex,
                "WrappingKeyUri": format!("pkcs11:object={};id={pct};type=private", p.label),
                "RequestId": id,
            })
        }
        Command::ImportKeyMaterial {
            key_id,
            encrypted_key_material,
            import_token,
            key_material_expire_unix,
        } => {
            let material = b64(encrypted_key_material, "EncryptedKeyMaterial")?;
            let token = b64(import_token, "ImportToken")?;
            client.import(key_id, &material, &token, *key_material_expire_unix)?;
            json!({ "RequestId": id })
        }
        Command::DeleteKeyMaterial { key_id } => {
            client.set_state(key_id, KeyState::PendingImport)?;
            json!({ "RequestId": id })
        }
        Command::EnableKey { key_id } => {
            client.set_state(key_id, KeyState::Enabled)?;
            json!({ "RequestId": id })
        }
        Command::DisableKey { key_id } => {
            client.set_state(key_id, KeyState::Disabled)?;
            json!({ "RequestId": id })
        }
        Command::ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
        } => {
            if !(7..=366).contains(pending_window_in_days) {
                return Err(invalid("PendingWindowInDays must be between 7 and 366"));
            }
            client.set_state(key_id, KeyState::PendingDeletion)?;
            json!({ "RequestId": id })
        }
        Command::GetPublicKey { key_id } => {
            let der = client.public_key_der(key_id)?;
            let body: Vec<String> = B64
                .encode(der)
                .as_bytes()
                .chunks(64)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                body.join("\n")
            );
            json!({ "KeyId": key_id, "PublicKey": pem, "RequestId": id })
        }
        Command::Encrypt { key_id, plaintext } => {
            let blob = client.encrypt(key_id, &b64(plaintext, "Plaintext")?)?;
            json!({ "KeyId": key_id, "CiphertextBlob": B64.encode(blob), "RequestId": id })
        }
        Command::Decrypt {
            key_id,
            ciphertext_blob,
        } => {
            let data = b64(ciphertext_blob, "CiphertextBlob")?;
            let public_key = match key_id {
                Some(k) => client.spec(k)?.is_some_and(|s| s.symmetric_len().is_none()),
                None => false,
            };
            let (key, plain) = match key_id {
                Some(k) if public_key => (k.clone(), client.decrypt_public_key(k, &data)?),
                _ => {
                    let blob = CiphertextBlob::parse(&data).map_err(|e| Failure {
                        code: "InvalidCiphertext",
                        message: e.to_string(),
                    })?;
                    if key_id.as_ref().is_some_and(|k| k != blob.key_id.as_str()) {
                        return Err(Failure {
                            code: "InvalidCiphertext",
                            message: "the CiphertextBlob was made by another key than --key-id"
                                .into(),
                        });
                    }
                    (blob.key_id.to_string(), client.decrypt_blob(&blob)?)
                }
            };
            json!({ "KeyId": key, "Plaintext": B64.encode(plain), "RequestId": id })
        }
        Command::Sign {
            key_id,
            algorithm,
            message,
        } => {
            let sig = client.sign(key_id, algorithm, &b64(message, "Message")?)?;
            json!({ "KeyId": key_id, "Value": B64.encode(sig), "RequestId": id })
        }
        Command::Verify {
            key_id,
            algorithm,
            message,
            value,
        } => {
            let ok = client.verify(
                key_id,
                algorithm,
                &b64(message, "Message")?,
                &b64(value, "Value")?,
            )?;
            json!({ "KeyId": key_id, "Value": ok, "RequestId": id })
        }
        Command::WrapKeyMaterial { .. } | Command::CopyToken { .. } | Command::Audit { .. } => {
            return Err(invalid("unreachable"))
        }
    };
    Ok(Printed::Json(out))
}

/// The error answer every failure prints: `{"Code", "Message", "RequestId"}` on standard
/// error, exit status 1 (docs/cli.md).
fn fail(code: &str, message: &str) -> ExitCode {
    let out = json!({ "Code": code, "Message": message, "RequestId": request_id() });
    eprintln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` are answers, printed as clap prints them.
        Err(e) if !e.use_stderr() => {
            return match e.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        // No command given (`kmshsm`, `kmshsm audit`): clap's answer is the help page,
        // whose first line describes the command rather than what is missing.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return fail(
                "InvalidParameter",
                "the command line names no command; `kmshsm --help` lists them",
            );
        }
        // A command line the parser refuses (an unknown option, a value out of range)
        // fails as every other bad input does.
        Err(e) => {
            let message = e.render().to_string();
            let first = message.lines().next().unwrap_or_default();
            return fail(
                "InvalidParameter",
                first.strip_prefix("error: ").unwrap_or(first),
            );
        }
    };
    match run(&cli) {
        Ok(Printed::Json(out)) => {
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(Printed::Text(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(f) => fail(f.code, &f.message),
    }
}

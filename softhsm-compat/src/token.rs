//! The four actions over the kmshsm library: the same PKCS#11 semantics the C ABI calls
//! (`kmshsm::provider`, `kmshsm::token`), without the ABI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cryptoki_sys::*;
use kmshsm::error::Error;
use kmshsm::ids::{SessionHandle, SlotId};
use kmshsm::object::attr::{AttrType, RawAttribute, RawValue};
use kmshsm::provider::{self, InitOptions, Provider, SlotView};
use kmshsm::session::Session;
use kmshsm::token::{UserKind, LABEL_LEN};
use zeroize::Zeroizing;

use crate::args::Args;
use crate::keyfile::{self, KeyFileError, KeyPair};
use crate::pin::{self, Role};
use crate::{fail, Failed};

/// What kmshsm's C_GetSlotInfo/C_GetTokenInfo report besides the token's own fields.
const MANUFACTURER: &str = "kmshsm project";
const MODEL: &str = "kmshsm";

fn raw(ty: CK_ATTRIBUTE_TYPE, bytes: Vec<u8>) -> RawAttribute {
    RawAttribute {
        ty: AttrType::from_raw(ty),
        value: RawValue::Bytes(Zeroizing::new(bytes)),
    }
}

fn ulong(ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> RawAttribute {
    raw(ty, v.to_ne_bytes().to_vec())
}

fn boolean(ty: CK_ATTRIBUTE_TYPE, v: bool) -> RawAttribute {
    raw(ty, vec![u8::from(v)])
}

fn padded(text: &str, len: usize) -> String {
    format!("{text:<len$}")
}

fn label_text(label: &[u8; LABEL_LEN]) -> String {
    String::from_utf8_lossy(label).trim_end().to_string()
}

/// The kmshsm library, initialised for this process.
pub(crate) struct Library {
    provider: Arc<Provider>,
}

/// A slot with an initialised token, as the selection options see it.
struct Found {
    slot: SlotView,
    label: String,
}

impl Library {
    pub(crate) fn open() -> Result<Library, Failed> {
        provider::initialize(InitOptions::default())
            .map_err(|e| fail(format!("Could not initialize the library: {e}")))?;
        let provider = provider::get().map_err(|e| fail(e.to_string()))?;
        Ok(Library { provider })
    }

    pub(crate) fn close(self) {
        drop(self.provider);
        let _ = provider::finalize();
    }

    fn slots(&self) -> Vec<SlotView> {
        self.provider
            .slot_ids()
            .into_iter()
            .filter_map(|id| self.provider.slot(id).ok())
            .collect()
    }

    fn initialised(&self) -> Result<Vec<Found>, Failed> {
        let mut out = Vec::new();
        for slot in self.slots() {
            if let Some(token) = &slot.token {
                let status = token.status().map_err(|e| fail(e.to_string()))?;
                out.push(Found {
                    label: label_text(&status.label),
                    slot,
                });
            }
        }
        Ok(out)
    }

    /// The initialised tokens matching --serial and/or --token.
    fn matching(&self, args: &Args) -> Result<(Vec<Found>, &'static str), Failed> {
        let how = match (&args.serial, &args.token) {
            (Some(_), Some(_)) => "serial and token label",
            (Some(_), None) => "serial",
            _ => "token label",
        };
        let found = self
            .initialised()?
            .into_iter()
            .filter(|f| args.serial.as_ref().is_none_or(|s| *s == f.slot.serial))
            .filter(|f| args.token.as_ref().is_none_or(|t| *t == f.label))
            .collect();
        Ok((found, how))
    }

    fn slot_by_number(&self, text: &str) -> Result<SlotView, Failed> {
        let id: u64 = text.trim().parse().unwrap_or(u64::MAX);
        self.provider
            .slot(SlotId::new(id))
            .map_err(|_| fail(format!("CKR_SLOT_ID_INVALID: Slot {text} does not exist.")))
    }

    /// --slot, or a single token matching --serial/--token.
    fn select(&self, args: &Args) -> Result<SlotView, Failed> {
        if let Some(slot) = &args.slot {
            return self.slot_by_number(slot);
        }
        let (found, how) = self.matching(args)?;
        for f in &found {
            println!("Found slot {} with matching {how}.", f.slot.id);
        }
        match found.len() {
            // Exactly one element, by the match arm.
            1 => Ok(found.into_iter().next().expect("one match").slot),
            0 => Err(fail(
                "Could not find a slot/token using --serial, --token, or --free.",
            )),
            _ => Err(fail("Found multiple matching slots/tokens.")),
        }
    }

    fn session(&self, slot: SlotId) -> Result<(SessionHandle, Arc<Session>), Failed> {
        let p = &self.provider;
        let handle = p
            .open_session(slot, true)
            .map_err(|e| fail(format!("Could not open a session with the library: {e}")))?;
        let session = p.session(handle).map_err(|e| fail(e.to_string()))?;
        Ok((handle, session))
    }

    // -------------------------------------------------------------------------------
    // --init-token

    pub(crate) fn init_token(&self, args: &Args) -> Result<(), Failed> {
        if args.slot.is_none() && args.token.is_none() && args.serial.is_none() && !args.free {
            return Err(fail(
                "A slot/token must be supplied. Use --slot <number>, --serial <serial>, \
                 --token <label>, or --free",
            ));
        }
        let (slot, was_free) =
            if args.slot.is_none() && args.token.is_none() && args.serial.is_none() {
                let free = self
                    .slots()
                    .into_iter()
                    .find(|s| s.token.is_none())
                    .ok_or_else(|| fail("Could not find a free/uninitialized token."))?;
                println!("Slot {} has a free/uninitialized token.", free.id);
                (free, true)
            } else {
                let slot = self.select(args)?;
                let free = slot.token.is_none();
                (slot, free)
            };
        let Some(label) = &args.label else {
            return Err(fail(
                "A label for the token must be supplied. Use --label <text>",
            ));
        };
        if label.len() > LABEL_LEN {
            return Err(fail(format!(
                "The token label must not have a length greater than {LABEL_LEN} chars."
            )));
        }
        let so_pin = pin::get(Role::So, args.so_pin.as_deref(), true)?;
        let user_pin = pin::get(Role::User, args.pin.as_deref(), true)?;
        let mut padded_label = [b' '; LABEL_LEN];
        padded_label[..label.len()].copy_from_slice(label.as_bytes());

        let p = &self.provider;
        p.init_token(slot.id, so_pin.as_bytes(), padded_label)
            .map_err(|e| match e {
                Error::PinIncorrect => fail(
                    "CKR_PIN_INCORRECT: The given SO PIN does not match the one in the token. \
                     Needed when reinitializing the token.",
                ),
                Error::PinLocked => fail("CKR_PIN_LOCKED: The SO PIN is locked."),
                Error::SessionExists => {
                    fail("CKR_SESSION_EXISTS: The token is in use (another session is open on it).")
                }
                e => fail(format!("Could not initialize the token: {e}")),
            })?;
        let (handle, session) = self.session(slot.id)?;
        let result = session
            .token
            .login(handle, UserKind::So, so_pin.as_bytes())
            .map_err(|e| fail(format!("Could not log in on the token: {e}")))
            .and_then(|()| {
                session
                    .token
                    .init_pin(true, user_pin.as_bytes())
                    .map_err(|e| fail(format!("Could not initialize the user PIN: {e}")))
            });
        let _ = session.token.logout();
        drop(session);
        let _ = p.close_session(handle);
        result?;
        if was_free {
            println!(
                "The token has been initialized and is reassigned to slot {}",
                slot.id
            );
        } else {
            println!("The token has been initialized on slot {}", slot.id);
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------
    // --show-slots

    pub(crate) fn show_slots(&self) -> Result<(), Failed> {
        let (major, minor) = (
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR"),
        );
        println!("Available slots:");
        for slot in self.slots() {
            let status = match &slot.token {
                Some(t) => Some(t.status().map_err(|e| fail(e.to_string()))?),
                None => None,
            };
            let yes = |b: bool| if b { "yes" } else { "no" };
            println!("Slot {}", slot.id);
            println!("    Slot info:");
            println!(
                "        Description:      {}",
                padded(&format!("kmshsm slot {}", slot.id), 64)
            );
            println!("        Manufacturer ID:  {}", padded(MANUFACTURER, 32));
            println!("        Hardware version: {major}.{minor}");
            println!("        Firmware version: {major}.{minor}");
            println!("        Token present:    yes");
            println!("    Token info:");
            println!("        Manufacturer ID:  {}", padded(MANUFACTURER, 32));
            println!("        Model:            {}", padded(MODEL, 16));
            println!("        Hardware version: {major}.{minor}");
            println!("        Firmware version: {major}.{minor}");
            println!("        Serial number:    {}", padded(&slot.serial, 16));
            println!("        Initialized:      {}", yes(status.is_some()));
            println!(
                "        User PIN init.:   {}",
                yes(status.as_ref().is_some_and(|s| s.user_pin_initialized))
            );
            let label = status
                .map(|s| String::from_utf8_lossy(&s.label).into_owned())
                .unwrap_or_else(|| " ".repeat(LABEL_LEN));
            println!("        Label:            {label}");
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------
    // --import

    pub(crate) fn import(&self, args: &Args, path: &str) -> Result<(), Failed> {
        if args.slot.is_none() && args.token.is_none() && args.serial.is_none() {
            return Err(fail(
                "A slot/token must be supplied. Use --slot <number>, --serial <serial>, \
                 or --token <label>",
            ));
        }
        let slot = self.select(args)?;
        let Some(label) = &args.label else {
            return Err(fail(
                "A label for the object must be supplied. Use --label <text>",
            ));
        };
        let Some(id_hex) = &args.id else {
            return Err(fail(
                "An ID for the object must be supplied. Use --id <hex>",
            ));
        };
        if slot.token.is_none() {
            return Err(fail(format!(
                "CKR_TOKEN_NOT_RECOGNIZED: The token in slot {} is not initialized.",
                slot.id
            )));
        }
        let user_pin = pin::get(Role::User, args.pin.as_deref(), false)?;
        let id = hex(id_hex)?;
        if args.file_pin.is_some() {
            return Err(fail(
                "Encrypted key files (--file-pin) are not supported; decrypt the file first, \
                 e.g. openssl pkcs8 -in encrypted.pem -out plain.pem",
            ));
        }
        let (handle, session) = self.session(slot.id)?;
        let result = self.import_logged_in(args, path, &session, &user_pin, label, &id);
        let _ = session.token.logout();
        drop(session);
        let _ = self.provider.close_session(handle);
        result
    }

    fn import_logged_in(
        &self,
        args: &Args,
        path: &str,
        session: &Session,
        user_pin: &str,
        label: &str,
        id: &[u8],
    ) -> Result<(), Failed> {
        let token = &session.token;
        token
            .login(session.handle, UserKind::User, user_pin.as_bytes())
            .map_err(|e| match e {
                Error::PinIncorrect => {
                    fail("The given user PIN does not match the one in the token.")
                }
                e => fail(format!("Could not log in on the token: {e}")),
            })?;
        let common = |class: CK_OBJECT_CLASS, key_type: CK_KEY_TYPE, private: bool| {
            vec![
                ulong(CKA_CLASS, class),
                ulong(CKA_KEY_TYPE, key_type),
                boolean(CKA_TOKEN, true),
                boolean(CKA_PRIVATE, private),
                raw(CKA_LABEL, label.as_bytes().to_vec()),
                raw(CKA_ID, id.to_vec()),
            ]
        };
        let create = |template: Vec<RawAttribute>| {
            token
                .create_object(session.caller(), &template)
                .map_err(|e| fail(format!("Could not save the object in the token: {e}")))
        };
        if args.aes {
            let value = Zeroizing::new(
                std::fs::read(path)
                    .map_err(|_| fail(format!("Could not open the key file: {path}")))?,
            );
            let mut t = common(CKO_SECRET_KEY, CKK_AES, true);
            t.extend([
                boolean(CKA_SENSITIVE, true),
                boolean(CKA_ENCRYPT, true),
                boolean(CKA_DECRYPT, true),
                boolean(CKA_SIGN, true),
                boolean(CKA_VERIFY, true),
                boolean(CKA_WRAP, true),
                boolean(CKA_UNWRAP, true),
                raw(CKA_VALUE, value.to_vec()),
            ]);
            create(t)?;
            return Ok(());
        }
        if !args.force {
            let same_id = token
                .find(&[raw(CKA_ID, id.to_vec())])
                .map_err(|e| fail(e.to_string()))?;
            if !same_id.is_empty() {
                return Err(fail(
                    "The ID is already assigned to another object. Use --force to override \
                     this message.",
                ));
            }
        }
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|_| fail(format!("Could not open the PKCS#8 file: {path}")))?,
        );
        let pair = keyfile::read(&bytes).map_err(|e| match e {
            KeyFileError::Encrypted => fail(
                "The key file is encrypted, which this tool does not support; decrypt it first",
            ),
            KeyFileError::Invalid => fail(
                "Could not read the PKCS#8 file. Maybe it is encrypted, or not a private key \
                 of a supported type.",
            ),
        })?;
        let (private, public) = match pair {
            KeyPair::Rsa(k) => {
                let mut private = common(CKO_PRIVATE_KEY, CKK_RSA, true);
                private.extend([
                    boolean(CKA_SENSITIVE, true),
                    boolean(CKA_DECRYPT, true),
                    boolean(CKA_SIGN, true),
                    boolean(CKA_UNWRAP, true),
                    raw(CKA_MODULUS, k.n.clone()),
                    raw(CKA_PUBLIC_EXPONENT, k.e.clone()),
                    raw(CKA_PRIVATE_EXPONENT, k.d.to_vec()),
                    raw(CKA_PRIME_1, k.p.to_vec()),
                    raw(CKA_PRIME_2, k.q.to_vec()),
                    raw(CKA_EXPONENT_1, k.dp.to_vec()),
                    raw(CKA_EXPONENT_2, k.dq.to_vec()),
                    raw(CKA_COEFFICIENT, k.qinv.to_vec()),
                ]);
                let mut public = common(CKO_PUBLIC_KEY, CKK_RSA, false);
                public.extend([
                    boolean(CKA_ENCRYPT, true),
                    boolean(CKA_VERIFY, true),
                    boolean(CKA_WRAP, true),
                    raw(CKA_MODULUS, k.n),
                    raw(CKA_PUBLIC_EXPONENT, k.e),
                ]);
                (private, public)
            }
            KeyPair::Ec(k) => {
                let mut private = common(CKO_PRIVATE_KEY, CKK_EC, true);
                private.extend([
                    boolean(CKA_SENSITIVE, true),
                    boolean(CKA_SIGN, true),
                    boolean(CKA_DECRYPT, false),
                    boolean(CKA_UNWRAP, false),
                    raw(CKA_EC_PARAMS, k.params.clone()),
                    raw(CKA_VALUE, k.d.to_vec()),
                ]);
                let mut public = common(CKO_PUBLIC_KEY, CKK_EC, false);
                public.extend([
                    boolean(CKA_VERIFY, true),
                    boolean(CKA_ENCRYPT, false),
                    boolean(CKA_WRAP, false),
                    raw(CKA_EC_PARAMS, k.params),
                    raw(
                        CKA_EC_POINT,
                        kmshsm::crypto::ec::point_to_attribute(&k.point),
                    ),
                ]);
                (private, public)
            }
        };
        let private_handle = create(private)?;
        if !args.no_public_key {
            if let Err(failed) = create(public) {
                // Leave no half-imported pair behind.
                let _ = token.destroy_object(session.caller(), private_handle);
                return Err(failed);
            }
        }
        println!("The key pair has been imported.");
        Ok(())
    }

    // -------------------------------------------------------------------------------
    // --delete-token

    /// The database of the one token matching --serial/--token (deleted by
    /// [`delete_files`] once the library has closed it).
    pub(crate) fn token_to_delete(&self, args: &Args) -> Result<PathBuf, Failed> {
        if args.serial.is_none() && args.token.is_none() {
            return Err(fail(
                "A token must be supplied. Use --serial <serial> or --token <label>",
            ));
        }
        let (found, how) = self.matching(args)?;
        for f in &found {
            println!("Found token ({}) with matching {how}.", f.slot.serial);
        }
        let target = match found.len() {
            // Exactly one element, by the match arm.
            1 => found.into_iter().next().expect("one match"),
            0 => return Err(fail("Could not find a token using --serial or --token.")),
            _ => return Err(fail("Found multiple matching tokens.")),
        };
        target
            .slot
            .token
            .as_ref()
            .map(|t| std::path::PathBuf::from(t.location()))
            .ok_or_else(|| fail("the token vanished"))
    }
}

/// Removes a token database and SQLite's side files.
pub(crate) fn delete_files(db: &Path) -> Result<(), Failed> {
    let mut first_error = None;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.to_path_buf().into_os_string();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(fail(format!(
            "Could not delete the token database {}: {e}",
            db.display()
        )));
    }
    println!("The token ({}) has been deleted.", db.display());
    Ok(())
}

/// `--id` decoded; softhsm2-util's two error cases.
fn hex(text: &str) -> Result<Vec<u8>, Failed> {
    let hint = "\nPlease edit --id <hex> to correct error.";
    if !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(fail(format!("Invalid character in hex string.{hint}")));
    }
    if text.len() % 2 != 0 {
        return Err(fail(format!("Invalid length on hex string.{hint}")));
    }
    // Every character is an ASCII hex digit and the length is even (checked above).
    Ok((0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect())
}

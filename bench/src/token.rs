//! Loading the two modules and their tokens: the configuration files, token initialisation
//! and lookup, user sessions, and the on-disk token cache (cache paths and copies of it).
//!
//! The same code serves both modules. It must not time anything or create key objects:
//! measuring belongs to the phase modules and key templates to `keys`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::{err, Cfg, Res};

const SO_PIN: &str = "bench-so-pin-0000";
pub(crate) const USER_PIN: &str = "bench-user-pin-1111";
const TOKEN_LABEL: &str = "bench";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Which {
    Kms,
    Soft,
}

impl Which {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Which::Kms => "kmshsm",
            Which::Soft => "softhsm",
        }
    }
}

/// Writes both modules' configuration files into `dir` and points the environment at them.
/// kmshsm keeps its DEFAULT KDF settings (Argon2id, what users get).
pub(crate) fn configure(dir: &Path, kms_tokens: &Path, soft_tokens: &Path) -> Res<()> {
    std::fs::create_dir_all(dir).map_err(err("mkdir"))?;
    std::fs::create_dir_all(kms_tokens).map_err(err("mkdir"))?;
    std::fs::create_dir_all(soft_tokens).map_err(err("mkdir"))?;
    let kconf = dir.join("kmshsm.toml");
    let sconf = dir.join("softhsm2.conf");
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{} is not UTF-8", p.display()))
    };
    std::fs::write(
        &kconf,
        format!(
            "token_dir = {:?}\nlog_level = \"error\"\nlog_file = {:?}\n",
            utf8(kms_tokens)?,
            utf8(&dir.join("kmshsm.log"))?
        ),
    )
    .map_err(err("write kmshsm.toml"))?;
    std::fs::write(
        &sconf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            soft_tokens.display()
        ),
    )
    .map_err(err("write softhsm2.conf"))?;
    std::env::set_var("KMSHSM_CONF", &kconf);
    std::env::set_var("SOFTHSM2_CONF", &sconf);
    Ok(())
}

fn load(path: &Path) -> Res<Pkcs11> {
    let ctx = Pkcs11::new(path).map_err(err("load module"))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(err("C_Initialize"))?;
    Ok(ctx)
}

pub(crate) fn find_token(ctx: &Pkcs11) -> Res<Option<Slot>> {
    for slot in ctx
        .get_slots_with_initialized_token()
        .map_err(err("C_GetSlotList"))?
    {
        let info = ctx.get_token_info(slot).map_err(err("C_GetTokenInfo"))?;
        if info.label().trim_end() == TOKEN_LABEL {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Initialises a token labelled [`TOKEN_LABEL`] on the free slot and sets the user PIN.
fn init_token(ctx: &Pkcs11) -> Res<Slot> {
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(err("C_GetSlotList"))? {
        if !ctx
            .get_token_info(slot)
            .map_err(err("C_GetTokenInfo"))?
            .token_initialized()
        {
            free = Some(slot);
            break;
        }
    }
    let free = free.ok_or("no free slot")?;
    ctx.init_token(free, &AuthPin::new(SO_PIN.into()), TOKEN_LABEL)
        .map_err(err("C_InitToken"))?;
    let slot = find_token(ctx)?.ok_or("token vanished after C_InitToken")?;
    let s = ctx.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .map_err(err("C_Login(SO)"))?;
    s.init_pin(&AuthPin::new(USER_PIN.into()))
        .map_err(err("C_InitPIN"))?;
    s.logout().map_err(err("C_Logout"))?;
    Ok(slot)
}

pub(crate) fn user_session(ctx: &Pkcs11, slot: Slot) -> Res<Session> {
    let s = ctx.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    match s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
        Ok(()) => {}
        // A second session of an application that is already logged in.
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(format!("C_Login: {e}")),
    }
    Ok(s)
}

pub(crate) struct Loaded {
    pub(crate) which: Which,
    pub(crate) ctx: Pkcs11,
    pub(crate) slot: Slot,
    pub(crate) s: Session,
}

pub(crate) fn start(which: Which, path: &Path, fresh: bool) -> Res<Loaded> {
    let ctx = load(path).map_err(|e| format!("{}: {e}", which.tag()))?;
    let slot = if fresh {
        init_token(&ctx)?
    } else {
        find_token(&ctx)?.ok_or("token not found")?
    };
    let s = user_session(&ctx, slot)?;
    Ok(Loaded {
        which,
        ctx,
        slot,
        s,
    })
}

pub(crate) fn stop(m: Loaded) {
    let Loaded { ctx, s, .. } = m;
    drop(s);
    let _ = ctx.finalize();
}

/// kmshsm's cached tokens are named after its store schema (the SQLite store's
/// `PRAGMA user_version`) and object index version, so a cache written by an earlier
/// build (which the module would upgrade or reindex on the first, measured, open of every
/// copy) is not reused. Bump it with `store/sqlite/schema.rs` `SCHEMA_VERSION` and
/// `object/index.rs` `VERSION`.
pub(crate) const KMSHSM_STORE_SCHEMA: &str = "sqlite7-index2";

pub(crate) fn cache_dir(cfg: &Cfg, which: Which, n: usize) -> PathBuf {
    match which {
        Which::Kms => cfg
            .cache()
            .join(format!("{}-{KMSHSM_STORE_SCHEMA}-{n}", which.tag())),
        Which::Soft => cfg.cache().join(format!("{}-{n}", which.tag())),
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    let _ = std::fs::remove_dir_all(to);
    // Every destination is a directory inside the benchmark's cache, never the root.
    std::fs::create_dir_all(to.parent().expect("a parent")).map_err(err("mkdir"))?;
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(err("cp"))?;
    if !st.success() {
        return Err(format!("cp -a {} {} failed", from.display(), to.display()));
    }
    Ok(())
}

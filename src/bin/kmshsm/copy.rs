//! `kmshsm copy-token`: moves a token between stores (a token directory, a PostgreSQL
//! database) by copying its records as they are (`kmshsm::token::copy`). No PIN is
//! asked: sealed records stay sealed. This module only turns the command line's
//! locations into stores; it must not print a store URL's password.

use std::path::Path;

use kmshsm::config::{Config, StoreUrl};
use kmshsm::error::Error;
use kmshsm::provider::backend_of;
use kmshsm::store::Backend;
use kmshsm::token::copy::copy_token;
use serde_json::{json, Value};

use crate::{invalid, Failure};

/// Which end of the copy a store named on the command line is: a source is only read,
/// so a token directory named as one must exist (it is not made, as a destination's is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Source,
    Destination,
}

/// A store named on the command line: a `postgresql://` URL (with the `[postgres]`
/// settings of `config`), a configuration file (`*.toml`: its store), or a token
/// directory.
fn backend(location: &str, config: &Config, end: End) -> Result<Backend, Failure> {
    if location.starts_with("postgresql://") || location.starts_with("postgres://") {
        let mut pg = config.clone();
        pg.store_url = Some(StoreUrl::new(location));
        return Ok(backend_of(&pg)?);
    }
    let path = Path::new(location);
    if path.extension().is_some_and(|x| x == "toml") {
        if !path.is_file() {
            return Err(invalid(format!("no configuration file {location}")));
        }
        return store_of(&Config::from_file(path)?, end);
    }
    if path.exists() && !path.is_dir() {
        return Err(invalid(format!(
            "{location} is neither a token directory, a configuration file (*.toml) nor a \
             postgresql:// URL"
        )));
    }
    let mut files = config.clone();
    files.store_url = None;
    files.token_dir = path.to_path_buf();
    store_of(&files, end)
}

/// The store `config` names; a source token directory that does not exist is refused
/// (review 17a: a mistyped `--from` was made, with every directory above it).
fn store_of(config: &Config, end: End) -> Result<Backend, Failure> {
    if end == End::Source && config.store_url.is_none() && !config.token_dir.is_dir() {
        return Err(invalid(format!(
            "no token directory {}",
            config.token_dir.display()
        )));
    }
    Ok(backend_of(config)?)
}

pub(crate) fn run(
    config: &Config,
    serial: Option<&str>,
    from: Option<&str>,
    to: &str,
    slot_id: Option<u64>,
) -> Result<Value, Failure> {
    let source = match from {
        Some(location) => backend(location, config, End::Source)?,
        // The configuration's own store, made as the module would make it.
        None => backend_of(config)?,
    };
    let serial = match serial {
        Some(s) => s.to_string(),
        None => {
            let serials = source.serials().map_err(Error::from)?;
            match serials.as_slice() {
                [only] => only.clone(),
                [] => return Err(invalid("the source holds no token")),
                many => {
                    return Err(invalid(format!(
                        "the source holds {} tokens ({}): name one with --serial",
                        many.len(),
                        many.join(", ")
                    )))
                }
            }
        }
    };
    let dest = backend(to, config, End::Destination)?;
    let copied = copy_token(&source, &dest, &serial, slot_id)?;
    Ok(json!({
        "Copied": {
            "Serial": copied.serial,
            "SlotId": copied.slot_id,
            "Objects": copied.objects,
            "PinRecords": copied.pins,
            "AuditEvents": copied.events,
            "From": copied.from,
            "To": copied.to,
            "Verified": true,
        }
    }))
}

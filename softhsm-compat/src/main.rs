//! `kmshsm2-util`: the softhsm2-util command line (same actions, options and exit codes)
//! for kmshsm tokens. It links the kmshsm library and calls its PKCS#11 semantics layer
//! directly, so it reads kmshsm's configuration (`KMSHSM_CONF`, see docs/configuration.md),
//! never `SOFTHSM2_CONF`. Exit status: 0 on success, 1 on any error.

// CK_ULONG is u64 on this target but u32 on others; the casts are needed there.
#![allow(clippy::unnecessary_cast)]

mod args;
mod keyfile;
mod pin;
mod token;

use std::process::ExitCode;

use args::{Args, Parsed};

/// An error already reported to the user (standard error); the process exits with 1.
pub struct Failed;

/// Prints `ERROR: ...` on standard error and yields [`Failed`].
pub fn fail(message: impl std::fmt::Display) -> Failed {
    eprintln!("ERROR: {message}");
    Failed
}

const USAGE: &str = "\
Support tool for PKCS#11 (kmshsm tokens, softhsm2-util compatible)
Usage: {PROGRAM} [ACTION] [OPTIONS]
Action:
  --delete-token    Delete a token (its database file).
                    Use with --token or --serial.
                    WARNING: everything on the token is lost.
  -h                Show this help.
  --help            Show this help.
  --import <path>   Import a key pair from a PEM file (PKCS#8 \"PRIVATE KEY\";
                    also \"RSA PRIVATE KEY\" and \"EC PRIVATE KEY\").
                    Use with --slot or --token or --serial, --label, --id,
                    --no-public-key and --pin (--aes: the file is a raw AES key).
  --init-token      Initialize (or re-initialize) a token.
                    Use with --slot or --token or --serial or --free,
                    --label, --so-pin and --pin.
                    WARNING: everything on the token is lost.
  --show-slots      List the slots and their tokens.
  -v                Show the version.
  --version         Show the version.
Options:
  --aes             Import the file as it is, as an AES key.
  --file-pin <PIN>  Not supported: decrypt the key file first.
  --force           Import even if another object has the same --id.
  --free            Use the free (uninitialized) token.
  --id <hex>        The CKA_ID of the imported objects, in hex.
  --label <text>    The label of the token or of the imported objects.
  --module <path>   Not supported: this tool always uses kmshsm.
  --no-public-key   Import the private key only.
  --pin <PIN>       The user PIN (prompted for, without echo, if absent).
  --serial <number> Select the token with this serial number.
  --slot <number>   Select the token in this slot.
  --so-pin <PIN>    The SO PIN (prompted for, without echo, if absent).
  --token <label>   Select the token with this label.
Configuration: KMSHSM_CONF names kmshsm's configuration file (SOFTHSM2_CONF is not read).
";

fn program() -> String {
    std::env::args()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "kmshsm2-util".into())
}

fn usage() {
    print!("{}", USAGE.replace("{PROGRAM}", &program()));
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(&program(), &argv) {
        Parsed::Help => {
            usage();
            return ExitCode::SUCCESS;
        }
        Parsed::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Parsed::Bad(message) => {
            eprintln!("{message}");
            usage();
            return ExitCode::FAILURE;
        }
        Parsed::Run(args) => args,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed) => ExitCode::FAILURE,
    }
}

fn run(args: &Args) -> Result<(), Failed> {
    if args.actions() != 1 {
        usage();
        return Err(Failed);
    }
    if args.module.is_some() {
        return Err(fail(
            "--module is not supported: this tool manages kmshsm tokens through the kmshsm \
             library itself",
        ));
    }
    let lib = token::Library::open()?;
    let result = if args.init_token {
        lib.init_token(args)
    } else if args.show_slots {
        lib.show_slots()
    } else if let Some(path) = &args.import {
        lib.import(args, path)
    } else {
        // The library closes its connection to the database before the files go.
        let db = lib.token_to_delete(args);
        lib.close();
        return token::delete_files(&db?);
    };
    lib.close();
    result
}

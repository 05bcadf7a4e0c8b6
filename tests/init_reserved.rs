//! `C_Initialize` with every kind of `CK_C_INITIALIZE_ARGS.pReserved`: no value crashes
//! the host. Small integers (google/pkcs11test's `Init.InitArgsBadReserved` passes
//! `(void *)1`), unmapped memory, memory that runs into an unmapped page and 8 KiB
//! without a NUL are `CKR_ARGUMENTS_BAD`; a path that names no file is
//! `CKR_FUNCTION_FAILED` (a named configuration that cannot be read); a real path is
//! used, and an empty string is no path. After each refusal the module is still uninitialised and unpoisoned, and a
//! plain `C_Initialize` then succeeds. Calls go through the raw 3.0 function table.
//!
//! Run with `cargo nextest run --test init_reserved` (one process per test).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::ffi::c_void;

use cryptoki_sys::*;

use common::hostile::Api;
use common::*;

/// `C_Initialize` with OS locking and `reserved` as `pReserved`.
fn initialize_with(api: &Api, reserved: *mut c_void) -> CK_RV {
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: reserved,
    };
    // SAFETY: (test) `args` lives across the call; `pReserved` is what is under test.
    unsafe { api.call("C_Initialize", &[&mut args as *mut _ as u64]) }
}

/// The module refused, stays uninitialised, is not poisoned, and then starts normally.
fn assert_refused_then_recovers(api: &Api, reserved: *mut c_void, expected: CK_RV, what: &str) {
    let rv = initialize_with(api, reserved);
    assert_eq!(
        rv, expected,
        "pReserved = {what}: C_Initialize returned {rv:#x}, expected {expected:#x}"
    );
    assert_eq!(
        api.info_rv(),
        CKR_CRYPTOKI_NOT_INITIALIZED,
        "pReserved = {what}: the module is not in its uninitialised state afterwards"
    );
    // SAFETY: (test) NULL arguments.
    let rv = unsafe { api.call("C_Initialize", &[0]) };
    assert_eq!(rv, CKR_OK, "after {what}");
    assert_eq!(api.info_rv(), CKR_OK, "after {what}");
    // SAFETY: (test) NULL pReserved.
    let rv = unsafe { api.call("C_Finalize", &[0]) };
    assert_eq!(rv, CKR_OK, "after {what}");
}

fn page_size() -> usize {
    // SAFETY: (test) reads a system constant.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `n` fresh anonymous pages, readable and writable.
fn map_pages(n: usize) -> *mut u8 {
    // SAFETY: (test) a new private anonymous mapping, touching no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            n * page_size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p.cast()
}

#[test]
fn small_integers_are_arguments_bad() {
    let _env = TestEnv::new();
    let api = Api::load();
    for value in [1usize, 2, 0x10, 0x1000, 0xffff] {
        assert_refused_then_recovers(
            &api,
            value as *mut c_void,
            CKR_ARGUMENTS_BAD,
            &format!("{value:#x}"),
        );
    }
}

#[test]
fn unmapped_memory_is_arguments_bad() {
    let _env = TestEnv::new();
    let api = Api::load();
    let page = map_pages(1);
    // SAFETY: (test) unmaps the page just mapped; only its address is used afterwards.
    assert_eq!(unsafe { libc::munmap(page.cast(), page_size()) }, 0);
    assert_refused_then_recovers(&api, page.cast(), CKR_ARGUMENTS_BAD, "an unmapped page");
}

#[test]
fn a_string_running_into_an_unmapped_page_is_arguments_bad() {
    let _env = TestEnv::new();
    let api = Api::load();
    let pages = map_pages(2);
    let size = page_size();
    // SAFETY: (test) fills the first page (ours) with non-NUL bytes and unmaps the second.
    let start = unsafe {
        std::ptr::write_bytes(pages, b'x', size);
        assert_eq!(libc::munmap(pages.add(size).cast(), size), 0);
        pages.add(size - 100)
    };
    assert_refused_then_recovers(
        &api,
        start.cast(),
        CKR_ARGUMENTS_BAD,
        "100 bytes then an unmapped page",
    );
    // SAFETY: (test) the first page, still ours.
    unsafe { libc::munmap(pages.cast(), size) };
}

#[test]
fn eight_kib_without_a_nul_is_arguments_bad() {
    let _env = TestEnv::new();
    let api = Api::load();
    let mut long = vec![b'a'; 8192];
    assert_refused_then_recovers(
        &api,
        long.as_mut_ptr().cast(),
        CKR_ARGUMENTS_BAD,
        "8 KiB of non-NUL bytes",
    );
}

#[test]
fn an_empty_string_is_no_path() {
    // KMSHSM_CONF still applies, as with a NULL pReserved.
    let env = TestEnv::new();
    let api = Api::load();
    let mut empty = [0u8; 1];
    assert_eq!(initialize_with(&api, empty.as_mut_ptr().cast()), CKR_OK);
    assert!(
        env.token_dir.is_dir(),
        "with an empty pReserved, KMSHSM_CONF's configuration was not used"
    );
    // SAFETY: (test) NULL pReserved.
    assert_eq!(unsafe { api.call("C_Finalize", &[0]) }, CKR_OK);
}

#[test]
fn a_path_that_names_no_file_is_function_failed() {
    let env = TestEnv::new();
    let api = Api::load();
    let mut missing = env
        .dir
        .path()
        .join("no-such.toml")
        .to_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    missing.push(0);
    assert_refused_then_recovers(
        &api,
        missing.as_mut_ptr().cast(),
        CKR_FUNCTION_FAILED,
        "a path to a missing file",
    );
}

#[test]
fn a_valid_path_names_the_configuration_used() {
    // KMSHSM_CONF names `env`'s configuration; pReserved names `other`'s, which wins.
    let env = TestEnv::new();
    let other = tempfile::tempdir().unwrap();
    let other_tokens = other.path().join("tokens-from-preserved");
    let other_conf = other.path().join("from-preserved.toml");
    std::fs::write(
        &other_conf,
        format!(
            "token_dir = {:?}\n[kdf]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n",
            other_tokens.to_str().unwrap()
        ),
    )
    .unwrap();
    let api = Api::load();
    let mut path = other_conf.to_str().unwrap().as_bytes().to_vec();
    path.push(0);
    assert_eq!(initialize_with(&api, path.as_mut_ptr().cast()), CKR_OK);
    assert_eq!(api.info_rv(), CKR_OK);
    assert!(
        other_tokens.is_dir(),
        "the configuration named in pReserved was not used (its token_dir was not created)"
    );
    assert!(
        !env.token_dir.exists(),
        "the configuration named by KMSHSM_CONF was used instead of pReserved's"
    );
    // SAFETY: (test) NULL pReserved.
    assert_eq!(unsafe { api.call("C_Finalize", &[0]) }, CKR_OK);
}

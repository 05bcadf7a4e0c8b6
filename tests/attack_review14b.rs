//! An attacker's review (2026-12-06, branch attack14b) of c770567: the KMS lifecycle's
//! state machine, hostile input at the C ABI, races between processes, and the `kmshsm`
//! command line. Each test reproduces one defect found by reading the code, asserts what
//! PKCS#11 3.0 or the project's documents promise, and fails against the module as it
//! was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review14b` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki_sys::*;

/// Defect: ScheduleKeyDeletion followed by CancelKeyDeletion brings a key whose material
/// was deleted (or never imported) back to Disabled, and EnableKey then makes it
/// Enabled, without its material ever coming back. `kms/lifecycle.rs` `transition`
/// allows `(ScheduleDeletion, PendingImport) → PendingDeletion` and
/// `(CancelDeletion, PendingDeletion) → Disabled` whatever the key held before, and
/// `kms/decide.rs` `change_state` only looks at `holds_material` for DeleteMaterial.
/// The public half of an EXTERNAL key pair keeps its public key through
/// DeleteKeyMaterial, so once Enabled it verifies (and an ENCRYPT/DECRYPT pair's public
/// half encrypts) again: DeleteKeyMaterial is undone by two state changes.
///
/// Expected (docs/key-model.md, "The rules, each enforced": "When the material expires,
/// or is deleted, it is wiped and the key goes back to PendingImport ... importing the
/// same material again brings it back"; `kms/lifecycle.rs`: "after it expires or is
/// deleted the key is unusable (PendingImport) until the same material returns"; the
/// Alibaba and Huawei key-state tables refuse EnableKey in PendingImport, and the
/// Huawei guide: "After the deletion, the key will become unavailable ... To decrypt the
/// data, re-import the key material"): a key without material never reads as Enabled,
/// and its public half verifies nothing until the material is imported again (a
/// cancelled deletion returns such a key to PendingImport). Actual: the key reads
/// Enabled and the public half verifies the signature made before the deletion.
#[test]
fn a_cancelled_deletion_enables_a_key_whose_material_was_deleted() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::EcP256, "deleted-material");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_SIGN_VERIFY));
    let key = session.create_object(&template).unwrap();
    let material = work.material(Spec::EcP256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        None,
    )
    .expect("import");
    let public = public_half(&session, &key_id(&session, key));
    let message = [7u8; 32];
    let signature = session.sign(&Mechanism::Ecdsa, key, &message).unwrap();
    session
        .verify(&Mechanism::Ecdsa, public, &message, &signature)
        .expect("the key verifies while it holds its material");

    // DeleteKeyMaterial: the key is unusable until the same material returns.
    set_state(&session, key, STATE_PENDING_IMPORT).expect("DeleteKeyMaterial");
    assert_rv!(
        session.verify(&Mechanism::Ecdsa, public, &message, &signature),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );

    // ScheduleKeyDeletion, CancelKeyDeletion, EnableKey: no material was imported.
    set_state(&session, key, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    set_state(&session, key, STATE_DISABLED).expect("CancelKeyDeletion");
    let enabled = set_state(&session, key, STATE_ENABLED);
    let described = state(&session, key);
    let verified = session.verify(&Mechanism::Ecdsa, public, &message, &signature);
    assert_ne!(
        described,
        STATE_ENABLED,
        "a key whose material was deleted reads as Enabled (EnableKey answered {enabled:?}; \
         its public half's verification {:?})",
        verified.as_ref().map(|_| "succeeded")
    );
    assert_rv!(verified, CKR_KMSHSM_INCORRECT_KEY_STATE);
}

/// Defect: `C_SetAttributeValue` of an ordinary attribute (`CKA_LABEL`) of a KMS key
/// writes back the whole record as this call read it (`token/objects.rs`
/// `Token::set_attributes`: `template::apply` on the entry read at the start, then
/// `Change::PutObject`, committed by `commit_in`, which checks the token's epoch but not
/// that the record is still the version the change was made of). A KMS decision that
/// lands between that read and that commit — DeleteKeyMaterial here, DisableKey or
/// ScheduleKeyDeletion alike, from another thread or process — is written over: the
/// decision answered `CKR_OK`, yet the key ends Enabled with its material back, and
/// encrypts. Two callers got two outcomes of one rule, and the wiped material came back.
///
/// Expected (docs/key-model.md, "Exactly once": "concurrent state changes end as some
/// serial order of them would (a Disable that lost to a DeleteKeyMaterial is refused,
/// not written over it)"; CONTRIBUTING.md, "Decide inside the transaction ... Never
/// read, decide, then write"): with a relabelling and a DeleteKeyMaterial both
/// answering `CKR_OK`, the key ends PendingImport without material, whichever came
/// first. Actual: within a few dozen races the key is Enabled and encrypts.
#[test]
fn a_relabelling_racing_delete_key_material_brings_the_material_back() {
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use std::sync::Barrier;
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let start = std::time::Instant::now();
    let mut races = 0u32;
    while races < 1000 && start.elapsed() < std::time::Duration::from_secs(90) {
        races += 1;
        // A plaintext EXTERNAL key: Enabled, bound to its material (logged in).
        let key = session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Value(vec![0x5a; 32]),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(b"before".to_vec()),
                vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_EXTERNAL),
                vendor_ulong(CKA_KMSHSM_KEY_SPEC, Spec::Aes256.code()),
            ])
            .unwrap();
        let barrier = Barrier::new(2);
        let (deleted, relabelled) = std::thread::scope(|scope| {
            let delete = scope.spawn(|| {
                let mine = ctx.open_rw_session(slot).unwrap();
                barrier.wait();
                set_state(&mine, key, STATE_PENDING_IMPORT)
            });
            let relabel = scope.spawn(|| {
                let mine = ctx.open_rw_session(slot).unwrap();
                barrier.wait();
                mine.update_attributes(key, &[Attribute::Label(b"after".to_vec())])
            });
            (delete.join().unwrap(), relabel.join().unwrap())
        });
        if deleted.is_ok() && relabelled.is_ok() {
            let after = state(&session, key);
            let encrypts = encrypt_with(&session, Spec::Aes256, key).is_ok();
            assert!(
                after == STATE_PENDING_IMPORT && !encrypts,
                "race {races}: DeleteKeyMaterial and a relabelling both answered CKR_OK, \
                 yet the key reads state {after} and {} encrypt",
                if encrypts { "does" } else { "does not" }
            );
        }
        session.destroy_object(key).unwrap();
    }
}

/// Defect: the same unconditional write as above (`token/objects.rs`
/// `Token::set_attributes` commits `Change::PutObject` of the record it read, and the
/// stores write it whether or not the record still exists) brings back a key that
/// another thread or process destroyed meanwhile: `C_DestroyObject` answered `CKR_OK`,
/// and the key is on the token again, under its old KeyId and with its material, for
/// every process to find and use. ScheduleKeyDeletion's immediate form
/// (docs/key-model.md: "`C_DestroyObject` deletes at once") is undone by a concurrent
/// change of its `CKA_ID`.
///
/// Expected (PKCS#11 3.0 §5.7 C_DestroyObject destroys the object; docs/key-model.md,
/// "Exactly once": concurrent changes "end as some serial order of them would"; in
/// every serial order a change after the destruction finds no object,
/// `CKR_OBJECT_HANDLE_INVALID`): when the destruction and the change both answer
/// `CKR_OK`, the change came first and the key is gone. Actual: within a few races the
/// destroyed key is found again.
#[test]
fn a_change_racing_c_destroy_object_brings_the_destroyed_key_back() {
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use std::sync::Barrier;
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let start = std::time::Instant::now();
    let mut races = 0u32;
    while races < 1000 && start.elapsed() < std::time::Duration::from_secs(90) {
        races += 1;
        let label = format!("destroyed-{races}").into_bytes();
        let key = session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Value(vec![0x5a; 32]),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(label.clone()),
                vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_EXTERNAL),
                vendor_ulong(CKA_KMSHSM_KEY_SPEC, Spec::Aes256.code()),
            ])
            .unwrap();
        let barrier = Barrier::new(2);
        let (destroyed, changed) = std::thread::scope(|scope| {
            let destroy = scope.spawn(|| {
                let mine = ctx.open_rw_session(slot).unwrap();
                barrier.wait();
                mine.destroy_object(key)
            });
            let change = scope.spawn(|| {
                let mine = ctx.open_rw_session(slot).unwrap();
                barrier.wait();
                mine.update_attributes(key, &[Attribute::Id(vec![1, 2, 3])])
            });
            (destroy.join().unwrap(), change.join().unwrap())
        });
        let found = session.find_objects(&[Attribute::Label(label)]).unwrap();
        if destroyed.is_ok() {
            assert!(
                found.is_empty(),
                "race {races}: C_DestroyObject answered CKR_OK (the change answered {changed:?}), \
                 yet the key is on the token again"
            );
        }
        for h in found {
            session.destroy_object(h).unwrap();
        }
    }
}

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Not a test: the child process of the tests below that need one (a call that may
/// abort the process it runs in). It reports its outcome with `tell_parent`.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let (f, session, _library) = common::raw::raw_session();
    let (rv, key) = create_with_a_misaligned_nested_template(&f, session);
    match role.as_str() {
        "misaligned-nested-template" => tell_parent(&format!("rv {rv:#x}")),
        "misaligned-nested-read" => {
            assert_eq!(rv, CKR_OK);
            let rv = read_into_a_misaligned_nested_template(&f, session, key);
            tell_parent(&format!("rv {rv:#x}"));
        }
        other => panic!("unknown role {other}"),
    }
}

/// `C_GetAttributeValue` of `key`'s `CKA_UNWRAP_TEMPLATE` (one attribute, `CKA_TOKEN`)
/// into a buffer for one `CK_ATTRIBUTE` that starts one byte into its allocation; the
/// answer, once the written entry was checked.
fn read_into_a_misaligned_nested_template(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    let size = std::mem::size_of::<CK_ATTRIBUTE>();
    let mut flag: CK_BBOOL = CK_FALSE;
    let inner = CK_ATTRIBUTE {
        type_: 0,
        pValue: std::ptr::addr_of_mut!(flag).cast(),
        ulValueLen: 1,
    };
    let mut bytes = vec![0u8; size + 1];
    // SAFETY: `bytes` holds `size` bytes from offset 1; the attribute is copied as bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::addr_of!(inner).cast::<u8>(),
            bytes.as_mut_ptr().add(1),
            size,
        )
    };
    let mut template = [CK_ATTRIBUTE {
        type_: CKA_UNWRAP_TEMPLATE,
        pValue: bytes[1..].as_mut_ptr().cast(),
        ulValueLen: size as CK_ULONG,
    }];
    // SAFETY: the nested buffer is writable for `size` bytes, its entry's value for one.
    let rv = unsafe { f.C_GetAttributeValue.unwrap()(session, key, template.as_mut_ptr(), 1) };
    if rv == CKR_OK {
        // SAFETY: `size` bytes from offset 1, read unaligned.
        let back: CK_ATTRIBUTE = unsafe { std::ptr::read_unaligned(bytes[1..].as_ptr().cast()) };
        assert_eq!((back.type_, back.ulValueLen, flag), (CKA_TOKEN, 1, CK_TRUE));
    }
    rv
}

/// `C_CreateObject` of a secret key whose `CKA_UNWRAP_TEMPLATE` value is a byte buffer
/// holding one `CK_ATTRIBUTE`, starting one byte into an allocation (so not aligned for
/// a pointer); made through the raw function list, on a session of its own.
fn create_with_a_misaligned_nested_template(
    f: &CK_FUNCTION_LIST,
    session: CK_SESSION_HANDLE,
) -> (CK_RV, CK_OBJECT_HANDLE) {
    let yes: CK_BBOOL = CK_TRUE;
    let inner = CK_ATTRIBUTE {
        type_: CKA_TOKEN,
        pValue: std::ptr::addr_of!(yes) as *mut _,
        ulValueLen: 1,
    };
    let size = std::mem::size_of::<CK_ATTRIBUTE>();
    let mut bytes = vec![0u8; size + 1];
    // SAFETY: `bytes` holds `size` bytes from offset 1; the attribute is copied as bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::addr_of!(inner).cast::<u8>(),
            bytes.as_mut_ptr().add(1),
            size,
        )
    };
    let class = CKO_SECRET_KEY.to_ne_bytes();
    let key_type = CKK_GENERIC_SECRET.to_ne_bytes();
    let no: CK_BBOOL = CK_FALSE;
    let value = [0x42u8; 32];
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: class.as_ptr() as *mut _,
            ulValueLen: class.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_KEY_TYPE,
            pValue: key_type.as_ptr() as *mut _,
            ulValueLen: key_type.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_PRIVATE,
            pValue: std::ptr::addr_of!(no) as *mut _,
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: value.as_ptr() as *mut _,
            ulValueLen: value.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_UNWRAP_TEMPLATE,
            pValue: bytes[1..].as_mut_ptr().cast(),
            ulValueLen: size as CK_ULONG,
        },
    ];
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: every pointer of the template is valid for its stated length for the
    // call (the nested one for `size` bytes, one byte into `bytes`); one output handle.
    let rv = unsafe {
        f.C_CreateObject.unwrap()(
            session,
            template.as_mut_ptr(),
            template.len() as CK_ULONG,
            &mut handle,
        )
    };
    (rv, handle)
}

/// Defect: a nested template (`CKA_WRAP_TEMPLATE`, `CKA_UNWRAP_TEMPLATE`,
/// `CKA_DERIVE_TEMPLATE`) is taken as an aligned `&[CK_ATTRIBUTE]`
/// (`ffi/raw.rs` `read_attributes` → `template_slice` → `slice::from_raw_parts` on the
/// value's `pValue`); `C_GetAttributeValue` writes one through `&mut *inner_ptr.add(j)`
/// (`OutTemplate::fill`). The value of such an attribute is a buffer of `ulValueLen`
/// bytes (`CK_ATTRIBUTE.pValue` is a `CK_VOID_PTR`), and a caller may hand one that is
/// not aligned for a pointer: the debug build then aborts the host process ("unsafe
/// precondition(s) violated: slice::from_raw_parts requires the pointer to be
/// aligned"), and the release build has undefined behaviour.
///
/// Expected (`ffi/raw.rs`'s own rule: "structures are read and written unaligned, since
/// callers owe us no alignment"; docs/reliability.md §2: every function "returns a
/// defined CK_RV ... never a crash" for hostile template attributes): the nested
/// attributes are read unaligned (or the value refused, `CKR_ATTRIBUTE_VALUE_INVALID`),
/// and the process lives. Actual: the child process dies of SIGABRT inside
/// `C_CreateObject`.
#[test]
fn a_misaligned_nested_template_aborts_the_host_process() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    drop(session);
    ctx.finalize().unwrap();
    let output = child_command(CHILD_ENTRY, "misaligned-nested-template")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reported = child_lines(&stdout);
    assert!(
        output.status.success() && reported.iter().any(|l| l.starts_with("rv ")),
        "C_CreateObject with a misaligned nested template ended the process ({}) \
         without an answer; reported {reported:?}; its last words: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("precondition"))
            .collect::<Vec<_>>()
    );
}

/// Found with the fix of the test above: `C_GetAttributeValue` wrote a nested template
/// into the caller's buffer through `&mut *inner_ptr.add(j)` (`OutTemplate::fill`), a
/// reference that must be aligned. Expected: the entry written unaligned, `CKR_OK`, and
/// the process lives.
#[test]
fn a_nested_template_is_read_back_into_a_misaligned_buffer() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    drop(session);
    ctx.finalize().unwrap();
    let output = child_command(CHILD_ENTRY, "misaligned-nested-read")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reported = child_lines(&stdout);
    assert!(
        output.status.success() && reported.iter().any(|l| l == &format!("rv {CKR_OK:#x}")),
        "C_GetAttributeValue into a misaligned nested template ended with {}; reported \
         {reported:?}; its last words: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("precondition"))
            .collect::<Vec<_>>()
    );
}

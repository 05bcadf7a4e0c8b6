//! The README's main job: the "bring your own key" flow of the kms-docs, end to end,
//! as a PKCS#11 client sees it, on the embedded default store (one SQLite database per
//! token) in `target/demo-tokens`.
//!
//! CreateKey(EXTERNAL) → GetParametersForImport → wrap local material →
//! ImportKeyMaterial → use → DeleteKeyMaterial → re-import the same material → old
//! ciphertext decrypts again; different material is refused.
//! The module is loaded through the `cryptoki` crate exactly as any client loads it.
//! Wrapping the material is the user's side of the flow; here it uses the crate's own
//! RSA-OAEP code (`kmshsm::crypto`), standing in for `openssl pkeyutl`.

// CK_RV is u64 here and u32 on other targets, so the casts stay.
#![allow(clippy::unnecessary_cast)]

use std::path::PathBuf;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use kmshsm::crypto::hash::HashAlg;
use kmshsm::crypto::pkcs8::decode_spki;
use kmshsm::crypto::rsa::{RsaComponents, RsaPublicKey};
use kmshsm::ids::AttrType;
use kmshsm::vendor as v;

fn vattr(ty: AttrType) -> AttributeType {
    AttributeType::VendorDefined(ty.raw())
}

fn vulong(ty: AttrType, value: u64) -> Attribute {
    Attribute::VendorDefined((
        vattr(ty),
        (value as cryptoki_sys::CK_ULONG).to_ne_bytes().to_vec(),
    ))
}

fn vbytes(ty: AttrType, value: &[u8]) -> Attribute {
    Attribute::VendorDefined((vattr(ty), value.to_vec()))
}

fn read(session: &Session, key: ObjectHandle, ty: AttrType) -> Vec<u8> {
    match session.get_attributes(key, &[vattr(ty)]) {
        Ok(attrs) => match attrs.into_iter().next() {
            Some(Attribute::VendorDefined((_, bytes))) => bytes,
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

fn read_ulong(session: &Session, key: ObjectHandle, ty: AttrType) -> u64 {
    let b = read(session, key, ty);
    b.try_into()
        .map(|a: [u8; 8]| u64::from_ne_bytes(a))
        .unwrap_or(u64::MAX)
}

fn state_name(code: u64) -> &'static str {
    match code {
        v::KMSHSM_STATE_ENABLED => "Enabled",
        v::KMSHSM_STATE_DISABLED => "Disabled",
        v::KMSHSM_STATE_PENDING_IMPORT => "PendingImport",
        v::KMSHSM_STATE_PENDING_DELETION => "PendingDeletion",
        _ => "?",
    }
}

fn module_path() -> PathBuf {
    // target/<profile>/examples/demo -> target/<profile>/libkmshsm.so
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("libkmshsm.so"))
        .expect("target directory")
}

/// Builds the cdylib next to this example when it is missing or older than the example.
///
/// `cargo run --example demo` builds the library only as the rlib the example links; the
/// `libkmshsm.so` a PKCS#11 client loads is another artefact of the same crate, which
/// cargo does not build for an example. So the demo asks cargo for it, with the same
/// profile and target directory, exactly as a user would type `cargo build --lib`.
fn ensure_module(module: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let exe = std::env::current_exe()?;
    let fresh = match (modified(module), modified(&exe)) {
        (Some(lib), Some(example)) => lib >= example,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    // `cargo run` names itself in CARGO; a demo started by hand falls back to the PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = std::process::Command::new(cargo);
    build
        .arg("build")
        .arg("--lib")
        .arg("--manifest-path")
        .arg(&manifest);
    // target/<profile>/libkmshsm.so: the profile directory names the profile.
    let profile_dir = module.parent().ok_or("module path has no directory")?;
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    if let Some(target_dir) = profile_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    println!("Building {} (cargo build --lib)", module.display());
    let status = build.status()?;
    if !status.success() || modified(module).is_none() {
        return Err(format!("`cargo build --lib` did not produce {}", module.display()).into());
    }
    Ok(())
}

/// GetParametersForImport: a wrapping pair bound to `key_id`; returns (private handle,
/// wrapping public key as SPKI DER, import token).
fn parameters_for_import(
    session: &Session,
    key_id: &[u8],
) -> Result<(ObjectHandle, Vec<u8>, Vec<u8>), Error> {
    let (public, private) = session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[Attribute::ModulusBits(2048.into())],
        &[
            vbytes(v::CKA_KMSHSM_IMPORT_TARGET, key_id),
            vulong(
                v::CKA_KMSHSM_WRAPPING_ALGORITHM,
                v::KMSHSM_WRAP_RSAES_OAEP_SHA_256,
            ),
        ],
    )?;
    let spki = match session
        .get_attributes(public, &[AttributeType::PublicKeyInfo])?
        .pop()
    {
        Some(Attribute::PublicKeyInfo(b)) => b,
        _ => Vec::new(),
    };
    Ok((
        private,
        spki,
        read(session, private, v::CKA_KMSHSM_IMPORT_TOKEN),
    ))
}

/// The user's side: RSAES_OAEP_SHA_256 of the material under the wrapping public key.
fn wrap_locally(spki: &[u8], material: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let (_, rsa_der) = decode_spki(spki)?;
    // RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }
    let (n, e) = RsaComponents::from_public_der(rsa_der)?;
    Ok(RsaPublicKey::new(&n, &e)?.encrypt_oaep(material, HashAlg::Sha256, &[])?)
}

fn import(
    session: &Session,
    unwrapping: ObjectHandle,
    wrapped: &[u8],
    token: &[u8],
    expiry: u64,
) -> Result<ObjectHandle, Error> {
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    session.unwrap_key(
        &Mechanism::RsaPkcsOaep(oaep),
        unwrapping,
        wrapped,
        &[
            vbytes(v::CKA_KMSHSM_IMPORT_TOKEN, token),
            vulong(v::CKA_KMSHSM_MATERIAL_EXPIRY, expiry),
        ],
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/demo-tokens");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let conf = root.join("kmshsm.toml");
    std::fs::write(
        &conf,
        format!(
            "token_dir = {:?}\nlog_level = \"warn\"\n",
            root.join("tokens")
        ),
    )?;
    // Edition 2021: setting the variable before the module loads is how a user would.
    std::env::set_var("KMSHSM_CONF", &conf);

    let module = module_path();
    ensure_module(&module)?;
    println!("Loading {}", module.display());
    let pkcs11 = Pkcs11::new(&module)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let slot = pkcs11.get_slots_with_token()?[0];
    let (so_pin, user_pin) = (
        AuthPin::new("demo-so-pin".into()),
        AuthPin::new("demo-user-pin".into()),
    );
    pkcs11.init_token(slot, &so_pin, "byok-demo")?;
    {
        let so = pkcs11.open_rw_session(slot)?;
        so.login(UserType::So, Some(&so_pin))?;
        so.init_pin(&user_pin)?;
    }
    let session = pkcs11.open_rw_session(slot)?;
    session.login(UserType::User, Some(&user_pin))?;
    println!("Token \"byok-demo\" initialised in slot {slot}; user logged in.\n");

    println!("1. CreateKey with Origin EXTERNAL (C_CreateObject, no value)");
    let key = session.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Label(b"byok-demo-key".to_vec()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        vulong(v::CKA_KMSHSM_ORIGIN, v::KMSHSM_ORIGIN_EXTERNAL),
        vulong(v::CKA_KMSHSM_KEY_SPEC, v::KMSHSM_SPEC_AES_256),
    ])?;
    let key_id = read(&session, key, v::CKA_KMSHSM_KEY_ID);
    println!(
        "   KeyId {}  state {}",
        String::from_utf8_lossy(&key_id),
        state_name(read_ulong(&session, key, v::CKA_KMSHSM_KEY_STATE))
    );

    println!("2. GetParametersForImport (C_GenerateKeyPair bound to the key, RSAES_OAEP_SHA_256)");
    let (unwrapping, spki, token) = parameters_for_import(&session, &key_id)?;
    println!(
        "   wrapping public key: {} bytes of DER SPKI; import token: {} bytes, valid 24 h",
        spki.len(),
        token.len()
    );

    println!("3. Wrap 32 bytes of local AES-256 material with the public key (the user's side)");
    let mut material = [0u8; 32];
    session.generate_random_slice(&mut material)?;
    let wrapped = wrap_locally(&spki, &material)?;

    println!("4. ImportKeyMaterial (C_UnwrapKey with the token, expiring in an hour)");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let imported = import(&session, unwrapping, &wrapped, &token, now + 3600)?;
    println!(
        "   returned the key's own handle: {}; state {}",
        imported == key,
        state_name(read_ulong(&session, key, v::CKA_KMSHSM_KEY_STATE))
    );

    println!("5. Use the key: AES-GCM encryption");
    let mut iv = [7u8; 12];
    let gcm_params = cryptoki::mechanism::aead::GcmParams::new(&mut iv, &[], 128.into())?;
    let gcm = Mechanism::AesGcm(gcm_params);
    let ciphertext = session.encrypt(&gcm, key, b"hello, bring your own key")?;
    println!("   {} bytes of ciphertext", ciphertext.len());

    println!("6. DeleteKeyMaterial (state -> PendingImport): the key refuses to work");
    session.update_attributes(
        key,
        &[vulong(
            v::CKA_KMSHSM_KEY_STATE,
            v::KMSHSM_STATE_PENDING_IMPORT,
        )],
    )?;
    match session.decrypt(&gcm, key, &ciphertext) {
        Err(Error::Pkcs11(RvError::VendorDefined(code), _))
            if code as u64 == v::CKR_KMSHSM_INCORRECT_KEY_STATE =>
        {
            println!("   decrypt refused: CKR_KMSHSM_INCORRECT_KEY_STATE")
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    println!("7. Different material is refused (the key is bound to the first material)");
    let (unwrapping, spki, token) = parameters_for_import(&session, &key_id)?;
    match import(
        &session,
        unwrapping,
        &wrap_locally(&spki, &[0x11; 32])?,
        &token,
        0,
    ) {
        Err(Error::Pkcs11(RvError::VendorDefined(code), _))
            if code as u64 == v::CKR_KMSHSM_INVALID_KEY_MATERIAL =>
        {
            println!("   refused: CKR_KMSHSM_INVALID_KEY_MATERIAL")
        }
        other => return Err(format!("expected InvalidKeyMaterial, got {other:?}").into()),
    }

    println!("8. Re-import the same material (new parameters, never expiring)");
    import(
        &session,
        unwrapping,
        &wrap_locally(&spki, &material)?,
        &token,
        0,
    )?;
    let plaintext = session.decrypt(&gcm, key, &ciphertext)?;
    println!(
        "   state {}; the old ciphertext decrypts again: {:?}",
        state_name(read_ulong(&session, key, v::CKA_KMSHSM_KEY_STATE)),
        String::from_utf8_lossy(&plaintext)
    );

    drop(session);
    pkcs11.finalize()?;
    println!(
        "\nDone. The token lives in {}",
        root.join("tokens").display()
    );
    Ok(())
}

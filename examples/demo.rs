//! The README's main job: a walk through kmshsm as a PKCS#11 client sees it.
//!
//! It loads the built `libkmshsm.so` through the `cryptoki` crate exactly as any client
//! would, on the embedded default store (one SQLite database per token) in
//! `target/demo-tokens`, and shows each step. The BYOK flow (EXTERNAL keys, import
//! parameters, import through C_UnwrapKey) joins this demo as the KMS key model lands.

use std::path::PathBuf;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn module_path() -> PathBuf {
    // target/<profile>/examples/demo -> target/<profile>/libkmshsm.so
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("libkmshsm.so"))
        .expect("target directory")
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
    println!("1. loading {}", module.display());
    let pkcs11 = Pkcs11::new(&module)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let info = pkcs11.get_library_info()?;
    println!(
        "   {} {}",
        info.manufacturer_id(),
        info.library_description()
    );

    let slot = pkcs11.get_slots_with_token()?[0];
    let so_pin = AuthPin::new("demo-so-pin".into());
    let user_pin = AuthPin::new("demo-user-pin".into());
    println!("2. initialising the free slot {slot} as token \"demo\"");
    pkcs11.init_token(slot, &so_pin, "demo")?;
    {
        let session = pkcs11.open_rw_session(slot)?;
        session.login(UserType::So, Some(&so_pin))?;
        session.init_pin(&user_pin)?;
        println!("   SO set the user PIN");
    }

    let session = pkcs11.open_rw_session(slot)?;
    session.login(UserType::User, Some(&user_pin))?;
    let secret = [0x5au8; 32];
    println!("3. creating a sensitive AES-256 token key (value sealed under the token master key)");
    let key = session.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Sensitive(true),
        Attribute::Label(b"demo-aes".to_vec()),
        Attribute::Value(secret.to_vec()),
    ])?;
    let attrs = session.get_attributes(key, &[AttributeType::UniqueId, AttributeType::ValueLen])?;
    for a in attrs {
        println!("   {a:?}");
    }
    match session.get_attributes(key, &[AttributeType::Value]) {
        Ok(v) if v.is_empty() => println!("   CKA_VALUE is sensitive: not readable"),
        Ok(v) => println!("   CKA_VALUE: {v:?} (unexpected)"),
        Err(e) => println!("   CKA_VALUE refused: {e}"),
    }
    drop(session);
    pkcs11.finalize()?;

    println!("4. the token on disk holds no plaintext key bytes:");
    for entry in std::fs::read_dir(root.join("tokens"))? {
        let path = entry?.path();
        let bytes = std::fs::read(&path)?;
        let leaked = bytes.windows(secret.len()).any(|w| w == secret);
        println!(
            "   {} ({} bytes): key bytes present = {leaked}",
            path.display(),
            bytes.len()
        );
        if leaked {
            return Err("plaintext key found on disk".into());
        }
    }

    println!("5. a new process would see the same token; reloading here:");
    let pkcs11 = Pkcs11::new(&module)?;
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let session = pkcs11.open_ro_session(slot)?;
    session.login(UserType::User, Some(&user_pin))?;
    let found = session.find_objects(&[Attribute::Label(b"demo-aes".to_vec())])?;
    println!("   found {} object(s) labelled demo-aes", found.len());
    drop(session);
    pkcs11.finalize()?;
    println!("done");
    Ok(())
}

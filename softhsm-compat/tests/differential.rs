//! The differential suite: the same PKCS#11 scenarios against libsofthsm2.so and kmshsm.
//!
//! Each test is one scenario. The test process loads no module: it runs the scenario in a
//! child process per module (a fresh token directory each), collects the transcripts
//! (operation => CK_RV, and the result where it is deterministic), and compares them.
//! Random outputs (PSS and ECDSA signatures, RSA ciphertexts, RSA-wrapped keys) are made
//! with the same fixed key material in both modules and handed over: a second child per
//! module verifies/decrypts the other module's outputs, and those checks are part of the
//! transcript. A difference passes only when [`ALLOWED`] lists it, and every entry names
//! its section of DIVERGENCES.md.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::BTreeMap;

use common::{hex, keys, unhex, Env, Module};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::Error;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "1234";

/// Known differences: (scenario, operation, SoftHSMv2's result, kmshsm's result, section).
const ALLOWED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "token_init",
        "C_InitToken(3-byte SO PIN)",
        "PinIncorrect",
        "PinLenRange",
        "short-so-pin",
    ),
    (
        "login",
        "C_Logout(not logged in)",
        "OK",
        "UserNotLoggedIn",
        "logout-not-logged-in",
    ),
    (
        "objects",
        "C_CreateObject(AES, 15-byte value)",
        "OK",
        "AttributeValueInvalid",
        "aes-value-length",
    ),
    (
        "objects",
        "C_CreateObject(AES with CKA_VALUE_LEN)",
        "AttributeReadOnly",
        "OK",
        "value-len-in-create",
    ),
    (
        "objects",
        "data object default CKA_PRIVATE",
        "OK true",
        "OK false",
        "data-object-private-default",
    ),
    (
        "objects",
        "C_CreateObject(public AES token key, not logged in)",
        "OK",
        "UserNotLoggedIn",
        "public-secret-without-login",
    ),
    (
        "objects",
        "C_FindObjects(AES keys after reopen)",
        "Ok(2)",
        "Ok(1)",
        "public-secret-without-login",
    ),
    (
        "objects",
        "C_GetAttributeValue(CKA_UNIQUE_ID)",
        "OK unavailable",
        "OK len=32",
        "unique-id",
    ),
    (
        "encrypt_decrypt",
        "C_Encrypt(RSA-OAEP SHA-256)",
        "ArgumentsBad",
        "OK len=256",
        "oaep-sha2",
    ),
    (
        "encrypt_decrypt",
        "C_Encrypt(RSA-OAEP SHA-1 with label)",
        "ArgumentsBad",
        "OK len=256",
        "oaep-sha2",
    ),
    (
        "encrypt_decrypt",
        "peer C_Decrypt(RSA-OAEP SHA-256)",
        "ArgumentsBad",
        "skipped",
        "oaep-sha2",
    ),
    (
        "wrap_unwrap",
        "C_WrapKey(AES-KEY-WRAP-PAD 0x210A, 20-byte key)",
        "OK dad7bf8a9e9a70e819eae43149e80d92347a6b4494957194fac03b2eeedaa35d",
        "OK 06ea413f19c4f3b19c4907d944905180470a7f0a7a19d3a088744cde51f1b744",
        "kwp-zero-padding",
    ),
    // cryptoki reports SoftHSMv2's CKR_NO_EVENT as Ok(None).
    (
        "general",
        "C_WaitForSlotEvent(DONT_BLOCK)",
        "OK",
        "FunctionNotSupported",
        "wait-for-slot-event",
    ),
    (
        "sessions",
        "token session counts",
        "None/None",
        "Some(2)/Some(1)",
        "session-counts",
    ),
    (
        "generation",
        "C_GenerateKeyPair(EC, Ed25519 OID)",
        "GeneralError",
        "CurveNotSupported",
        "general-error",
    ),
    (
        "sign_verify",
        "C_Sign(SHA256-RSA-PKCS with an EC key)",
        "GeneralError",
        "KeyTypeInconsistent",
        "general-error",
    ),
    (
        "encrypt_decrypt",
        "C_Decrypt(AES-GCM, tampered)",
        "GeneralError",
        "EncryptedDataInvalid",
        "general-error",
    ),
    (
        "encrypt_decrypt",
        "C_Encrypt(RSA-PKCS, too long)",
        "GeneralError",
        "DataLenRange",
        "general-error",
    ),
    (
        "wrap_unwrap",
        "C_UnwrapKey(AES-KEY-WRAP-PAD, 20-byte key) value",
        "OK 666666666666666666666666666666666666666600000000",
        "OK 6666666666666666666666666666666666666666",
        "kwp-zero-padding",
    ),
];

// ---------------------------------------------------------------------------------------
// The transcript

struct T {
    ctx: Pkcs11,
    lines: Vec<(String, String)>,
    /// Random outputs for the other module to check.
    artifacts: Vec<(String, Vec<u8>)>,
    /// The other module's outputs (second run only).
    peer: BTreeMap<String, Vec<u8>>,
}

fn result_text<R>(r: &Result<R, Error>) -> String {
    match r {
        Ok(_) => "OK".into(),
        Err(Error::Pkcs11(rv, _)) => format!("{rv:?}"),
        Err(e) => format!("error {e}"),
    }
}

impl T {
    fn put(&mut self, op: &str, text: String) {
        assert!(
            !self.lines.iter().any(|(o, _)| o == op),
            "operation name used twice: {op}"
        );
        self.lines.push((op.to_string(), text));
    }

    /// Records only the return code.
    fn rv<R>(&mut self, op: &str, r: Result<R, Error>) -> Option<R> {
        self.put(op, result_text(&r));
        r.ok()
    }

    /// Records the return code and the value (deterministic results).
    fn val(&mut self, op: &str, r: Result<Vec<u8>, Error>) -> Option<Vec<u8>> {
        let text = match &r {
            Ok(v) => format!("OK {}", hex(v)),
            Err(_) => result_text(&r),
        };
        self.put(op, text);
        r.ok()
    }

    /// Records the return code and the length (random results).
    fn len(&mut self, op: &str, r: Result<Vec<u8>, Error>) -> Option<Vec<u8>> {
        let text = match &r {
            Ok(v) => format!("OK len={}", v.len()),
            Err(_) => result_text(&r),
        };
        self.put(op, text);
        r.ok()
    }

    fn note(&mut self, op: &str, text: impl std::fmt::Display) {
        self.put(op, text.to_string());
    }

    fn artifact(&mut self, name: &str, bytes: Option<&Vec<u8>>) {
        if let Some(b) = bytes {
            self.artifacts.push((name.to_string(), b.clone()));
        }
    }

    fn free_slot(&self) -> Slot {
        self.ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| !self.ctx.get_token_info(*s).unwrap().token_initialized())
            .expect("no free slot")
    }

    /// Initialises the free token with both PINs (not recorded: the token_init scenario
    /// covers these calls).
    fn ready_slot(&self) -> Slot {
        let slot = self.free_slot();
        self.ctx
            .init_token(slot, &AuthPin::from(SO_PIN), "compat")
            .unwrap();
        let s = self.ctx.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&AuthPin::from(SO_PIN))).unwrap();
        s.init_pin(&AuthPin::from(USER_PIN)).unwrap();
        s.logout().unwrap();
        drop(s);
        // SoftHSMv2 moves an initialised token to a new slot ID; look it up again.
        self.ctx
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| self.ctx.get_token_info(*s).unwrap().label() == "compat")
            .unwrap()
    }

    fn user_session(&self) -> Session {
        let slot = self.ready_slot();
        let s = self.ctx.open_rw_session(slot).unwrap();
        s.login(UserType::User, Some(&AuthPin::from(USER_PIN)))
            .unwrap();
        s
    }
}

// ---------------------------------------------------------------------------------------
// Fixed key material

fn rsa_private(label: &str, token: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Label(label.into()),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
        Attribute::Unwrap(true),
        Attribute::Modulus(unhex(keys::RSA_N)),
        Attribute::PublicExponent(unhex(keys::RSA_E)),
        Attribute::PrivateExponent(unhex(keys::RSA_D)),
        Attribute::Prime1(unhex(keys::RSA_P)),
        Attribute::Prime2(unhex(keys::RSA_Q)),
        Attribute::Exponent1(unhex(keys::RSA_DP)),
        Attribute::Exponent2(unhex(keys::RSA_DQ)),
        Attribute::Coefficient(unhex(keys::RSA_QINV)),
    ]
}

fn rsa_public(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Label(label.into()),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
        Attribute::Wrap(true),
        Attribute::Modulus(unhex(keys::RSA_N)),
        Attribute::PublicExponent(unhex(keys::RSA_E)),
    ]
}

fn ec_private() -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::EcParams(unhex(keys::EC_PARAMS_P256)),
        Attribute::Value(unhex(keys::EC_D)),
    ]
}

fn ec_public() -> Vec<Attribute> {
    let mut point = vec![0x04, 65];
    point.extend(unhex(keys::EC_POINT));
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::EcParams(unhex(keys::EC_PARAMS_P256)),
        Attribute::EcPoint(point),
    ]
}

fn aes(value: &[u8], extra: &[Attribute]) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
    ];
    // An attribute in `extra` replaces the default (a template must not repeat a type).
    t.retain(|a| {
        !extra
            .iter()
            .any(|e| e.attribute_type() == a.attribute_type())
    });
    t.extend_from_slice(extra);
    t
}

fn value_of(s: &Session, h: ObjectHandle) -> Result<Vec<u8>, Error> {
    let mut v = s.get_attributes(h, &[AttributeType::Value])?;
    match v.pop() {
        Some(Attribute::Value(bytes)) => Ok(bytes),
        // cryptoki drops an attribute the module marked unavailable (sensitive).
        _ => Err(Error::Pkcs11(
            cryptoki::error::RvError::AttributeSensitive,
            cryptoki::context::Function::GetAttributeValue,
        )),
    }
}

fn bool_attr(s: &Session, h: ObjectHandle, ty: AttributeType) -> Result<bool, Error> {
    let v = s.get_attributes(h, &[ty])?;
    Ok(match v.first() {
        Some(Attribute::Private(b))
        | Some(Attribute::Sensitive(b))
        | Some(Attribute::Local(b))
        | Some(Attribute::Token(b)) => *b,
        other => panic!("{ty:?} came back as {other:?}"),
    })
}

fn pss() -> Mechanism<'static> {
    Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    })
}

fn oaep_sha1() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ))
}

// ---------------------------------------------------------------------------------------
// Scenarios

fn general(t: &mut T) {
    let slot = t.free_slot();
    t.rv("C_GetSlotInfo", t.ctx.get_slot_info(slot));
    let s = t.ctx.open_ro_session(slot);
    let s = t.rv("C_OpenSession(RO, uninitialised token)", s);
    drop(s);
    let session = t.user_session();
    let r = session.generate_random_vec(32).map(|v| v.len());
    t.note(
        "C_GenerateRandom(32)",
        format!("{r:?}").replace("Ok(", "OK ("),
    );
    let r = t.ctx.get_slot_event();
    t.rv("C_WaitForSlotEvent(DONT_BLOCK)", r);
}

fn token_init(t: &mut T) {
    let slot = t.free_slot();
    let r = t.ctx.init_token(slot, &AuthPin::from("123"), "short");
    t.rv("C_InitToken(3-byte SO PIN)", r);
    let r = t.ctx.init_token(slot, &AuthPin::from(SO_PIN), "first");
    t.rv("C_InitToken(free slot)", r);
    let slot = t
        .ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let info = t.ctx.get_token_info(slot).unwrap();
    t.note(
        "token info after init",
        format!(
            "label={} initialized={} user_pin_initialized={} login_required={}",
            info.label(),
            info.token_initialized(),
            info.user_pin_initialized(),
            info.login_required()
        ),
    );
    let r = t.ctx.init_token(slot, &AuthPin::from(SO_PIN), "second");
    t.rv("C_InitToken(re-init, same SO PIN)", r);
    let r = t.ctx.init_token(slot, &AuthPin::from("87654321"), "third");
    t.rv("C_InitToken(re-init, wrong SO PIN)", r);
    let label = t.ctx.get_token_info(slot).map(|i| i.label().to_string());
    t.note("label after re-init", format!("{label:?}"));
    let s = t.ctx.open_rw_session(slot).unwrap();
    let r = s.init_pin(&AuthPin::from(USER_PIN));
    t.rv("C_InitPIN(not logged in)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
    t.rv("C_Login(USER, PIN not initialised)", r);
    let r = s.login(UserType::So, Some(&AuthPin::from(SO_PIN)));
    t.rv("C_Login(SO)", r);
    let r = s.init_pin(&AuthPin::from(USER_PIN));
    t.rv("C_InitPIN", r);
    let r = t.ctx.init_token(slot, &AuthPin::from(SO_PIN), "busy");
    t.rv("C_InitToken(session open)", r);
    let r = s.logout();
    t.rv("C_Logout(SO)", r);
    drop(s);
    let info = t.ctx.get_token_info(slot).unwrap();
    t.note("user PIN initialised", info.user_pin_initialized());
}

fn sessions(t: &mut T) {
    let slot = t.ready_slot();
    let ro = t.rv("C_OpenSession(RO)", t.ctx.open_ro_session(slot));
    let rw = t.rv("C_OpenSession(RW)", t.ctx.open_rw_session(slot));
    if let (Some(ro), Some(rw)) = (&ro, &rw) {
        let r = ro
            .get_session_info()
            .map(|i| format!("{:?}", i.session_state()));
        t.note("C_GetSessionInfo(RO)", format!("{r:?}"));
        let r = rw
            .get_session_info()
            .map(|i| format!("{:?}", i.session_state()));
        t.note("C_GetSessionInfo(RW)", format!("{r:?}"));
        let r = ro.login(UserType::So, Some(&AuthPin::from(SO_PIN)));
        t.rv("C_Login(SO) with a RO session open", r);
        let r = rw.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
        t.rv("C_Login(USER)", r);
        let r = ro
            .get_session_info()
            .map(|i| format!("{:?}", i.session_state()));
        t.note("C_GetSessionInfo(RO, user)", format!("{r:?}"));
        let r = rw
            .get_session_info()
            .map(|i| format!("{:?}", i.session_state()));
        t.note("C_GetSessionInfo(RW, user)", format!("{r:?}"));
        let r = ro.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Value(b"x".to_vec()),
        ]);
        t.rv("C_CreateObject(token object, RO session)", r);
        let info = t.ctx.get_token_info(slot).unwrap();
        t.note(
            "token session counts",
            format!("{:?}/{:?}", info.session_count(), info.rw_session_count()),
        );
    }
    let r = ro.map(|s| s.close());
    t.note(
        "C_CloseSession(RO)",
        format!("{:?}", r.map(|r| result_text(&r))),
    );
    let r = rw.map(|s| s.close());
    t.note(
        "C_CloseSession(RW)",
        format!("{:?}", r.map(|r| result_text(&r))),
    );
    let s = t.ctx.open_ro_session(slot).unwrap();
    let r = s
        .get_session_info()
        .map(|i| format!("{:?}", i.session_state()));
    t.note("login state after all sessions closed", format!("{r:?}"));
}

fn login(t: &mut T) {
    let slot = t.ready_slot();
    let s = t.ctx.open_rw_session(slot).unwrap();
    let r = s.logout();
    t.rv("C_Logout(not logged in)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from("0000")));
    t.rv("C_Login(USER, wrong PIN)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from("")));
    t.rv("C_Login(USER, empty PIN)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
    t.rv("C_Login(USER)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
    t.rv("C_Login(USER again)", r);
    let r = s.login(UserType::So, Some(&AuthPin::from(SO_PIN)));
    t.rv("C_Login(SO while USER)", r);
    let r = s.set_pin(&AuthPin::from("0000"), &AuthPin::from("5678"));
    t.rv("C_SetPIN(wrong old PIN)", r);
    let r = s.set_pin(&AuthPin::from(USER_PIN), &AuthPin::from("5678"));
    t.rv("C_SetPIN", r);
    let r = s.logout();
    t.rv("C_Logout", r);
    let r = s.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
    t.rv("C_Login(USER, old PIN)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from("5678")));
    t.rv("C_Login(USER, new PIN)", r);
    let r = s.logout();
    t.rv("C_Logout again", r);
    let r = s.login(UserType::So, Some(&AuthPin::from("00000000")));
    t.rv("C_Login(SO, wrong PIN)", r);
    let r = s.login(UserType::So, Some(&AuthPin::from(SO_PIN)));
    t.rv("C_Login(SO)", r);
    let r = s.login(UserType::User, Some(&AuthPin::from("5678")));
    t.rv("C_Login(USER while SO)", r);
    let r = t.ctx.open_ro_session(slot).map(|_| ());
    t.rv("C_OpenSession(RO while SO)", r);
}

fn objects(t: &mut T) {
    let slot = t.ready_slot();
    {
        let anon = t.ctx.open_rw_session(slot).unwrap();
        let r = anon.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Value(b"secret".to_vec()),
        ]);
        t.rv("C_CreateObject(private data, not logged in)", r);
        let r = anon.create_object(&aes(
            &[7u8; 16],
            &[Attribute::Token(true), Attribute::Private(false)],
        ));
        t.rv("C_CreateObject(public AES token key, not logged in)", r);
    }
    let s = t.ctx.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::from(USER_PIN)))
        .unwrap();
    let data = t.rv(
        "C_CreateObject(data)",
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"note".to_vec()),
            Attribute::Application(b"compat".to_vec()),
            Attribute::Value(b"hello".to_vec()),
        ]),
    );
    if let Some(h) = data {
        let r = bool_attr(&s, h, AttributeType::Private).map(|b| format!("OK {b}"));
        t.note(
            "data object default CKA_PRIVATE",
            r.unwrap_or_else(|e| format!("{e}")),
        );
        let r = value_of(&s, h);
        t.val("C_GetAttributeValue(data CKA_VALUE)", r);
        let r = s
            .find_objects(&[Attribute::Label(b"note".to_vec())])
            .map(|v| v.len());
        t.note("C_FindObjects(label=note)", format!("{r:?}"));
        let r = s.update_attributes(h, &[Attribute::Label(b"renamed".to_vec())]);
        t.rv("C_SetAttributeValue(label)", r);
        let r = s
            .find_objects(&[Attribute::Label(b"renamed".to_vec())])
            .map(|v| v.len());
        t.note("C_FindObjects(label=renamed)", format!("{r:?}"));
        let r = s.update_attributes(h, &[Attribute::Class(ObjectClass::SECRET_KEY)]);
        t.rv("C_SetAttributeValue(CKA_CLASS)", r);
        let r = s.destroy_object(h);
        t.rv("C_DestroyObject", r);
        let r = s.get_attributes(h, &[AttributeType::Label]).map(|_| ());
        t.rv("C_GetAttributeValue(destroyed)", r);
    }
    let key = t.rv(
        "C_CreateObject(AES, sensitive)",
        s.create_object(&aes(
            &[1u8; 16],
            &[Attribute::Sensitive(true), Attribute::Token(true)],
        )),
    );
    if let Some(h) = key {
        let r = value_of(&s, h).map(|_| ());
        t.rv("C_GetAttributeValue(sensitive CKA_VALUE)", r);
        let r = s
            .get_attributes(h, &[AttributeType::ValueLen])
            .map(|v| format!("{v:?}"));
        t.note("C_GetAttributeValue(CKA_VALUE_LEN)", format!("{r:?}"));
        let r = s.update_attributes(h, &[Attribute::Sensitive(false)]);
        t.rv("C_SetAttributeValue(CKA_SENSITIVE false)", r);
        let r = s
            .get_attributes(h, &[AttributeType::UniqueId])
            .map(|v| match v.first() {
                Some(Attribute::UniqueId(id)) => id.len(),
                _ => 0,
            });
        let text = match &r {
            Ok(n) => format!("OK len={n}"),
            Err(_) => result_text(&r),
        };
        // kmshsm's ids are random; only their presence is compared.
        t.note(
            "C_GetAttributeValue(CKA_UNIQUE_ID)",
            text.replace("len=0", "unavailable"),
        );
    }
    let r = s.create_object(&aes(&[2u8; 15], &[]));
    t.rv("C_CreateObject(AES, 15-byte value)", r);
    let r = s.create_object(&aes(&[2u8; 16], &[Attribute::ValueLen(16.into())]));
    t.rv("C_CreateObject(AES with CKA_VALUE_LEN)", r);
    let mut dup = aes(&[2u8; 16], &[]);
    dup.push(Attribute::Class(ObjectClass::DATA));
    let r = s.create_object(&dup);
    t.rv("C_CreateObject(duplicate CKA_CLASS)", r);
    let r = s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Value(vec![0; 16]),
    ]);
    t.rv("C_CreateObject(secret key without CKA_KEY_TYPE)", r);
    // Token object handles once every session of the application is closed.
    if let Some(h) = key {
        drop(s);
        let s2 = t.ctx.open_rw_session(slot).unwrap();
        s2.login(UserType::User, Some(&AuthPin::from(USER_PIN)))
            .unwrap();
        let r = s2.get_attributes(h, &[AttributeType::Label]).map(|_| ());
        t.rv("C_GetAttributeValue(old token handle, new session)", r);
        let r = s2
            .find_objects(&[Attribute::KeyType(KeyType::AES)])
            .map(|v| v.len());
        t.note("C_FindObjects(AES keys after reopen)", format!("{r:?}"));
    }
}

fn generation(t: &mut T) {
    let s = t.user_session();
    let r = s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(true),
            Attribute::ValueLen(32.into()),
            Attribute::Encrypt(true),
        ],
    );
    if let Some(h) = t.rv("C_GenerateKey(AES-256)", r) {
        let r = s.get_attributes(
            h,
            &[
                AttributeType::ValueLen,
                AttributeType::Local,
                AttributeType::KeyType,
            ],
        );
        t.note(
            "AES key attributes",
            format!("{:?}", r.map_err(|e| e.to_string())),
        );
    }
    let r = s.generate_key(&Mechanism::AesKeyGen, &[Attribute::Token(false)]);
    t.rv("C_GenerateKey(AES, no CKA_VALUE_LEN)", r);
    let r = s.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(20.into())]);
    t.rv("C_GenerateKey(AES, CKA_VALUE_LEN 20)", r);
    let r = s.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
        ],
        &[Attribute::Token(true), Attribute::Sign(true)],
    );
    if let Some((public, private)) = t.rv("C_GenerateKeyPair(RSA 2048)", r) {
        let r = s.get_attributes(
            public,
            &[AttributeType::ModulusBits, AttributeType::PublicExponent],
        );
        t.note(
            "RSA public attributes",
            format!("{:?}", r.map_err(|e| e.to_string())),
        );
        let r = s.get_attributes(
            private,
            &[
                AttributeType::Local,
                AttributeType::Sensitive,
                AttributeType::Private,
            ],
        );
        t.note(
            "RSA private attributes",
            format!("{:?}", r.map_err(|e| e.to_string())),
        );
        let r = s.sign(&Mechanism::Sha256RsaPkcs, private, b"generated");
        let sig = t.len("C_Sign(generated RSA key)", r);
        let r = s.verify(
            &Mechanism::Sha256RsaPkcs,
            public,
            b"generated",
            &sig.unwrap_or_default(),
        );
        t.rv("C_Verify(generated RSA key)", r);
    }
    let r = s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::EcParams(unhex(keys::EC_PARAMS_P256)),
            Attribute::Verify(true),
        ],
        &[Attribute::Token(false), Attribute::Sign(true)],
    );
    if let Some((public, private)) = t.rv("C_GenerateKeyPair(EC P-256)", r) {
        let r = s
            .get_attributes(public, &[AttributeType::EcPoint])
            .map(|v| match v.first() {
                Some(Attribute::EcPoint(p)) => p.len(),
                _ => 0,
            });
        t.note("EC public CKA_EC_POINT length", format!("{r:?}"));
        let r = s.sign(&Mechanism::Ecdsa, private, &[9u8; 32]);
        let sig = t.len("C_Sign(generated EC key)", r);
        let r = s.verify(
            &Mechanism::Ecdsa,
            public,
            &[9u8; 32],
            &sig.unwrap_or_default(),
        );
        t.rv("C_Verify(generated EC key)", r);
    }
    let r = s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70])],
        &[],
    );
    t.rv("C_GenerateKeyPair(EC, Ed25519 OID)", r);
}

fn sign_verify(t: &mut T) {
    let s = t.user_session();
    let rsa = t.rv(
        "C_CreateObject(RSA private)",
        s.create_object(&rsa_private("rsa", false)),
    );
    let rsa_pub = t.rv(
        "C_CreateObject(RSA public)",
        s.create_object(&rsa_public("rsa")),
    );
    let ec = t.rv("C_CreateObject(EC private)", s.create_object(&ec_private()));
    let ec_pub = t.rv("C_CreateObject(EC public)", s.create_object(&ec_public()));
    let (Some(rsa), Some(rsa_pub), Some(ec), Some(ec_pub)) = (rsa, rsa_pub, ec, ec_pub) else {
        return;
    };
    let msg = b"differential message";
    let sig = t.val(
        "C_Sign(SHA256-RSA-PKCS)",
        s.sign(&Mechanism::Sha256RsaPkcs, rsa, msg),
    );
    let r = s.verify(
        &Mechanism::Sha256RsaPkcs,
        rsa_pub,
        msg,
        &sig.clone().unwrap_or_default(),
    );
    t.rv("C_Verify(SHA256-RSA-PKCS)", r);
    let mut bad = sig.unwrap_or_default();
    if let Some(b) = bad.last_mut() {
        *b ^= 1;
    }
    let r = s.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, msg, &bad);
    t.rv("C_Verify(SHA256-RSA-PKCS, tampered)", r);
    let r = s.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, msg, &bad[..10]);
    t.rv("C_Verify(SHA256-RSA-PKCS, short)", r);
    let pss_sig = t.len("C_Sign(SHA256-RSA-PKCS-PSS)", s.sign(&pss(), rsa, msg));
    let r = s.verify(&pss(), rsa_pub, msg, &pss_sig.clone().unwrap_or_default());
    t.rv("C_Verify(SHA256-RSA-PKCS-PSS)", r);
    t.artifact("pss", pss_sig.as_ref());
    let hash = [0x5au8; 32];
    let ecdsa = t.len("C_Sign(ECDSA)", s.sign(&Mechanism::Ecdsa, ec, &hash));
    let r = s.verify(
        &Mechanism::Ecdsa,
        ec_pub,
        &hash,
        &ecdsa.clone().unwrap_or_default(),
    );
    t.rv("C_Verify(ECDSA)", r);
    t.artifact("ecdsa", ecdsa.as_ref());
    let r = s.sign(&Mechanism::Sha256RsaPkcs, ec, msg);
    t.rv("C_Sign(SHA256-RSA-PKCS with an EC key)", r);
    let r = s.sign(&Mechanism::Ecdsa, rsa_pub, &hash);
    t.rv("C_Sign(ECDSA with an RSA public key)", r);
    if let Some(peer) = t.peer.get("pss").cloned() {
        let r = s.verify(&pss(), rsa_pub, msg, &peer);
        t.rv("peer C_Verify(SHA256-RSA-PKCS-PSS)", r);
    }
    if let Some(peer) = t.peer.get("ecdsa").cloned() {
        let r = s.verify(&Mechanism::Ecdsa, ec_pub, &hash, &peer);
        t.rv("peer C_Verify(ECDSA)", r);
    }
}

fn encrypt_decrypt(t: &mut T) {
    let s = t.user_session();
    let key = s
        .create_object(&aes(
            &[0x11u8; 32],
            &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
        ))
        .unwrap();
    let rsa = s.create_object(&rsa_private("rsa", false)).unwrap();
    let rsa_pub = s.create_object(&rsa_public("rsa")).unwrap();
    let plain = b"twenty-one bytes long".to_vec();
    let cbc = Mechanism::AesCbcPad([0x22u8; 16]);
    let ct = t.val("C_Encrypt(AES-CBC-PAD)", s.encrypt(&cbc, key, &plain));
    let r = s.decrypt(&cbc, key, &ct.clone().unwrap_or_default());
    t.val("C_Decrypt(AES-CBC-PAD)", r);
    let r = s.decrypt(&cbc, key, &ct.unwrap_or_default()[..20]);
    t.rv("C_Decrypt(AES-CBC-PAD, truncated)", r);
    let mut iv = [0x33u8; 12];
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut iv, b"aad", 128.into()).unwrap());
    let ct = t.val("C_Encrypt(AES-GCM)", s.encrypt(&gcm, key, &plain));
    let r = s.decrypt(&gcm, key, &ct.clone().unwrap_or_default());
    t.val("C_Decrypt(AES-GCM)", r);
    let mut bad = ct.unwrap_or_default();
    if let Some(b) = bad.first_mut() {
        *b ^= 1;
    }
    let r = s.decrypt(&gcm, key, &bad);
    t.rv("C_Decrypt(AES-GCM, tampered)", r);
    let ct = t.len(
        "C_Encrypt(RSA-PKCS)",
        s.encrypt(&Mechanism::RsaPkcs, rsa_pub, &plain),
    );
    let r = s.decrypt(&Mechanism::RsaPkcs, rsa, &ct.clone().unwrap_or_default());
    t.val("C_Decrypt(RSA-PKCS)", r);
    t.artifact("rsa-pkcs", ct.as_ref());
    let ct = t.len(
        "C_Encrypt(RSA-OAEP SHA-1)",
        s.encrypt(&oaep_sha1(), rsa_pub, &plain),
    );
    let r = s.decrypt(&oaep_sha1(), rsa, &ct.clone().unwrap_or_default());
    t.val("C_Decrypt(RSA-OAEP SHA-1)", r);
    t.artifact("oaep-sha1", ct.as_ref());
    let oaep256 = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let ct = t.len(
        "C_Encrypt(RSA-OAEP SHA-256)",
        s.encrypt(&oaep256, rsa_pub, &plain),
    );
    t.artifact("oaep-sha256", ct.as_ref());
    let label = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::data_specified(b"label"),
    ));
    let r = s.encrypt(&label, rsa_pub, &plain);
    t.len("C_Encrypt(RSA-OAEP SHA-1 with label)", r);
    let r = s.encrypt(&Mechanism::RsaPkcs, rsa_pub, &[0u8; 250]);
    t.rv("C_Encrypt(RSA-PKCS, too long)", r);
    for (name, mech) in [("rsa-pkcs", Mechanism::RsaPkcs), ("oaep-sha1", oaep_sha1())] {
        if let Some(peer) = t.peer.get(name).cloned() {
            let r = s.decrypt(&mech, rsa, &peer);
            t.val(&format!("peer C_Decrypt({name})"), r);
        }
    }
    if !t.peer.is_empty() {
        match t.peer.get("oaep-sha256").cloned() {
            Some(peer) => {
                let r = s.decrypt(&oaep256, rsa, &peer);
                t.val("peer C_Decrypt(RSA-OAEP SHA-256)", r);
            }
            None => t.note("peer C_Decrypt(RSA-OAEP SHA-256)", "skipped"),
        }
    }
}

fn wrap_unwrap(t: &mut T) {
    let s = t.user_session();
    let kek = s
        .create_object(&aes(
            &[0x44u8; 16],
            &[Attribute::Wrap(true), Attribute::Unwrap(true)],
        ))
        .unwrap();
    let target = s
        .create_object(&aes(
            &[0x55u8; 16],
            &[Attribute::Extractable(true), Attribute::Sensitive(false)],
        ))
        .unwrap();
    let generic = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Extractable(true),
            Attribute::Sensitive(false),
            Attribute::Value(vec![0x66u8; 20]),
        ])
        .unwrap();
    let rsa = s.create_object(&rsa_private("rsa", false)).unwrap();
    let rsa_pub = s.create_object(&rsa_public("rsa")).unwrap();
    let unwrap_template = |kt: KeyType| {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(kt),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ]
    };
    let w = t.val(
        "C_WrapKey(AES-KEY-WRAP)",
        s.wrap_key(&Mechanism::AesKeyWrap, kek, target),
    );
    let r = s
        .unwrap_key(
            &Mechanism::AesKeyWrap,
            kek,
            &w.unwrap_or_default(),
            &unwrap_template(KeyType::AES),
        )
        .and_then(|h| value_of(&s, h));
    t.val("C_UnwrapKey(AES-KEY-WRAP) value", r);
    let w = t.val(
        "C_WrapKey(AES-KEY-WRAP-PAD 0x210A, 16-byte key)",
        s.wrap_key(&Mechanism::AesKeyWrapPad, kek, target),
    );
    let r = s
        .unwrap_key(
            &Mechanism::AesKeyWrapPad,
            kek,
            &w.unwrap_or_default(),
            &unwrap_template(KeyType::AES),
        )
        .and_then(|h| value_of(&s, h));
    t.val("C_UnwrapKey(AES-KEY-WRAP-PAD, 16-byte key) value", r);
    let w = t.val(
        "C_WrapKey(AES-KEY-WRAP-PAD 0x210A, 20-byte key)",
        s.wrap_key(&Mechanism::AesKeyWrapPad, kek, generic),
    );
    let r = s
        .unwrap_key(
            &Mechanism::AesKeyWrapPad,
            kek,
            &w.unwrap_or_default(),
            &unwrap_template(KeyType::GENERIC_SECRET),
        )
        .and_then(|h| value_of(&s, h));
    t.val("C_UnwrapKey(AES-KEY-WRAP-PAD, 20-byte key) value", r);
    // Both zero-pad the 20-byte key to 24 bytes (PKCS#11 3.0 §2.14): the same bytes.
    t.val(
        "C_WrapKey(AES-KEY-WRAP, 20-byte key)",
        s.wrap_key(&Mechanism::AesKeyWrap, kek, generic),
    );
    let w = t.len(
        "C_WrapKey(RSA-PKCS)",
        s.wrap_key(&Mechanism::RsaPkcs, rsa_pub, target),
    );
    let r = s
        .unwrap_key(
            &Mechanism::RsaPkcs,
            rsa,
            &w.clone().unwrap_or_default(),
            &unwrap_template(KeyType::AES),
        )
        .and_then(|h| value_of(&s, h));
    t.val("C_UnwrapKey(RSA-PKCS) value", r);
    t.artifact("rsa-wrap", w.as_ref());
    let r = s.wrap_key(&Mechanism::AesKeyWrap, kek, rsa);
    t.rv("C_WrapKey(AES-KEY-WRAP, non-extractable RSA key)", r);
    if let Some(peer) = t.peer.get("rsa-wrap").cloned() {
        let r = s
            .unwrap_key(
                &Mechanism::RsaPkcs,
                rsa,
                &peer,
                &unwrap_template(KeyType::AES),
            )
            .and_then(|h| value_of(&s, h));
        t.val("peer C_UnwrapKey(RSA-PKCS) value", r);
    }
}

// ---------------------------------------------------------------------------------------
// Running and comparing

struct Transcript {
    lines: Vec<(String, String)>,
    artifacts: BTreeMap<String, Vec<u8>>,
}

/// Child side: load `module`, run `scenario`, print the transcript.
fn child_main(scenario: fn(&mut T), role: &str) {
    let (module, peer_file) = match role.split_once(':') {
        Some((m, f)) => (Module::from_name(m), Some(f.to_string())),
        None => (Module::from_name(role), None),
    };
    let ctx = Pkcs11::new(module.path()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let peer = peer_file
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(k, v)| (k.to_string(), unhex(v)))
                .collect()
        })
        .unwrap_or_default();
    let mut t = T {
        ctx,
        lines: Vec::new(),
        artifacts: Vec::new(),
        peer,
    };
    scenario(&mut t);
    for (op, result) in &t.lines {
        common::emit(&format!("T {op}\t{result}"));
    }
    for (name, bytes) in &t.artifacts {
        common::emit(&format!("A {name} {}", hex(bytes)));
    }
}

fn run_child(entry: &str, role: &str) -> Transcript {
    let env = Env::new();
    let mut command = common::child(entry, role);
    env.apply(&mut command);
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{entry} in {role} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut t = Transcript {
        lines: Vec::new(),
        artifacts: BTreeMap::new(),
    };
    for line in common::lines_of(&out) {
        if let Some(rest) = line.strip_prefix("T ") {
            let (op, result) = rest.split_once('\t').unwrap();
            t.lines.push((op.to_string(), result.to_string()));
        } else if let Some(rest) = line.strip_prefix("A ") {
            let (name, h) = rest.split_once(' ').unwrap();
            t.artifacts.insert(name.to_string(), unhex(h));
        }
    }
    t
}

/// Parent side: both modules, then a second round with each other's random outputs.
fn compare(scenario: &str, entry: &str) {
    let mut first: BTreeMap<&str, Transcript> = BTreeMap::new();
    for m in Module::BOTH {
        first.insert(m.name(), run_child(entry, m.name()));
    }
    let needs_peer = first.values().any(|t| !t.artifacts.is_empty());
    let finals: BTreeMap<&str, Transcript> = if needs_peer {
        let dir = tempfile::tempdir().unwrap();
        let mut out = BTreeMap::new();
        for (me, other) in [("softhsm", "kmshsm"), ("kmshsm", "softhsm")] {
            let file = dir.path().join(format!("from-{other}"));
            let text: String = first[other]
                .artifacts
                .iter()
                .map(|(k, v)| format!("{k} {}\n", hex(v)))
                .collect();
            std::fs::write(&file, text).unwrap();
            out.insert(me, run_child(entry, &format!("{me}:{}", file.display())));
        }
        out
    } else {
        first
    };
    let (s, k) = (&finals["softhsm"], &finals["kmshsm"]);
    let ks: BTreeMap<&str, &str> = k
        .lines
        .iter()
        .map(|(o, r)| (o.as_str(), r.as_str()))
        .collect();
    let ss: BTreeMap<&str, &str> = s
        .lines
        .iter()
        .map(|(o, r)| (o.as_str(), r.as_str()))
        .collect();
    let mut problems = Vec::new();
    let mut report = String::new();
    for (op, _) in s
        .lines
        .iter()
        .chain(k.lines.iter().filter(|(o, _)| !ss.contains_key(o.as_str())))
    {
        let sv = ss.get(op.as_str()).copied().unwrap_or("(absent)");
        let kv = ks.get(op.as_str()).copied().unwrap_or("(absent)");
        report.push_str(&format!("  {op}: softhsm {sv} | kmshsm {kv}\n"));
        if sv == kv {
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .find(|(sc, o, _, _, _)| *sc == scenario && *o == op);
        match allowed {
            Some((_, _, a_s, a_k, _)) if *a_s == sv && *a_k == kv => {}
            Some((_, _, a_s, a_k, section)) => problems.push(format!(
                "{op}: softhsm `{sv}`, kmshsm `{kv}`; DIVERGENCES.md#{section} expects `{a_s}` / `{a_k}`"
            )),
            None => problems.push(format!("{op}: softhsm `{sv}`, kmshsm `{kv}` (not in ALLOWED)")),
        }
    }
    // Allowlist entries of this scenario that no longer apply must be removed.
    for (sc, op, a_s, a_k, section) in ALLOWED.iter().filter(|e| e.0 == scenario) {
        let (sv, kv) = (ss.get(op).copied(), ks.get(op).copied());
        if (sv, kv) != (Some(*a_s), Some(*a_k))
            && !(sv.is_none() && kv.is_none() && op.starts_with("peer"))
        {
            problems.push(format!(
                "ALLOWED entry {sc}/{op} (#{section}) is stale: now softhsm {sv:?}, kmshsm {kv:?}"
            ));
        }
    }
    println!("transcript of {scenario}:\n{report}");
    assert!(
        problems.is_empty(),
        "{scenario}:\n{}\n\n{report}",
        problems.join("\n")
    );
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        /// One test per scenario; the test name is what the children are started with.
        mod scenario {$(
            #[test]
            fn $name() {
                match super::common::child_role() {
                    Some(role) => super::child_main(super::$name, &role),
                    None => super::compare(
                        stringify!($name),
                        concat!("scenario::", stringify!($name)),
                    ),
                }
            }
        )*}
    };
}

scenarios!(
    general,
    token_init,
    sessions,
    login,
    objects,
    generation,
    sign_verify,
    encrypt_decrypt,
    wrap_unwrap
);

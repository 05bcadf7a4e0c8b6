//! The re-initialisation checks (`Token::commit_decided`) refuse nothing in ordinary
//! use: a process's own C_InitToken, C_Login and C_Logout, then creation, change, copy,
//! destruction, key generation, KMS state changes and C_SetPIN, on SQLite and
//! PostgreSQL, with an audit trail that still verifies (from an independent review).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]

mod common;

use common::kms::*;
use common::*;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;

fn ordinary_use(env: &TestEnv) {
    let ctx = env.load();
    let slot = init_token(&ctx);
    for round in 0..2 {
        if round == 1 {
            // This process's own re-initialisation.
            ctx.init_token(slot, &pin(SO_PIN), "again").unwrap();
            let so = ctx.open_rw_session(slot).unwrap();
            so.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
            so.init_pin(&pin(USER_PIN)).unwrap();
            so.logout().unwrap();
            so.close().unwrap();
        }
        let s = user_session(&ctx, slot);
        let h = s
            .create_object(&[
                Attribute::Class(cryptoki::object::ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(b"p".to_vec()),
                Attribute::Value(b"v".to_vec()),
            ])
            .unwrap();
        s.update_attributes(h, &[Attribute::Label(b"q".to_vec())])
            .unwrap();
        let c = s
            .copy_object(h, &[Attribute::Label(b"r".to_vec())])
            .unwrap();
        s.destroy_object(c).unwrap();
        let key = s
            .generate_key(
                &cryptoki::mechanism::Mechanism::AesKeyGen,
                &[Attribute::Token(true), Attribute::ValueLen(32.into())],
            )
            .unwrap();
        set_state(&s, key, STATE_DISABLED).unwrap();
        set_state(&s, key, STATE_ENABLED).unwrap();
        s.logout().unwrap();
        s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        // Private handles are given anew at each login.
        let found = s.find_objects(&[Attribute::Label(b"q".to_vec())]).unwrap();
        assert_eq!(found.len(), 1);
        let h = found[0];
        s.update_attributes(h, &[Attribute::Label(b"s".to_vec())])
            .unwrap();
        let keys = s
            .find_objects(&[Attribute::Class(cryptoki::object::ObjectClass::SECRET_KEY)])
            .unwrap();
        assert_eq!(keys.len(), 1);
        let _ = key;
        set_state(&s, keys[0], STATE_DISABLED).unwrap();
        s.set_pin(&pin(USER_PIN), &pin(USER_PIN)).unwrap();
        assert_eq!(
            s.find_objects(&[Attribute::Label(b"s".to_vec())])
                .unwrap()
                .len(),
            1
        );
        s.close().unwrap();
    }
    assert!(common::audit::kmshsm(&["audit", "verify"]).ok);
}

#[test]
fn sqlite_ordinary_use_after_own_reinit_login_logout() {
    ordinary_use(&TestEnv::new());
}

#[test]
fn postgres_ordinary_use_after_own_reinit_login_logout() {
    ordinary_use(&TestEnv::postgres());
}

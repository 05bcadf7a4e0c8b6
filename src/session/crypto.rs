//! A session's cryptographic operations: one active encryption, decryption, digest,
//! signature and verification at a time (§5.8-5.13), each started with a mechanism and
//! a key the token has checked, and stepped under the rules of `operation`.
//!
//! The operation lock is held while a step runs: one session is one thread of work
//! (§2.6, sessions are not meant to be shared by concurrent calls). Other sessions are
//! never blocked by it. Every step that computes with a secret says so to
//! `secret_use` (so the FFI guard scrubs the stack after it); a length query or a
//! public-key verification does not. This module must not touch raw pointers.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::ck::CKO_PUBLIC_KEY;

use super::{Ops, Session};
use crate::error::{Error, Result};
use crate::mechanism::{Mechanism, MechanismArg, Usage};
use crate::object::key::{Key, Material};
use crate::object::table::ObjectHandle;
use crate::operation::{self, Active, Cipher, Grant, Judged, Output, Step};
use crate::secret_use;
use crate::token::keys::mechanism;

/// Which of the two cipher slots.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// An operation an `Init` call with no mechanism ends (PKCS#11 3.0 §5.9–5.13).
#[derive(Debug, Clone, Copy)]
pub enum Cancel {
    Cipher(Direction),
    Digest,
    Sign,
    Verify,
}

impl Ops {
    fn cipher(&mut self, dir: Direction) -> &mut Option<Active<dyn Cipher>> {
        match dir {
            Direction::Encrypt => &mut self.encrypt,
            Direction::Decrypt => &mut self.decrypt,
        }
    }

    fn judged(&mut self, dir: Direction) -> &mut Option<Judged> {
        match dir {
            Direction::Encrypt => &mut self.judged_encrypt,
            Direction::Decrypt => &mut self.judged_decrypt,
        }
    }
}

/// Judges an active operation's key again before a step that uses it: the token
/// re-checks login, the key's policy and its KMS state now, and a key awaiting its
/// context-specific login is refused. A step that only asks for a length (`uses_key`
/// false) computes nothing with the key and is not judged: the step that follows is.
pub(super) fn recheck<T: ?Sized>(
    token: &crate::token::Token,
    slot: &mut Option<Active<T>>,
    uses_key: bool,
) -> Result<()> {
    if !uses_key {
        return Ok(());
    }
    operation::recheck(slot, |g: &Grant| {
        if g.awaiting_login {
            return Err(Error::UserNotLoggedIn);
        }
        token.recheck_use(g)
    })
}

impl Session {
    /// The key for an operation's init, judged by the token; `m` is the mechanism the
    /// operation will run. Most symmetric mechanisms build their key schedules at init,
    /// so the call is noted (`secret_use`); asymmetric ones only keep a reference to the
    /// parsed key until the data arrives, and so do the symmetric ones whose schedule is
    /// the key's own, built once (`Key::prepared`, `Mechanism::init_handles_secret`).
    /// The key is lent to `start`, which makes the operation of mechanism `m` with it
    /// (`Token::key_for`).
    fn key_checked<R>(
        &self,
        mech: &MechanismArg,
        m: impl FnOnce() -> Result<&'static dyn Mechanism>,
        key: ObjectHandle,
        usage: Usage,
        start: impl FnOnce(&'static dyn Mechanism, &Arc<Key>) -> Result<R>,
    ) -> Result<(R, Grant)> {
        self.token.key_for(key, usage, mech.kind, |key| {
            let m = m()?;
            if matches!(key.material, Material::Secret(_)) && m.init_handles_secret() {
                secret_use::note();
            }
            start(m, key)
        })
    }

    /// `C_Login(CKU_CONTEXT_SPECIFIC)`: the user's PIN again, for one operation of this
    /// session whose `CKA_ALWAYS_AUTHENTICATE` key awaits it (§5.6).
    pub(crate) fn context_login(&self, pin: &[u8]) -> Result<()> {
        let mut ops = self.ops.lock();
        let awaiting = |g: Option<&Grant>| g.is_some_and(|g| g.awaiting_login);
        let any = awaiting(ops.encrypt.as_ref().and_then(|a| a.grant.as_ref()))
            || awaiting(ops.decrypt.as_ref().and_then(|a| a.grant.as_ref()))
            || awaiting(ops.sign.as_ref().and_then(|a| a.grant.as_ref()))
            || awaiting(ops.verify.as_ref().and_then(|a| a.grant.as_ref()))
            || awaiting(ops.message_decrypt.as_ref().and_then(|a| a.grant.as_ref()));
        if !any {
            return self
                .token
                .login(self.handle, crate::token::UserKind::ContextSpecific, pin);
        }
        self.token.verify_context_pin(pin)?;
        // One PIN entry authorises one operation: the signature if one waits, else the
        // decryption (only those two ever wait, `Token::key_for`).
        let _ = operation::satisfy_login(&mut ops.sign)
            || operation::satisfy_login(&mut ops.decrypt)
            || operation::satisfy_login(&mut ops.encrypt)
            || operation::satisfy_login(&mut ops.verify)
            || operation::satisfy_login(&mut ops.message_decrypt);
        Ok(())
    }

    // ---- encryption and decryption

    pub fn cipher_init(
        &self,
        dir: Direction,
        mech: &MechanismArg,
        key: ObjectHandle,
    ) -> Result<()> {
        let mut ops = self.ops.lock();
        if ops.cipher(dir).is_some() {
            return Err(Error::OperationActive);
        }
        let m = mechanism(mech.kind)?;
        let usage = match dir {
            Direction::Encrypt => Usage::Encrypt,
            Direction::Decrypt => Usage::Decrypt,
        };
        // As `key_checked`'s.
        let make = |key: &Arc<Key>| {
            if matches!(key.material, Material::Secret(_)) && m.init_handles_secret() {
                secret_use::note();
            }
            match dir {
                Direction::Encrypt => m.encrypt(&mech.param, key),
                Direction::Decrypt => m.decrypt(&mech.param, key),
            }
        };
        // The last init's judgement of the same key, where it still holds (an
        // application encrypting many messages with one key inits once a message).
        let again = match ops.judged(dir) {
            Some(last) => self.token.key_again(last, key, usage, mech.kind, make)?,
            None => None,
        };
        let (op, grant) = match again {
            Some(done) => done,
            None => {
                let (op, grant) = self.token.key_for(key, usage, mech.kind, make)?;
                *ops.judged(dir) = Some(grant.judgement());
                (op, grant)
            }
        };
        operation::start_with(ops.cipher(dir), op, Some(grant))
    }

    pub fn cipher_once(
        &self,
        dir: Direction,
        input: &[u8],
        capacity: Option<usize>,
    ) -> Result<Output> {
        self.cipher_once_into(
            dir,
            input,
            capacity,
            None::<fn(usize) -> Option<&'static mut [u8]>>,
        )
    }

    /// `cipher_once`, given also the caller's buffer for a mechanism that can write its
    /// output there without a copy (`Cipher::one_shot_into`): `direct(n)` is a slice of
    /// exactly `n` bytes of it, where the buffer may be written that way.
    pub(crate) fn cipher_once_into<'o>(
        &self,
        dir: Direction,
        input: &[u8],
        capacity: Option<usize>,
        direct: Option<impl FnOnce(usize) -> Option<&'o mut [u8]>>,
    ) -> Result<Output> {
        let mut ops = self.ops.lock();
        let slot = ops.cipher(dir);
        recheck(&self.token, slot, capacity.is_some())?;
        if let Some(direct) = direct.filter(|_| capacity.is_some()) {
            let done = operation::produce_direct(
                slot,
                input,
                direct,
                |op| op.one_shot_len(input.len()),
                |op, out| {
                    secret_use::note_within(op.stack_reach(input.len()));
                    op.one_shot_into(input, out)
                },
            )?;
            if let Some(done) = done {
                return Ok(done);
            }
        }
        operation::produce(
            slot,
            capacity,
            Step::Once,
            input,
            |op| op.one_shot_bound(input.len()),
            |op| {
                secret_use::note_within(op.stack_reach(input.len()));
                op.one_shot(input)
            },
        )
    }

    /// Ends the operation `which` with whatever output it kept (an `Init` call given no
    /// mechanism, §5.9–5.13): its state and key are dropped, and another can be started.
    /// Whether one was active.
    pub fn cancel(&self, which: Cancel) -> bool {
        let mut ops = self.ops.lock();
        let ended = match which {
            Cancel::Cipher(dir) => ops.cipher(dir).take().map(drop),
            Cancel::Digest => ops.digest.take().map(drop),
            Cancel::Sign => ops.sign.take().map(drop),
            Cancel::Verify => ops.verify.take().map(drop),
        };
        ended.is_some()
    }

    pub(crate) fn cipher_update(
        &self,
        dir: Direction,
        input: &[u8],
        capacity: Option<usize>,
    ) -> Result<Output> {
        let mut ops = self.ops.lock();
        let slot = ops.cipher(dir);
        recheck(&self.token, slot, capacity.is_some())?;
        operation::produce(
            slot,
            capacity,
            Step::Update,
            input,
            |op| op.update_bound(input.len()),
            |op| {
                secret_use::note();
                op.update(input)
            },
        )
    }

    pub(crate) fn cipher_final(&self, dir: Direction, capacity: Option<usize>) -> Result<Output> {
        let mut ops = self.ops.lock();
        let slot = ops.cipher(dir);
        recheck(&self.token, slot, capacity.is_some())?;
        operation::produce(
            slot,
            capacity,
            Step::Final,
            &[],
            |op| op.finish_bound(),
            |op| {
                secret_use::note();
                op.finish()
            },
        )
    }

    // ---- digests

    pub fn digest_init(&self, mech: &MechanismArg) -> Result<()> {
        let mut ops = self.ops.lock();
        if ops.digest.is_some() {
            return Err(Error::OperationActive);
        }
        let op = mechanism(mech.kind)?.digest(&mech.param)?;
        operation::start(&mut ops.digest, op)?;
        ops.digest_kind = mech.kind;
        Ok(())
    }

    pub(crate) fn digest_once(&self, data: &[u8], capacity: Option<usize>) -> Result<Output> {
        let mut ops = self.ops.lock();
        operation::produce(
            &mut ops.digest,
            capacity,
            Step::Once,
            data,
            |op| op.output_len(),
            |op| {
                op.update(data);
                Ok(Zeroizing::new(op.finish()))
            },
        )
    }

    pub fn digest_update(&self, data: &[u8]) -> Result<()> {
        let mut ops = self.ops.lock();
        operation::consume(&mut ops.digest, Step::Update, |a| {
            a.op.update(data);
            Ok(())
        })
    }

    pub fn digest_key(&self, key: ObjectHandle) -> Result<()> {
        let mut ops = self.ops.lock();
        if ops.digest.is_none() {
            return Err(Error::OperationNotInitialized);
        }
        secret_use::note();
        let value = self.token.digestible_value(key, ops.digest_kind);
        operation::consume(&mut ops.digest, Step::Update, |a| {
            a.op.update(&value?);
            Ok(())
        })
    }

    pub fn digest_final(&self, capacity: Option<usize>) -> Result<Output> {
        let mut ops = self.ops.lock();
        operation::produce(
            &mut ops.digest,
            capacity,
            Step::Final,
            &[],
            |op| op.output_len(),
            |op| Ok(Zeroizing::new(op.finish())),
        )
    }

    // ---- signatures and MACs

    pub fn sign_init(&self, mech: &MechanismArg, key: ObjectHandle) -> Result<()> {
        let mut ops = self.ops.lock();
        if ops.sign.is_some() {
            return Err(Error::OperationActive);
        }
        let (op, grant) = self.key_checked(
            mech,
            || mechanism(mech.kind),
            key,
            Usage::Sign,
            |m, k| m.sign(&mech.param, k),
        )?;
        operation::start_with(&mut ops.sign, op, Some(grant))
    }

    pub fn sign_once(&self, data: &[u8], capacity: Option<usize>) -> Result<Output> {
        let mut ops = self.ops.lock();
        recheck(&self.token, &mut ops.sign, capacity.is_some())?;
        operation::produce(
            &mut ops.sign,
            capacity,
            Step::Once,
            data,
            |op| op.signature_len(),
            |op| {
                secret_use::note_within(op.stack_reach());
                Ok(Zeroizing::new(op.one_shot(data)?))
            },
        )
    }

    pub fn sign_update(&self, data: &[u8]) -> Result<()> {
        let mut ops = self.ops.lock();
        recheck(&self.token, &mut ops.sign, true)?;
        operation::consume(&mut ops.sign, Step::Update, |a| {
            secret_use::note();
            a.op.update(data)
        })
    }

    pub fn sign_final(&self, capacity: Option<usize>) -> Result<Output> {
        let mut ops = self.ops.lock();
        recheck(&self.token, &mut ops.sign, capacity.is_some())?;
        operation::produce(
            &mut ops.sign,
            capacity,
            Step::Final,
            &[],
            |op| op.signature_len(),
            |op| {
                secret_use::note();
                Ok(Zeroizing::new(op.finish()?))
            },
        )
    }

    pub fn verify_init(&self, mech: &MechanismArg, key: ObjectHandle) -> Result<()> {
        let mut ops = self.ops.lock();
        if ops.verify.is_some() {
            return Err(Error::OperationActive);
        }
        let ((op, with_secret), grant) = self.key_checked(
            mech,
            || mechanism(mech.kind),
            key,
            Usage::Verify,
            |m, k| Ok((m.verify(&mech.param, k)?, k.class != CKO_PUBLIC_KEY)),
        )?;
        ops.verify_with_secret = with_secret;
        operation::start_with(&mut ops.verify, op, Some(grant))
    }

    /// Notes secret use for a verification step that runs a secret key.
    fn verify_step(ops: &Ops) {
        if ops.verify_with_secret {
            secret_use::note();
        }
    }

    pub fn verify_once(&self, data: &[u8], signature: &[u8]) -> Result<()> {
        let mut ops = self.ops.lock();
        recheck(&self.token, &mut ops.verify, true)?;
        Session::verify_step(&ops);
        operation::consume(&mut ops.verify, Step::Once, |a| {
            a.op.one_shot(data, signature)
        })
    }

    pub fn verify_update(&self, data: &[u8]) -> Result<()> {
        let mut ops = self.ops.lock();
        recheck(&self.token, &mut ops.verify, true)?;
        Session::verify_step(&ops);
        operation::consume(&mut ops.verify, Step::Update, |a| a.op.update(data))
    }

    pub fn verify_final(&self, signature: &[u8]) -> Result<()> {
        let mut ops = self.ops.lock();
        recheck(&self.token, &mut ops.verify, true)?;
        Session::verify_step(&ops);
        operation::consume(&mut ops.verify, Step::Final, |a| a.op.finish(signature))
    }
}

//! One session: which token, read-only or read/write, and its active operations (the
//! object search cursor here; the cryptographic operations in `crypto`).
//!
//! A session holds no login state of its own (login is per application and token, §5.6);
//! its state is derived from the token's. This module must not touch the store.

use std::sync::Arc;

use crate::ck::*;
use parking_lot::Mutex;

use crate::os::call_lock::CallLock;

use crate::error::{Error, Result};
use crate::ids::SlotId;
use crate::object::attr::RawAttribute;
use crate::object::table::{ObjectHandle, SessionHandle};
use crate::operation::{Active, Cipher, Digester, Judged, Signer, Verifier};
use crate::token::{Caller, LoggedIn, Token};

pub mod crypto;
pub(crate) mod message;

/// A session's active operations: those of `crypto` and, for the message-based
/// encryption and decryption of PKCS#11 3.0, those of `message`. Here, above both, so
/// that neither file imports the other's slots; the fields are private to `session`,
/// each used by its own file.
#[derive(Debug, Default)]
pub(crate) struct Ops {
    encrypt: Option<Active<dyn Cipher>>,
    decrypt: Option<Active<dyn Cipher>>,
    digest: Option<Active<dyn Digester>>,
    /// The mechanism of the active digest (`C_DigestKey` judges the key against it).
    digest_kind: MechType,
    sign: Option<Active<dyn Signer>>,
    verify: Option<Active<dyn Verifier>>,
    /// The verification runs a secret key (a MAC), not a public one.
    verify_with_secret: bool,
    /// The message-based encryption and decryption (PKCS#11 3.0), `session::message`.
    message_encrypt: Option<Active<message::MessageOp>>,
    message_decrypt: Option<Active<message::MessageOp>>,
    /// The judgements of the last fresh encryption and decryption inits, for the next
    /// init on the same key (`operation::Judged`, `session::crypto`).
    judged_encrypt: Option<Judged>,
    judged_decrypt: Option<Judged>,
}

#[derive(Debug)]
struct FindCursor {
    handles: Vec<ObjectHandle>,
    next: usize,
}

#[derive(Debug)]
pub struct Session {
    pub handle: SessionHandle,
    pub slot_id: SlotId,
    pub token: Arc<Token>,
    pub rw: bool,
    find: Mutex<Option<FindCursor>>,
    /// Taken by every call on the session, for its whole length (`os::call_lock`).
    ops: CallLock<Ops>,
}

impl Session {
    pub fn new(handle: SessionHandle, slot_id: SlotId, token: Arc<Token>, rw: bool) -> Session {
        Session {
            handle,
            slot_id,
            token,
            rw,
            find: Mutex::new(None),
            ops: CallLock::default(),
        }
    }

    pub fn caller(&self) -> Caller {
        Caller {
            session: self.handle,
            rw: self.rw,
        }
    }

    /// The session state of §5.6 (Table 8), from the token's login and this session's
    /// mode, once the token has caught up with other processes (a re-initialisation
    /// elsewhere ends the login: review 15b).
    pub fn state(&self) -> Result<CK_STATE> {
        self.token.refresh()?;
        Ok(match (self.token.logged_in(), self.rw) {
            (LoggedIn::Nobody, false) => CKS_RO_PUBLIC_SESSION,
            (LoggedIn::Nobody, true) => CKS_RW_PUBLIC_SESSION,
            (LoggedIn::User, false) => CKS_RO_USER_FUNCTIONS,
            (LoggedIn::User, true) => CKS_RW_USER_FUNCTIONS,
            // An SO is never logged in alongside a read-only session.
            (LoggedIn::So, _) => CKS_RW_SO_FUNCTIONS,
        })
    }

    pub(crate) fn find_init(&self, template: &[RawAttribute]) -> Result<()> {
        let mut find = self.find.lock();
        if find.is_some() {
            return Err(Error::OperationActive);
        }
        let handles = self.token.find(template)?;
        *find = Some(FindCursor { handles, next: 0 });
        Ok(())
    }

    pub(crate) fn find_next(&self, max: usize) -> Result<Vec<ObjectHandle>> {
        let mut find = self.find.lock();
        let cursor = find.as_mut().ok_or(Error::OperationNotInitialized)?;
        let end = cursor.handles.len().min(cursor.next.saturating_add(max));
        let out = cursor.handles[cursor.next..end].to_vec();
        cursor.next = end;
        Ok(out)
    }

    pub(crate) fn find_final(&self) -> Result<()> {
        self.find
            .lock()
            .take()
            .map(|_| ())
            .ok_or(Error::OperationNotInitialized)
    }
}

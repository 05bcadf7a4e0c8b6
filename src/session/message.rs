//! A session's PKCS#11 3.0 message-based encryption and decryption (`C_MessageEncryptInit`
//! ... `C_MessageDecryptFinal`): one operation per direction, many messages per operation,
//! each message in one call or as `Begin` + `Next` parts.
//!
//! The key is authorised at `Init` by the token (`Token::key_for`, as for `C_EncryptInit`)
//! and judged again before every step that computes with it. A failed message (a tag that
//! does not verify, a refused IV) ends that message, not the operation; a refused key ends
//! the operation. Multi-part messages are collected (zeroizing, capped) and computed at
//! the part flagged `CKF_END_OF_MESSAGE`, so no unauthenticated plaintext is ever released
//! and earlier parts return no output. Lengths are known before computing (GCM's output is
//! as long as its input), so a length query or a short buffer never consumes an IV or
//! input. This module must not touch raw pointers.

use zeroize::Zeroizing;

use super::crypto::{recheck, Direction};
use super::{Ops, Session};
use crate::ck::{MechType, CKG_NO_GENERATE};
use crate::error::{Error, Result};
use crate::mechanism::message::{Aead, IvGenerator, MessageParams, MESSAGE_CAP};
use crate::mechanism::Usage;
use crate::object::table::ObjectHandle;
use crate::operation::{self, Active, Output};
use crate::os::call_lock::CallGuard;
use crate::secret_use;
use crate::token::keys::mechanism;

/// One message-based operation: its AEAD, its IV state, and the message in progress.
pub(crate) struct MessageOp {
    aead: Box<dyn Aead>,
    ivs: IvGenerator,
    part: Option<Part>,
}

impl std::fmt::Debug for MessageOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageOp")
            .field("in_progress", &self.part.is_some())
            .finish_non_exhaustive()
    }
}

/// A message started with `Begin`: its IV, associated data and collected input.
struct Part {
    iv: Vec<u8>,
    aad: Vec<u8>,
    input: Zeroizing<Vec<u8>>,
}

/// What a message step gives back: the output (or its length), and for encryption the
/// IV to write back to `pIv` (when generated) and the tag for `pTag`.
#[derive(Debug)]
pub struct Sealed {
    pub out: Output,
    pub iv: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
}

impl Sealed {
    fn only(out: Output) -> Sealed {
        Sealed {
            out,
            iv: None,
            tag: None,
        }
    }
}

/// A session's message-based operation of one direction, with its operations locked.
struct MessageSlot<'a> {
    ops: CallGuard<'a, Ops>,
    dir: Direction,
}

impl std::ops::Deref for MessageSlot<'_> {
    type Target = Option<Active<MessageOp>>;
    fn deref(&self) -> &Self::Target {
        match self.dir {
            Direction::Encrypt => &self.ops.message_encrypt,
            Direction::Decrypt => &self.ops.message_decrypt,
        }
    }
}

impl std::ops::DerefMut for MessageSlot<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self.dir {
            Direction::Encrypt => &mut self.ops.message_encrypt,
            Direction::Decrypt => &mut self.ops.message_decrypt,
        }
    }
}

impl Session {
    fn message_slot(&self, dir: Direction) -> MessageSlot<'_> {
        MessageSlot {
            ops: self.ops.lock(),
            dir,
        }
    }

    /// `C_MessageEncryptInit` / `C_MessageDecryptInit`.
    pub fn message_init(&self, dir: Direction, kind: MechType, key: ObjectHandle) -> Result<()> {
        let mut slot = self.message_slot(dir);
        if slot.is_some() {
            return Err(Error::OperationActive);
        }
        let usage = match dir {
            Direction::Encrypt => Usage::Encrypt,
            Direction::Decrypt => Usage::Decrypt,
        };
        let m = mechanism(kind)?;
        secret_use::note();
        let (aead, grant) = self
            .token
            .key_for(key, usage, kind, |key| m.message_aead(key))?;
        let op = MessageOp {
            aead,
            ivs: IvGenerator::default(),
            part: None,
        };
        operation::start_with(&mut *slot, Box::new(op), Some(grant))
    }

    /// `C_EncryptMessage` / `C_DecryptMessage`: one whole message. `capacity` is `None`
    /// for a length query.
    pub fn message_once(
        &self,
        dir: Direction,
        p: &MessageParams,
        aad: &[u8],
        input: &[u8],
        capacity: Option<usize>,
    ) -> Result<Sealed> {
        let mut slot = self.message_slot(dir);
        let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        if active.op.part.is_some() {
            return Err(Error::OperationActive);
        }
        // The check computes with the key (an empty message), whatever the call then does.
        secret_use::note();
        active.op.aead.check(p.iv.len(), p.tag_bits)?;
        let needed = input.len();
        match capacity {
            None => return Ok(Sealed::only(Output::Len(needed))),
            Some(c) if c < needed => return Ok(Sealed::only(Output::TooSmall(needed))),
            Some(_) => {}
        }
        recheck(&self.token, &mut *slot, true)?;
        let op = &mut slot.as_mut().ok_or(Error::OperationNotInitialized)?.op;
        secret_use::note();
        compute(op, dir, p, None, aad, input)
    }

    /// `C_EncryptMessageBegin` / `C_DecryptMessageBegin`: starts a message of parts; for
    /// encryption, the IV (when generated) is returned to be written back now.
    pub fn message_begin(
        &self,
        dir: Direction,
        p: &MessageParams,
        aad: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let mut slot = self.message_slot(dir);
        let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        if active.op.part.is_some() {
            return Err(Error::OperationActive);
        }
        // The check computes with the key (an empty message), whatever the call then does.
        secret_use::note();
        active.op.aead.check(p.iv.len(), p.tag_bits)?;
        if aad.len() > MESSAGE_CAP {
            return Err(Error::DataLenRange);
        }
        recheck(&self.token, &mut *slot, true)?;
        let op = &mut slot.as_mut().ok_or(Error::OperationNotInitialized)?.op;
        let (iv, written) = match dir {
            Direction::Encrypt => {
                let iv = op.ivs.next(p)?;
                let written = (p.generator != CKG_NO_GENERATE).then(|| iv.clone());
                (iv, written)
            }
            Direction::Decrypt => (p.iv.clone(), None),
        };
        op.part = Some(Part {
            iv,
            aad: aad.to_vec(),
            input: Zeroizing::new(Vec::new()),
        });
        Ok(written)
    }

    /// `C_EncryptMessageNext` / `C_DecryptMessageNext`: one more part; the part flagged
    /// `end` computes the message and returns its whole output (and the tag).
    pub fn message_next(
        &self,
        dir: Direction,
        p: &MessageParams,
        input: &[u8],
        capacity: Option<usize>,
        end: bool,
    ) -> Result<Sealed> {
        let mut slot = self.message_slot(dir);
        let active = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        let part = active
            .op
            .part
            .as_ref()
            .ok_or(Error::OperationNotInitialized)?;
        let needed = if end {
            part.input.len() + input.len()
        } else {
            0
        };
        match capacity {
            None => return Ok(Sealed::only(Output::Len(needed))),
            Some(c) if c < needed => return Ok(Sealed::only(Output::TooSmall(needed))),
            Some(_) => {}
        }
        if part.input.len().saturating_add(input.len()) > MESSAGE_CAP {
            active.op.part = None;
            return Err(match dir {
                Direction::Encrypt => Error::DataLenRange,
                Direction::Decrypt => Error::EncryptedDataLenRange,
            });
        }
        recheck(&self.token, &mut *slot, true)?;
        let op = &mut slot.as_mut().ok_or(Error::OperationNotInitialized)?.op;
        secret_use::note();
        let Some(mut part) = op.part.take() else {
            return Err(Error::OperationNotInitialized);
        };
        part.input.extend_from_slice(input);
        if !end {
            op.part = Some(part);
            return Ok(Sealed::only(Output::Data(Zeroizing::new(Vec::new()))));
        }
        let iv = std::mem::take(&mut part.iv);
        compute(op, dir, p, Some(iv), &part.aad, &part.input)
    }

    /// `C_MessageEncryptFinal` / `C_MessageDecryptFinal`: ends the operation, dropping a
    /// message left unfinished.
    pub fn message_final(&self, dir: Direction) -> Result<()> {
        let mut slot = self.message_slot(dir);
        operation::consume(&mut *slot, operation::Step::Final, |_| Ok(()))
    }
}

/// Runs one message. `iv` is the IV already fixed at `Begin` (multi-part), else it comes
/// from `p` (and, for encryption, the generator).
fn compute(
    op: &mut MessageOp,
    dir: Direction,
    p: &MessageParams,
    iv: Option<Vec<u8>>,
    aad: &[u8],
    input: &[u8],
) -> Result<Sealed> {
    match dir {
        Direction::Encrypt => {
            let (iv, written) = match iv {
                Some(iv) => (iv, None),
                None => {
                    let iv = op.ivs.next(p)?;
                    let written = (p.generator != CKG_NO_GENERATE).then(|| iv.clone());
                    (iv, written)
                }
            };
            let (ct, tag) = op.aead.seal(&iv, aad, input, p.tag_bits)?;
            Ok(Sealed {
                out: Output::Data(ct),
                iv: written,
                tag: Some(tag),
            })
        }
        Direction::Decrypt => {
            let iv = iv.unwrap_or_else(|| p.iv.clone());
            let plain = op.aead.open(&iv, aad, input, &p.tag, p.tag_bits)?;
            Ok(Sealed::only(Output::Data(plain)))
        }
    }
}

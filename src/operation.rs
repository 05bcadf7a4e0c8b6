//! Active cryptographic operations of a session, and the one place where the
//! length-query convention of PKCS#11 3.0 §5.2 is applied to their output.
//!
//! An output-producing step runs at most once per input: when the caller's buffer is
//! too small, the output is kept (zeroizing) and handed out by the next call, so a
//! retry never re-runs a decryption or advances a stream twice. Every error of a step
//! ends the operation (§5.2, and each function of §5.9-5.13: a single-part or final call
//! "always terminates" the operation unless it answers `CKR_BUFFER_TOO_SMALL` or a
//! length query, an update that fails terminates it): a refused key, a failed
//! computation, single-part and multi-part calls mixed, another call or other input
//! while output waits for its retry. This module must not know about pointers;
//! `ffi::raw` writes what it returns (and ends the operation when the caller's pointers
//! are refused before a step runs).

use crate::ids::MechType;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use std::sync::{Arc, Weak};

use crate::mechanism::Usage;
use crate::object::table::ObjectHandle;
use crate::object::Object;

/// What an output-producing call gives back to the C boundary.
#[derive(Debug)]
pub enum Output {
    /// The output, to be copied out.
    Data(Zeroizing<Vec<u8>>),
    /// The output was written straight into the caller's buffer: this many bytes
    /// (`produce_direct`).
    Written(usize),
    /// A length query (NULL buffer): this many bytes suffice.
    Len(usize),
    /// The buffer was too small; this many bytes are needed.
    TooSmall(usize),
}

/// Single- and multi-part encryption or decryption.
pub trait Cipher: Send {
    fn update(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    fn finish(&mut self) -> Result<Zeroizing<Vec<u8>>>;
    /// An upper bound on `update`'s output for `input_len` more bytes.
    fn update_bound(&self, input_len: usize) -> usize;
    /// An upper bound on `finish`'s output.
    fn finish_bound(&self) -> usize;
    /// Single-part; mechanisms that only work in one part override this.
    fn one_shot(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut head = self.update(input)?;
        let mut tail = self.finish()?;
        // A buffer of the exact size: growing `head` could move it and leave a copy of
        // its contents in freed memory.
        let mut out = Zeroizing::new(Vec::with_capacity(head.len() + tail.len()));
        out.extend_from_slice(&head);
        out.extend_from_slice(&tail);
        // Emptied first, the parts are wiped in one bulk write each on drop.
        head.clear();
        tail.clear();
        Ok(out)
    }
    fn one_shot_bound(&self, input_len: usize) -> usize {
        self.update_bound(input_len) + self.finish_bound()
    }
    /// The exact length of a single-part step's output where the mechanism knows it
    /// before running (an AES-GCM decryption: the input less the tag), else
    /// `one_shot_bound`: what `one_shot_into` is given.
    fn one_shot_len(&self, input_len: usize) -> usize {
        self.one_shot_bound(input_len)
    }
    /// Single-part, written straight into `out` (exactly `one_shot_len` bytes):
    /// how many bytes were written, or `None` where the mechanism cannot (it then runs
    /// `one_shot`, whose output is copied). `out` is the caller's memory, which other
    /// threads of the caller may read during the call: an encryption may write its
    /// ciphertext there, never the plaintext it starts from; a decryption only plaintext
    /// whose tag has been checked, never unauthenticated bytes, not even for a moment.
    fn one_shot_into(&mut self, _input: &[u8], _out: &mut [u8]) -> Result<Option<usize>> {
        Ok(None)
    }
    /// How far below the entry point a single-part step on `input_len` bytes may leave
    /// secrets on the stack: a depth measured on release builds (`secret_use`,
    /// `bench/stackreach.sh`), or the whole scrub area. When in doubt, the whole area.
    fn stack_reach(&self, _input_len: usize) -> usize {
        crate::secret_use::WHOLE
    }
}

/// Signing (and MACs).
pub trait Signer: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// The exact signature length.
    fn signature_len(&self) -> usize;
    fn one_shot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.finish()
    }
    /// How far below the entry point a single-part signature's secrets may lie on the
    /// stack: a depth measured on release builds (`secret_use`, `bench/stackreach.sh`), or
    /// the whole scrub area. When in doubt, the whole area.
    fn stack_reach(&self) -> usize {
        crate::secret_use::WHOLE
    }
}

/// Verification (and MAC checks).
pub trait Verifier: Send {
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn finish(&mut self, signature: &[u8]) -> Result<()>;
    fn one_shot(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        self.update(data)?;
        self.finish(signature)
    }
}

/// Message digests.
pub trait Digester: Send {
    fn update(&mut self, data: &[u8]);
    fn finish(&mut self) -> Vec<u8>;
    /// The digest length in bytes.
    fn output_len(&self) -> usize;
}

/// The key an operation was started with and what it was allowed to do: each later
/// step has the token judge it again (a key disabled, emptied, expired or logged out
/// since `Init` stops the operation).
#[derive(Debug, Clone)]
pub struct Grant {
    pub key: ObjectHandle,
    /// The version of the key's object that was judged: while the token still holds
    /// this very version, only time (the material expiry) can have changed the verdict.
    pub judged: Arc<Object>,
    /// The object table's generation when `judged` was read from it: while it is the
    /// same, no write of the table can have replaced or removed the key.
    pub generation: u64,
    /// The material expiry of `judged` (unix seconds; 0 never).
    pub expiry: u64,
    /// The key was private at init: a logout since ends the operation.
    pub private: bool,
    pub usage: Usage,
    pub mechanism: MechType,
    /// A `CKA_ALWAYS_AUTHENTICATE` key awaits its context-specific login (§5.6).
    pub awaiting_login: bool,
}

impl Grant {
    /// What this grant judged, for the next init on the same key (`Judged`).
    pub fn judgement(&self) -> Judged {
        Judged {
            key: self.key,
            object: Arc::downgrade(&self.judged),
            generation: self.generation,
            usage: self.usage,
            mechanism: self.mechanism,
        }
    }
}

/// The judgement an init made, kept by its session after the operation ends, so that the
/// next init of the same kind on the same key can be judged as a later step of an
/// operation is (`Token::key_again`): while the table has not been written since, the
/// very object version judged is still the key, and only time can have changed the
/// verdict. The object is held weakly: a key destroyed or changed is not kept alive by a
/// session that used it, and its material is wiped as before.
#[derive(Debug)]
pub struct Judged {
    pub key: ObjectHandle,
    pub object: Weak<Object>,
    pub generation: u64,
    pub usage: Usage,
    pub mechanism: MechType,
}

/// Which call an output-producing step is. Output kept for a retry after a short buffer
/// is handed out only to the same call (§5.2 lets that call be made again; it does not
/// make one function's output another's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The single-part call (`C_Encrypt`, `C_Sign`, `C_Digest`...): ends the operation.
    Once,
    /// `C_EncryptUpdate` / `C_DecryptUpdate`: the operation goes on.
    Update,
    /// `C_EncryptFinal`, `C_SignFinal`, `C_DigestFinal`...: ends the operation.
    Final,
}

/// Output a step could not deliver (the caller's buffer was too small), kept for the
/// retry: the call that made it and that call's input. A retry is the same call with the
/// same input (§5.2); another input would be handed output that is not its own.
struct Kept {
    call: Step,
    input: Zeroizing<Vec<u8>>,
    output: Zeroizing<Vec<u8>>,
}

/// Which calls have driven an operation: the first step decides, and the other kind is
/// refused from then on (§5.2: `C_Encrypt` is not used to finish what `C_EncryptUpdate`
/// began, nor `C_EncryptUpdate` after `C_Encrypt`, even a length query, began).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// No step yet.
    Undecided,
    /// A single-part call (`Step::Once`).
    Single,
    /// An update or a final call.
    Multi,
}

/// An operation and the output of its last step, if the caller's buffer was too small.
pub struct Active<T: ?Sized> {
    pending: Option<Kept>,
    parts: Parts,
    pub op: Box<T>,
    /// The key the operation runs with, if any (digests have none).
    pub grant: Option<Grant>,
}

impl<T: ?Sized> std::fmt::Debug for Active<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active")
            .field(
                "pending",
                &self.pending.as_ref().map(|k| (k.call, k.output.len())),
            )
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> Active<T> {
    pub fn new(op: Box<T>) -> Active<T> {
        Active {
            pending: None,
            parts: Parts::Undecided,
            op,
            grant: None,
        }
    }
}

/// Starts an operation in `slot`, refusing while one of its kind is active.
pub fn start<T: ?Sized>(slot: &mut Option<Active<T>>, op: Box<T>) -> Result<()> {
    start_with(slot, op, None)
}

/// Starts an operation that runs with the key `grant` names.
pub fn start_with<T: ?Sized>(
    slot: &mut Option<Active<T>>,
    op: Box<T>,
    grant: Option<Grant>,
) -> Result<()> {
    if slot.is_some() {
        return Err(Error::OperationActive);
    }
    let mut active = Active::new(op);
    active.grant = grant;
    *slot = Some(active);
    Ok(())
}

/// Judges the active operation in `slot` again before a step: `judge` gets its grant
/// (operations without a key pass). A refusal ends the operation (§5.2: an error other
/// than a short buffer ends it) and is returned.
pub(crate) fn recheck<T: ?Sized>(
    slot: &mut Option<Active<T>>,
    judge: impl FnOnce(&Grant) -> Result<()>,
) -> Result<()> {
    let verdict = match slot.as_ref().and_then(|a| a.grant.as_ref()) {
        None => return Ok(()),
        Some(grant) => judge(grant),
    };
    if let Err(e) = verdict {
        *slot = None;
        return Err(e);
    }
    Ok(())
}

/// Marks every grant in `slot` that awaits a context-specific login as satisfied;
/// whether there was one.
pub(crate) fn satisfy_login<T: ?Sized>(slot: &mut Option<Active<T>>) -> bool {
    match slot.as_mut().and_then(|a| a.grant.as_mut()) {
        Some(g) if g.awaiting_login => {
            g.awaiting_login = false;
            true
        }
        _ => false,
    }
}

impl<T: ?Sized> Active<T> {
    /// Whether step `call`, given `input` (`None`: a step that produces no output, so
    /// output waiting is always another call's), may run now: `OperationActive` for a
    /// single-part call on an operation driven by updates or the other way round, or
    /// while output another call made waits for that call's retry; `ArgumentsBad` for a
    /// retry of that call with other input (it would be handed output not its own).
    /// Admitted, the operation is driven by `call`'s kind from then on.
    fn admit(&mut self, call: Step, input: Option<&[u8]>) -> Result<()> {
        match (&self.pending, input) {
            (Some(_), None) => return Err(Error::OperationActive),
            (Some(kept), Some(_)) if kept.call != call => return Err(Error::OperationActive),
            (Some(kept), Some(input)) if kept.input.as_slice() != input => {
                return Err(Error::ArgumentsBad(
                    "a retry after CKR_BUFFER_TOO_SMALL must pass the input of the call it \
                     retries",
                ))
            }
            _ => {}
        }
        let parts = match call {
            Step::Once => Parts::Single,
            Step::Update | Step::Final => Parts::Multi,
        };
        match self.parts {
            Parts::Undecided => self.parts = parts,
            decided if decided != parts => return Err(Error::OperationActive),
            _ => {}
        }
        Ok(())
    }
}

/// The active operation in `slot`, if step `call` (given `input`, as `Active::admit`
/// takes it) may run on it; otherwise the operation is ended and the refusal returned.
fn admitted<'s, T: ?Sized>(
    slot: &'s mut Option<Active<T>>,
    call: Step,
    input: Option<&[u8]>,
) -> Result<&'s mut Active<T>> {
    // Not `ok_or`: an `Error` made and dropped on every call costs its drop glue.
    let verdict = match slot.as_mut() {
        Some(active) => active.admit(call, input),
        None => return Err(Error::OperationNotInitialized),
    };
    if let Err(e) = verdict {
        *slot = None;
        return Err(e);
    }
    match slot.as_mut() {
        Some(active) => Ok(active),
        None => Err(Error::OperationNotInitialized),
    }
}

/// Runs one output-producing step of the operation in `slot` under §5.2.
///
/// `capacity` is `None` for a length query. `bound` gives the length to report for a
/// query. `call` says which call this is, and `input` what it was given (empty for a
/// final step): all but an update end the operation when they succeed, and output kept
/// after a short buffer goes only to a retry of the same call with the same input (any
/// other call is `OperationActive`, other input `ArgumentsBad`, and either ends the
/// operation, as every error does).
pub fn produce<T: ?Sized>(
    slot: &mut Option<Active<T>>,
    capacity: Option<usize>,
    call: Step,
    input: &[u8],
    bound: impl FnOnce(&T) -> usize,
    step: impl FnOnce(&mut T) -> Result<Zeroizing<Vec<u8>>>,
) -> Result<Output> {
    let active = admitted(slot, call, Some(input))?;
    let Some(capacity) = capacity else {
        let len = match &active.pending {
            Some(kept) => kept.output.len(),
            None => bound(&active.op),
        };
        return Ok(Output::Len(len));
    };
    let out = match active.pending.take() {
        Some(kept) => kept.output,
        None => match step(&mut active.op) {
            Ok(out) => out,
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        },
    };
    if out.len() > capacity {
        let needed = out.len();
        active.pending = Some(Kept {
            call,
            input: Zeroizing::new(input.to_vec()),
            output: out,
        });
        return Ok(Output::TooSmall(needed));
    }
    if call != Step::Update {
        *slot = None;
    }
    Ok(Output::Data(out))
}

/// Runs a single-part step that may write straight into the caller's buffer, under §5.2
/// as `produce` does: only when no earlier output waits (`pending`) and `out` hands over
/// a slice of exactly `len` bytes of the caller's buffer (`Cipher::one_shot_len`).
/// `Ok(None)`: not done (no such slice, output waits, or the step declined), and the
/// caller goes through `produce`, which reports a short buffer. A step that wrote ends
/// the operation; one that failed ends it too, and so does a single-part call on an
/// operation driven by updates (`OperationActive`).
pub fn produce_direct<'o, T: ?Sized>(
    slot: &mut Option<Active<T>>,
    input: &[u8],
    out: impl FnOnce(usize) -> Option<&'o mut [u8]>,
    len: impl FnOnce(&T) -> usize,
    step: impl FnOnce(&mut T, &mut [u8]) -> Result<Option<usize>>,
) -> Result<Option<Output>> {
    let active = admitted(slot, Step::Once, Some(input))?;
    if active.pending.is_some() {
        return Ok(None);
    }
    let Some(out) = out(len(&active.op)) else {
        return Ok(None);
    };
    match step(&mut active.op, out) {
        Ok(Some(written)) => {
            *slot = None;
            Ok(Some(Output::Written(written)))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}

/// Runs step `call`, one that produces no output (updates, verification); an error ends
/// the operation, and so does success unless `call` is an update. While output of an
/// earlier call waits for its retry, and for a call of the other kind than the
/// operation's (single-part or multi-part), `OperationActive`, which ends it too.
pub(crate) fn consume<T: ?Sized, R>(
    slot: &mut Option<Active<T>>,
    call: Step,
    step: impl FnOnce(&mut Active<T>) -> Result<R>,
) -> Result<R> {
    let active = admitted(slot, call, None)?;
    let result = step(active);
    if result.is_err() || call != Step::Update {
        *slot = None;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Doubler;
    impl Cipher for Doubler {
        fn update(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
            Ok(Zeroizing::new([input, input].concat()))
        }
        fn finish(&mut self) -> Result<Zeroizing<Vec<u8>>> {
            Ok(Zeroizing::new(Vec::new()))
        }
        fn update_bound(&self, n: usize) -> usize {
            2 * n
        }
        fn finish_bound(&self) -> usize {
            0
        }
    }

    fn run(
        slot: &mut Option<Active<dyn Cipher>>,
        cap: Option<usize>,
        input: &[u8],
    ) -> Result<Output> {
        produce(
            slot,
            cap,
            Step::Once,
            input,
            |op| op.one_shot_bound(input.len()),
            |op| op.one_shot(input),
        )
    }

    #[test]
    fn length_query_keeps_the_operation() {
        let mut slot: Option<Active<dyn Cipher>> = None;
        start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
        assert!(matches!(run(&mut slot, None, b"ab"), Ok(Output::Len(4))));
        assert!(slot.is_some());
        assert!(matches!(run(&mut slot, Some(4), b"ab"), Ok(Output::Data(d)) if &d[..] == b"abab"));
        assert!(slot.is_none(), "a successful last step ends the operation");
    }

    #[test]
    fn short_buffer_keeps_the_output_for_the_retry() {
        let mut slot: Option<Active<dyn Cipher>> = None;
        start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
        assert!(matches!(
            run(&mut slot, Some(1), b"xy"),
            Ok(Output::TooSmall(4))
        ));
        assert!(matches!(run(&mut slot, Some(8), b"xy"), Ok(Output::Data(d)) if &d[..] == b"xyxy"));
        assert!(slot.is_none());
    }

    /// A "retry" with other input would be handed the first input's output as its own:
    /// refused, for a length query too, and the refusal ends the operation (§5.2: an
    /// error other than a short buffer ends it), wiping the output it kept.
    #[test]
    fn a_retry_with_other_input_is_refused_and_ends_the_operation() {
        for cap in [None, Some(1), Some(8)] {
            let mut slot: Option<Active<dyn Cipher>> = None;
            start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
            assert!(matches!(
                run(&mut slot, Some(1), b"xy"),
                Ok(Output::TooSmall(4))
            ));
            assert!(matches!(
                run(&mut slot, cap, b"zz"),
                Err(Error::ArgumentsBad(_))
            ));
            assert!(slot.is_none(), "{cap:?}");
            assert!(matches!(
                run(&mut slot, Some(8), b"xy"),
                Err(Error::OperationNotInitialized)
            ));
        }
    }

    fn step(slot: &mut Option<Active<dyn Cipher>>, call: Step, cap: usize) -> Result<Output> {
        let input: &[u8] = if call == Step::Final { b"" } else { b"ab" };
        produce(
            slot,
            Some(cap),
            call,
            input,
            |_| 0,
            |op| match call {
                Step::Update => op.update(b"ab"),
                Step::Final => op.finish(),
                Step::Once => op.one_shot(b"ab"),
            },
        )
    }

    #[test]
    fn kept_output_goes_only_to_a_retry_of_the_call_that_made_it() {
        let started = || {
            let mut slot: Option<Active<dyn Cipher>> = None;
            start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
            assert!(matches!(
                step(&mut slot, Step::Update, 1),
                Ok(Output::TooSmall(4))
            ));
            slot
        };
        // The retry of the call gets the output, and the operation goes on.
        let mut slot = started();
        assert!(
            matches!(step(&mut slot, Step::Update, 4), Ok(Output::Data(d)) if &d[..] == b"abab")
        );
        assert!(matches!(step(&mut slot, Step::Final, 4), Ok(Output::Data(d)) if d.is_empty()));
        assert!(slot.is_none());
        // Any other call is refused, and the refusal ends the operation.
        for other in [Step::Final, Step::Once] {
            let mut slot = started();
            assert!(matches!(
                step(&mut slot, other, 64),
                Err(Error::OperationActive)
            ));
            assert!(slot.is_none(), "{other:?}");
        }
        let mut slot = started();
        assert!(matches!(
            consume(&mut slot, Step::Update, |_| Ok(())),
            Err(Error::OperationActive)
        ));
        assert!(slot.is_none());
        let mut slot = started();
        assert!(matches!(
            produce(&mut slot, None, Step::Final, &[], |_| 0, |op| op.finish()),
            Err(Error::OperationActive)
        ));
        assert!(slot.is_none());
    }

    /// §5.2: an operation is driven by single-part calls or by multi-part ones, decided
    /// by its first step (a length query included); a call of the other kind is
    /// `OperationActive` and ends it. A final call right after the init is multi-part.
    #[test]
    fn single_and_multi_part_calls_do_not_mix_and_mixing_ends_the_operation() {
        let fresh = || {
            let mut slot: Option<Active<dyn Cipher>> = None;
            start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
            slot
        };
        // A single-part length query, then an update or a final call.
        for other in [Step::Update, Step::Final] {
            let mut slot = fresh();
            assert!(matches!(run(&mut slot, None, b"ab"), Ok(Output::Len(4))));
            assert!(matches!(
                step(&mut slot, other, 64),
                Err(Error::OperationActive)
            ));
            assert!(slot.is_none(), "{other:?} after a single-part length query");
        }
        // An update, then a single-part call (a length query too).
        for cap in [None, Some(64)] {
            let mut slot = fresh();
            assert!(matches!(
                step(&mut slot, Step::Update, 64),
                Ok(Output::Data(_))
            ));
            assert!(matches!(
                run(&mut slot, cap, b"ab"),
                Err(Error::OperationActive)
            ));
            assert!(slot.is_none(), "a single-part call after an update");
        }
        // A final call's length query, then a single-part call.
        let mut slot = fresh();
        assert!(matches!(
            produce(&mut slot, None, Step::Final, &[], |_| 0, |op| op.finish()),
            Ok(Output::Len(0))
        ));
        assert!(matches!(
            run(&mut slot, Some(64), b"ab"),
            Err(Error::OperationActive)
        ));
        assert!(slot.is_none());
        // A final call right after the init is the multi-part end of no data.
        let mut slot = fresh();
        assert!(matches!(step(&mut slot, Step::Final, 4), Ok(Output::Data(d)) if d.is_empty()));
        assert!(slot.is_none());
        // Steps that produce nothing follow the same rule.
        let mut slot = fresh();
        assert!(consume(&mut slot, Step::Update, |_| Ok(())).is_ok());
        assert!(matches!(
            consume(&mut slot, Step::Once, |_| Ok(())),
            Err(Error::OperationActive)
        ));
        assert!(slot.is_none());
    }

    #[test]
    fn starting_twice_is_operation_active_and_none_is_not_initialized() {
        let mut slot: Option<Active<dyn Cipher>> = None;
        assert!(matches!(
            run(&mut slot, Some(1), b""),
            Err(Error::OperationNotInitialized)
        ));
        start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
        assert!(matches!(
            start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>),
            Err(Error::OperationActive)
        ));
    }

    #[test]
    fn an_error_ends_the_operation() {
        let mut slot: Option<Active<dyn Cipher>> = None;
        start(&mut slot, Box::new(Doubler) as Box<dyn Cipher>).unwrap();
        let r = produce(
            &mut slot,
            Some(10),
            Step::Update,
            b"",
            |_| 0,
            |_| Err(Error::DataLenRange),
        );
        assert!(matches!(r, Err(Error::DataLenRange)));
        assert!(slot.is_none());
    }
}

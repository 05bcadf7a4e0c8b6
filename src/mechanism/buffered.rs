//! Operations whose primitive works on the whole input at once (RSA, raw ECDSA, GCM,
//! SM2, SM4, Ed25519): multi-part calls collect the input, and the last call runs the
//! primitive.
//! The collected input is zeroized, and capped so that a caller cannot grow memory
//! without bound through `C_*Update`.

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::operation::{Cipher, Signer, Verifier};

/// Input cap for one-block primitives (RSA, raw ECDSA): far above any valid input.
pub(super) const ONE_BLOCK_CAP: usize = 1 << 16;
/// Input cap for buffered bulk ciphers (GCM, SM4): 256 MiB.
pub(super) const BULK_CAP: usize = 1 << 28;
/// Input cap for signatures over the whole message (pure Ed25519): 16 MiB.
pub(super) const MESSAGE_CAP: usize = 1 << 24;

/// Input collected by multi-part calls, wiped on drop. While nothing was ever collected
/// (every single-part call) there is nothing to wipe, and the wipe is skipped: zeroize
/// would still call `memset` on the empty vector's dangling pointer, and glibc's masked
/// AVX-512 store of zero bytes to that unmapped address takes a microcode assist on AMD
/// Zen, about 65 ns (a tenth of a 64-byte AES-GCM call; docs/performance.md).
#[derive(Default)]
struct Collected(Vec<u8>);

impl Collected {
    /// Appends `data`. Growing moves the input to a larger buffer by hand, so that the
    /// old one is wiped before it is freed (a vector's own growth frees it unwiped).
    fn extend(&mut self, data: &[u8]) {
        let needed = self.0.len().saturating_add(data.len());
        if needed > self.0.capacity() {
            let mut larger = Vec::with_capacity(needed.max(self.0.capacity().saturating_mul(2)));
            larger.extend_from_slice(&self.0);
            drop(Collected(std::mem::replace(&mut self.0, larger)));
        }
        self.0.extend_from_slice(data);
    }
}

impl Drop for Collected {
    fn drop(&mut self) {
        if self.0.capacity() != 0 {
            // Emptied first, the buffer is wiped in one bulk write (zeroize wipes a
            // vector's elements one byte at a time, its spare capacity in bulk).
            self.0.clear();
            self.0.zeroize();
        }
    }
}

/// The primitive of a buffered operation, run on the whole input at once.
pub(super) trait WholeInput: Send {
    fn run(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// `run` written straight into `out`, which holds exactly `exact_len` bytes, or the
    /// operation's output bound where that is `None`: how many bytes, or `None` where the
    /// primitive cannot (`Cipher::one_shot_into` says what may be written there).
    fn run_into(&mut self, _input: &[u8], _out: &mut [u8]) -> Result<Option<usize>> {
        Ok(None)
    }
    /// The exact output length for `input_len` bytes of input, where the primitive knows
    /// it (`Cipher::one_shot_len`).
    fn exact_len(&self, _input_len: usize) -> Option<usize> {
        None
    }
}

/// A closure as a primitive that writes only into a vector of its own.
struct Run<F>(F);

impl<F> WholeInput for Run<F>
where
    F: FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>> + Send,
{
    fn run(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        (self.0)(input)
    }
}

struct Buffered<B, W> {
    input: Collected,
    /// The single-part step's measured stack reach for an input length
    /// (`Cipher::stack_reach`).
    reach: fn(usize) -> usize,
    cap: usize,
    bound: B,
    run: W,
    too_long: Error,
}

impl<B, W> Buffered<B, W> {
    fn push(&mut self, data: &[u8]) -> Result<()> {
        self.within_cap(self.input.0.len().saturating_add(data.len()))?;
        self.input.extend(data);
        Ok(())
    }

    /// Refuses `total` bytes of input beyond the cap, with the operation's error once.
    fn within_cap(&mut self, total: usize) -> Result<()> {
        if total > self.cap {
            return Err(std::mem::replace(&mut self.too_long, Error::DataLenRange));
        }
        Ok(())
    }
}

impl<B, W> Cipher for Buffered<B, W>
where
    B: Fn(usize) -> usize + Send,
    W: WholeInput,
{
    fn update(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.push(input)?;
        Ok(Zeroizing::new(Vec::new()))
    }
    fn finish(&mut self) -> Result<Zeroizing<Vec<u8>>> {
        // Wiped when dropped, after the primitive has run on it.
        let input = Collected(std::mem::take(&mut self.input.0));
        self.run.run(&input.0)
    }
    /// Single-part: the primitive runs on the caller's input, with no copy to wipe.
    fn one_shot(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if !self.input.0.is_empty() {
            self.push(input)?;
            return Cipher::finish(self);
        }
        self.within_cap(input.len())?;
        self.run.run(input)
    }
    /// Single-part into the caller's buffer, where the primitive can and no input was
    /// collected.
    fn one_shot_into(&mut self, input: &[u8], out: &mut [u8]) -> Result<Option<usize>> {
        if !self.input.0.is_empty() {
            return Ok(None);
        }
        self.within_cap(input.len())?;
        self.run.run_into(input, out)
    }
    fn update_bound(&self, _input_len: usize) -> usize {
        0
    }
    fn finish_bound(&self) -> usize {
        (self.bound)(self.input.0.len())
    }
    fn one_shot_bound(&self, input_len: usize) -> usize {
        (self.bound)(self.input.0.len() + input_len)
    }
    fn one_shot_len(&self, input_len: usize) -> usize {
        let total = self.input.0.len() + input_len;
        self.run
            .exact_len(total)
            .unwrap_or_else(|| (self.bound)(total))
    }
    fn stack_reach(&self, input_len: usize) -> usize {
        (self.reach)(input_len)
    }
}

impl<B, W> Signer for Buffered<B, W>
where
    B: Fn(usize) -> usize + Send,
    W: WholeInput,
{
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.push(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Cipher::finish(self)?.to_vec())
    }
    fn signature_len(&self) -> usize {
        (self.bound)(0)
    }
}

/// A cipher that processes its whole input at the end. `bound(n)` bounds the output
/// for `n` input bytes; `too_long` is the error for input beyond `cap`.
pub(super) fn cipher<B, F>(cap: usize, too_long: Error, bound: B, run: F) -> Box<dyn Cipher>
where
    B: Fn(usize) -> usize + Send + 'static,
    F: FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>> + Send + 'static,
{
    cipher_direct(|_| crate::secret_use::WHOLE, cap, too_long, bound, Run(run))
}

/// `cipher` for a primitive whose single-part step was measured to keep its secrets within
/// `reach` bytes of stack (release builds, `secret_use`, `bench/stackreach.sh`), and that
/// may write its single-part output straight into the caller's buffer
/// (`WholeInput::run_into`).
pub(super) fn cipher_direct<B, W>(
    reach: fn(usize) -> usize,
    cap: usize,
    too_long: Error,
    bound: B,
    run: W,
) -> Box<dyn Cipher>
where
    B: Fn(usize) -> usize + Send + 'static,
    W: WholeInput + 'static,
{
    Box::new(Buffered {
        input: Collected::default(),
        reach,
        cap,
        bound,
        run,
        too_long,
    })
}

/// A signer over the whole input; the signature is `len` bytes.
pub(super) fn signer<F>(len: usize, run: F) -> Box<dyn Signer>
where
    F: FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>> + Send + 'static,
{
    signer_capped(ONE_BLOCK_CAP, len, run)
}

/// `signer` with an input cap of `cap` bytes.
pub(super) fn signer_capped<F>(cap: usize, len: usize, run: F) -> Box<dyn Signer>
where
    F: FnMut(&[u8]) -> Result<Zeroizing<Vec<u8>>> + Send + 'static,
{
    Box::new(Buffered {
        input: Collected::default(),
        reach: |_| crate::secret_use::WHOLE,
        cap,
        bound: move |_| len,
        run: Run(run),
        too_long: Error::DataLenRange,
    })
}

struct BufferedVerify<F> {
    input: Vec<u8>,
    cap: usize,
    run: F,
}

impl<F> Verifier for BufferedVerify<F>
where
    F: FnMut(&[u8], &[u8]) -> Result<()> + Send,
{
    fn update(&mut self, data: &[u8]) -> Result<()> {
        if self.input.len().saturating_add(data.len()) > self.cap {
            return Err(Error::DataLenRange);
        }
        self.input.extend_from_slice(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        (self.run)(&self.input, signature)
    }
}

/// A verifier over the whole input.
pub(super) fn verifier<F>(run: F) -> Box<dyn Verifier>
where
    F: FnMut(&[u8], &[u8]) -> Result<()> + Send + 'static,
{
    verifier_capped(ONE_BLOCK_CAP, run)
}

/// `verifier` with an input cap of `cap` bytes.
pub(super) fn verifier_capped<F>(cap: usize, run: F) -> Box<dyn Verifier>
where
    F: FnMut(&[u8], &[u8]) -> Result<()> + Send + 'static,
{
    Box::new(BufferedVerify {
        input: Vec::new(),
        cap,
        run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_input_grows_by_hand_and_keeps_every_byte() {
        let mut collected = Collected::default();
        let mut expected = Vec::new();
        for i in 0..200u8 {
            let part = vec![i; usize::from(i % 7) + 1];
            let before = collected.0.capacity();
            collected.extend(&part);
            expected.extend_from_slice(&part);
            assert!(collected.0.capacity() >= collected.0.len());
            if collected.0.capacity() != before {
                assert!(collected.0.capacity() >= 2 * before, "grows geometrically");
            }
        }
        assert_eq!(collected.0, expected);
    }
}

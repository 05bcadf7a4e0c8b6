//! The sync board: group commit across processes. Every process with the token open
//! maps the same page (the `-sync` file beside the database, `os/shared_words.rs`),
//! where the syncs of the WAL are numbered, so that one fsync covers the commits of
//! every process that wrote before it began, and the others do not run one of their own.
//!
//! The rule is `durable.rs`'s, across processes: a commit is durable once an fsync of
//! the WAL that *began after* its frames were written has completed. A handle takes a
//! mark ([`Board::note`]), an atomic read-modify-write of `began` (the number of the
//! newest sync whose fsync may have begun), after each write or read it will need
//! synced and before its ticket. Any sync numbered above the mark sets `began` to its
//! number with a later read-modify-write of the same word before its fsync begins, so
//! its fsync began after that write. When the handle's own sync is due
//! ([`Board::cover`]), `completed` above its latest mark means it has nothing to fsync;
//! else it waits for another handle's running sync numbered above the mark (`claim`, the
//! newest claimed sync and its claimant), or claims the next number and runs the fsync
//! itself. Syncs may overlap and end in any order: `began` only grows (`fetch_max`), and
//! `completed` is a prefix, the highest number up to which *every* sync has ended with
//! its fsync succeeded (each records its success in a ring of the last [`RING`]
//! numbers, and `completed` moves over the ring).
//!
//! Why a prefix, and why a failure stops the board: Linux reports a writeback error to
//! each open file description of the file that existed when the error was first
//! reported (`errseq`), not to one opened after. If one process's fsync took the error
//! for another's pages, a third process that opened the WAL afterwards could complete a
//! later fsync "successfully" without those pages. So every fsync of a handle on the
//! board runs under a claim, numbered in the order claimed (a descriptor opened after
//! an fsync failed claims a later number than that fsync's); a sync's success vouches
//! for a mark only if every sync numbered below it ended well too (a stalled or dead
//! claimant holds the prefix back); and a claimant whose fsync fails, a waiter that
//! finds a claimant's process gone (it may have died with the error), a handle whose
//! first fsync on opening fails, and a sync that has not ended [`STALE`] after the
//! claims went a whole ring past it (no further outcome could be recorded; before
//! that, claimants wait for it) stop the board: from then on every handle syncs for
//! itself alone ([`Cover::Alone`]) on its own descriptor, which was open before its
//! writes and so is told of any error on their pages. A claimant that lives but has
//! held its claim past [`STALE`] is not waited for: the waiter claims the next number
//! and runs its own fsync. The first handle to open a board that no live process uses
//! resets it: what was left behind concerned only writers that are gone.
//!
//! Limits: an fsync outside the board (SQLite's own, before a checkpoint) may be the
//! one to take an error, unknown to the board, until the process that ran it fails its
//! next fsync of its own descriptor; a handle opened after that could meanwhile vouch
//! for another process's earlier write. So may a handle that found no slot (all taken),
//! whose fsyncs the board never sees. Processes in different PID namespaces sharing a
//! token folder see each other as gone (`kill(pid, 0)`): the board stops, or is reset
//! under a live process, which must not be done (one token folder, one PID namespace).

//! Commit delay across processes: a claimed sync, before it begins, holds back while
//! another process is in a write, or has not yet written again since the last sync
//! covered it (each process's slot: threads in a write, and the number of the sync that
//! covers its last write), at most as long as the caller's own delay allows. Processes
//! that write meanwhile find it claimed and wait for it: one fsync for the group.
//! A slot whose process is gone, or that did not change for [`STALE`], is not waited for.
//! A process that cannot map the board, or finds no free slot, syncs on its own as
//! before. This module must not call SQLite or fsync anything itself.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::os::clock;
use crate::os::process;
use crate::os::shared_words::SharedWords;

/// Word 0: the layout's mark. A board with another mark is not used.
const LAYOUT: u64 = 0x6b6d_7368_7379_6e32; // "kmshsyn2"
/// Word 0 while a process resets the board ([`Board::reset_if_unused`]).
const RESETTING: u64 = 0x6b6d_7368_7265_7365; // "kmshrese"
const W_LAYOUT: usize = 0;
/// The number of the newest sync whose fsync may have begun.
const W_BEGAN: usize = 1;
/// Every sync numbered up to this one has ended with its fsync succeeded (a prefix:
/// one that failed, or never ended, stops it there).
const W_COMPLETED: usize = 2;
/// The newest claim: its number, its claimant's slot, and whether it still runs
/// ([`Claimed`]).
const W_CLAIM: usize = 3;
/// Moved (and woken) whenever a claimed sync ends (32-bit, a futex).
const W_ENDED: usize = 4;
/// Moved (and woken) when a writer ends its write while a sync holds back (32-bit).
const W_ARRIVED: usize = 5;
/// The number of the sync holding back now, or 0.
const W_HOLDING: usize = 6;
/// Set once a claimed sync failed, or its claimant died: from then on nobody relies on
/// another process's fsync (module comment) until the board is reset.
const W_FAILED: usize = 7;
/// How many sleep on `W_ENDED`, so that a sync's end makes the wake-up system call only
/// when someone waits.
const W_ENDED_WAITERS: usize = 8;
/// The syncs that ended with their fsync succeeded, each at its number modulo
/// [`RING`], for `W_COMPLETED` to move past syncs that ended out of order.
const FIRST_RING: usize = 16;
const RING: usize = 64;
/// The first slot's first word.
const FIRST_SLOT: usize = FIRST_RING + RING;
const SLOT_WORDS: usize = 8;
/// How many processes (store handles) take part at most; others sync on their own.
pub(super) const SLOTS: usize = 50;

/// Slot words: the owner (process id, and a number telling this process's handles
/// apart), threads in a write, the sync covering the last write, when the slot last
/// changed, and when its owner last claimed a sync (coarse monotonic nanoseconds).
const S_OWNER: usize = 0;
const S_WRITERS: usize = 1;
const S_WROTE_FOR: usize = 2;
const S_STAMP: usize = 3;
const S_CLAIMED_AT: usize = 4;

/// How long a claimant, or a slot that does not change, is believed: past it, the
/// claim is passed over and the slot not waited for.
pub(super) const STALE: Duration = Duration::from_secs(2);

/// The longest single sleep while waiting for another process's sync (each wake looks
/// again whether its claimant still lives).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A claim word, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claimed {
    number: u64,
    slot: usize,
    running: bool,
}

impl Claimed {
    fn unpack(word: u64) -> Claimed {
        Claimed {
            number: word >> 8,
            slot: usize::try_from((word >> 1) & 0x7f).unwrap_or(0),
            running: word & 1 == 1,
        }
    }

    fn pack(self) -> u64 {
        (self.number << 8) | ((self.slot as u64 & 0x7f) << 1) | u64::from(self.running)
    }
}

/// What [`Board::cover`] found.
#[must_use]
pub(super) enum Cover<'a> {
    /// A sync of another process (or handle) that began after the caller's writes has
    /// completed, and so has every sync numbered below it: nothing to fsync.
    Done,
    /// The caller runs the fsync, and reports it through the claim.
    Run(Claim<'a>),
    /// The caller runs the fsync for itself alone, and reports nothing: the board
    /// cannot be relied on now (a sync failed, or its claimant died or stalled).
    Alone,
}

/// What became of a running claim's claimant ([`Board::claimant`]).
enum Claimant {
    /// Alive, and its claim younger than [`STALE`].
    Believed,
    /// Alive (or its process id reused), but its claim older than [`STALE`].
    Stale,
    /// Its process is gone, or its slot was given up.
    Gone,
}

/// A claimed sync: the caller's fsync, begun after this was returned, to report with
/// [`Claim::finish`] (dropped unreported, it counts as failed).
pub(super) struct Claim<'a> {
    board: &'a Board,
    number: u64,
    reported: bool,
}

impl Claim<'_> {
    /// Reports the fsync: `ok` publishes it as completed, for every process it covers.
    pub(super) fn finish(mut self, ok: bool) {
        self.reported = true;
        self.board.end(self.number, ok);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.board.end(self.number, false);
        }
    }
}

/// The bounds of a claimed sync's hold: it holds back at most `min(last_fsync,
/// max_delay)`, and not at all when `last_fsync` is under `slow` (`durable.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Hold {
    pub(super) last_fsync: Duration,
    pub(super) max_delay: Duration,
    pub(super) slow: Duration,
}

/// This handle's place on the board.
pub(super) struct Board {
    words: SharedWords,
    slot: usize,
    owner: u64,
    /// The highest mark this handle's writes and reads took ([`Board::note`]): a sync
    /// numbered above it began after all of them.
    latest: AtomicU64,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").field("slot", &self.slot).finish()
    }
}

/// Word `w` of slot `s`.
fn slot_word(words: &SharedWords, s: usize, w: usize) -> &AtomicU64 {
    words.word(FIRST_SLOT + s * SLOT_WORDS + w)
}

fn now_nanos() -> u64 {
    u64::try_from(clock::monotonic().as_nanos()).unwrap_or(u64::MAX)
}

/// Tells this process's handles apart in their slots' owner words.
static HANDLES: AtomicU32 = AtomicU32::new(0);

impl Board {
    /// The board at `path` (created 0600 if missing), with a slot taken for this handle;
    /// `None` when it cannot be opened or mapped, holds another layout, or has no slot
    /// free (the caller then syncs on its own).
    pub(super) fn open(path: &Path) -> Option<Board> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .ok()?;
        let words = SharedWords::map(&file)?;
        let layout = words.word(W_LAYOUT);
        match layout.compare_exchange(0, LAYOUT, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {}
            Err(found) if found == LAYOUT => Board::reset_if_unused(&words),
            // Another layout, or a reset under way (it takes microseconds; this handle
            // syncs alone rather than wait).
            Err(_) => return None,
        }
        let handle = u64::from(HANDLES.fetch_add(1, Ordering::Relaxed)) + 1;
        let owner = (handle << 32) | u64::from(std::process::id());
        let slot = (0..SLOTS).find(|&s| Board::take_slot(&words, s, owner))?;
        // A reset that began before the slot was taken may not have seen it: then give
        // the slot back and sync alone.
        if layout.load(Ordering::SeqCst) != LAYOUT {
            let _ = slot_word(&words, slot, S_OWNER).compare_exchange(
                owner,
                0,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            return None;
        }
        Some(Board {
            words,
            slot,
            owner,
            latest: AtomicU64::new(0),
        })
    }

    /// Starts the board afresh when no process has a slot on it (all free, or owned by
    /// processes that are gone): what a failed sync, a dead claimant or a stalled one
    /// left behind (the failure flag, a completed prefix that cannot move) concerned
    /// only writers that are gone, whose unacknowledged commits nobody waits for. The
    /// layout word is the reset's lock; an opener checks it again after taking its
    /// slot, so that a reset and a new slot never overlap unseen.
    fn reset_if_unused(words: &SharedWords) {
        let in_use = |words: &SharedWords| {
            (0..SLOTS).any(|s| {
                let owner = slot_word(words, s, S_OWNER).load(Ordering::SeqCst);
                owner != 0 && process::alive(pid_of(owner))
            })
        };
        let claimed = Claimed::unpack(words.word(W_CLAIM).load(Ordering::SeqCst)).number;
        let stuck = words.word(W_FAILED).load(Ordering::SeqCst) != 0
            || claimed != words.word(W_COMPLETED).load(Ordering::SeqCst);
        if !stuck || in_use(words) {
            return;
        }
        let layout = words.word(W_LAYOUT);
        if layout
            .compare_exchange(LAYOUT, RESETTING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        if !in_use(words) {
            // The numbers go on from the newest claim (or the newest begun sync), so
            // that `completed` is never above a mark that a sync has not covered: a
            // mark taken from now on is at least that, and `began` never goes back.
            let claimed = Claimed::unpack(words.word(W_CLAIM).load(Ordering::SeqCst)).number;
            let newest = claimed.max(words.word(W_BEGAN).load(Ordering::SeqCst));
            words.word(W_BEGAN).fetch_max(newest, Ordering::SeqCst);
            words.word(W_COMPLETED).store(newest, Ordering::SeqCst);
            let fresh = Claimed {
                number: newest,
                slot: 0,
                running: false,
            };
            words.word(W_CLAIM).store(fresh.pack(), Ordering::SeqCst);
            words.word(W_HOLDING).store(0, Ordering::SeqCst);
            words.word(W_FAILED).store(0, Ordering::SeqCst);
        }
        layout.store(LAYOUT, Ordering::SeqCst);
    }

    /// Takes slot `s` for `owner` if it is free or its owner's process is gone.
    fn take_slot(words: &SharedWords, s: usize, owner: u64) -> bool {
        let owner_word = slot_word(words, s, S_OWNER);
        let found = owner_word.load(Ordering::Acquire);
        if found != 0 && process::alive(pid_of(found)) {
            return false;
        }
        if owner_word
            .compare_exchange(found, owner, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // The newest claim was the dead owner's, still running: it may have died with a
        // writeback error (as `Claimant::Gone` in `cover`), and once the slot is taken
        // nobody could tell any more.
        let claim = Claimed::unpack(words.word(W_CLAIM).load(Ordering::SeqCst));
        if found != 0 && claim.running && claim.slot == s {
            words.word(W_FAILED).store(1, Ordering::SeqCst);
        }
        let slot = |w| slot_word(words, s, w);
        slot(S_WRITERS).store(0, Ordering::Release);
        slot(S_WROTE_FOR).store(0, Ordering::Release);
        slot(S_CLAIMED_AT).store(0, Ordering::Release);
        slot(S_STAMP).store(now_nanos(), Ordering::Release);
        true
    }

    fn slot_word(&self, s: usize, w: usize) -> &AtomicU64 {
        slot_word(&self.words, s, w)
    }

    fn mine(&self, w: usize) -> &AtomicU64 {
        self.slot_word(self.slot, w)
    }

    /// Takes a mark for a write (or a read) of this handle that has just ended: a
    /// read-modify-write of `began` (module comment), kept as this handle's latest. The
    /// caller notes before it takes its ticket of `durable.rs`, so that a sync of this
    /// handle that covers the ticket asks the board about this mark or a later one.
    pub(super) fn note(&self) -> u64 {
        let mark = self.mark_now();
        self.latest.fetch_max(mark, Ordering::AcqRel);
        mark
    }

    /// A thread of this handle begins a write.
    pub(super) fn writer_began(&self) {
        self.mine(S_WRITERS).fetch_add(1, Ordering::SeqCst);
        self.mine(S_STAMP).store(now_nanos(), Ordering::Release);
    }

    /// A thread of this handle ends its write, whose mark ([`Board::note`]) was `mark`
    /// when it committed something.
    pub(super) fn writer_ended(&self, mark: Option<u64>) {
        if let Some(mark) = mark {
            self.mine(S_WROTE_FOR)
                .store(mark.saturating_add(1), Ordering::SeqCst);
        }
        self.mine(S_STAMP).store(now_nanos(), Ordering::Release);
        // Saturating: a slot reset by `take_slot` under a live writer must not wrap.
        let _ = self
            .mine(S_WRITERS)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if self.words.word(W_HOLDING).load(Ordering::SeqCst) != 0 {
            self.words.word32(W_ARRIVED).fetch_add(1, Ordering::SeqCst);
            self.words.wake(W_ARRIVED);
        }
    }

    /// Returns once every write and read this handle noted so far ([`Board::note`]) is
    /// covered by a completed sync of any process, or with the claim of a sync the
    /// caller must run, or with [`Cover::Alone`]. See the module comment.
    pub(super) fn cover(&self, hold: Hold) -> Cover<'_> {
        let mark = self.latest.load(Ordering::Acquire);
        let claim = self.words.word(W_CLAIM);
        // While a ring behind: since when, and at which `completed` (a move of it is a
        // new late sync, with an allowance of its own).
        let mut behind_since: Option<(u64, Instant)> = None;
        loop {
            let ended = self.words.word32(W_ENDED).load(Ordering::SeqCst);
            // First: once a sync failed, no success is taken for covering anything.
            if self.failed() {
                return Cover::Alone;
            }
            let completed = self.completed();
            if completed > mark {
                return Cover::Done;
            }
            let found = claim.load(Ordering::SeqCst);
            let current = Claimed::unpack(found);
            if current.number.saturating_sub(completed) + 1 >= RING as u64 {
                // A sync a ring behind has not ended: the next claim's outcome could not
                // be recorded without overwriting its slot, and `completed` could never
                // move again. Its claimant is waited for (a process descheduled for a
                // few milliseconds on a fast disk), up to STALE; past that the board
                // stops.
                let since = match behind_since {
                    Some((at, since)) if at == completed => since,
                    _ => {
                        let now = Instant::now();
                        behind_since = Some((completed, now));
                        now
                    }
                };
                if since.elapsed() >= STALE {
                    self.stop();
                    return Cover::Alone;
                }
                self.sleep_until_a_sync_ends(ended);
                continue;
            }
            behind_since = None;
            // A running sync of another handle numbered above the mark covers it. One of
            // this handle's own is not waited for here: this handle's newer sync waits
            // for its older ones before it reports (`durable.rs`), so waiting for it
            // would wait in a circle.
            if current.running && current.number > mark && current.slot != self.slot {
                match self.claimant(current) {
                    Claimant::Believed => {
                        self.sleep_until_a_sync_ends(ended);
                        continue;
                    }
                    Claimant::Gone => {
                        if claim.load(Ordering::SeqCst) != found {
                            // It ended (and its handle closed) meanwhile: look again.
                            continue;
                        }
                        // It may have died with a writeback error that no other
                        // descriptor will be told of: nobody relies on the board now.
                        self.stop();
                        return Cover::Alone;
                    }
                    // Not waited for: the caller claims the next number and runs its
                    // own fsync, on the board like any other, so that a failure of
                    // it stops `completed` there.
                    Claimant::Stale => {}
                }
            }
            // Nothing running covers the mark: the next number is the caller's. Every
            // fsync of a handle on the board runs under a claim (but after a failure),
            // so that one that fails holds `completed` back for good: a descriptor
            // opened after the failure, which the kernel does not tell of it, claims a
            // later number and can never move `completed` past it.
            let number = current.number.max(mark) + 1;
            let mine = Claimed {
                number,
                slot: self.slot,
                running: true,
            };
            self.mine(S_CLAIMED_AT)
                .store(now_nanos(), Ordering::Release);
            if claim
                .compare_exchange(found, mine.pack(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.hold_back(number, hold);
                // Its fsync begins after this: it covers every mark taken before.
                self.words.word(W_BEGAN).fetch_max(number, Ordering::SeqCst);
                return Cover::Run(Claim {
                    board: self,
                    number,
                    reported: false,
                });
            }
        }
    }

    /// Sleeps until a sync ends (the `W_ENDED` word moves from `ended`), at most
    /// [`WAIT_SLICE`], counted among the waiters so that the sync's end wakes it.
    fn sleep_until_a_sync_ends(&self, ended: u32) {
        let waiters = self.words.word(W_ENDED_WAITERS);
        waiters.fetch_add(1, Ordering::SeqCst);
        self.words.wait(W_ENDED, ended, WAIT_SLICE);
        let _ = waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Whether the board has stopped: a sync failed, or might have.
    pub(super) fn failed(&self) -> bool {
        self.words.word(W_FAILED).load(Ordering::SeqCst) != 0
    }

    /// Stops the board (every handle syncs alone until a reset) and wakes its waiters.
    pub(super) fn stop(&self) {
        self.words.word(W_FAILED).store(1, Ordering::SeqCst);
        self.words.wake(W_ENDED);
    }

    /// Every sync numbered up to the answer has ended with its fsync succeeded.
    pub(super) fn completed(&self) -> u64 {
        self.words.word(W_COMPLETED).load(Ordering::SeqCst)
    }

    /// A mark taken now, not kept as this handle's latest: a sync numbered above it
    /// began after this call (`durable.rs` asks it after reading the WAL-index header).
    pub(super) fn mark_now(&self) -> u64 {
        self.words.word(W_BEGAN).fetch_add(0, Ordering::SeqCst)
    }

    /// What became of a running claim's claimant: believed while its process lives and
    /// its claim is younger than [`STALE`].
    fn claimant(&self, claim: Claimed) -> Claimant {
        if claim.slot >= SLOTS {
            return Claimant::Gone;
        }
        let owner = self.slot_word(claim.slot, S_OWNER).load(Ordering::Acquire);
        if owner == 0 || !process::alive(pid_of(owner)) {
            return Claimant::Gone;
        }
        let at = self
            .slot_word(claim.slot, S_CLAIMED_AT)
            .load(Ordering::Acquire);
        if fresh(at) {
            Claimant::Believed
        } else {
            Claimant::Stale
        }
    }

    /// The commit delay of a claimed sync (module comment).
    fn hold_back(&self, number: u64, hold: Hold) {
        if hold.last_fsync < hold.slow || !self.others_pending(number) {
            return;
        }
        let until = Instant::now() + hold.last_fsync.min(hold.max_delay);
        let holding = self.words.word(W_HOLDING);
        holding.store(number, Ordering::SeqCst);
        loop {
            let arrived = self.words.word32(W_ARRIVED).load(Ordering::SeqCst);
            if !self.others_pending(number) {
                break;
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            self.words.wait(W_ARRIVED, arrived, left);
        }
        let _ = holding.compare_exchange(number, 0, Ordering::SeqCst, Ordering::Relaxed);
    }

    /// Whether another slot is in a write, or wrote for the sync before `number` and not
    /// yet for it: a process on its way back with its next commit.
    fn others_pending(&self, number: u64) -> bool {
        (0..SLOTS).filter(|&s| s != self.slot).any(|s| {
            let owner = self.slot_word(s, S_OWNER).load(Ordering::SeqCst);
            if owner == 0 || !fresh(self.slot_word(s, S_STAMP).load(Ordering::SeqCst)) {
                return false;
            }
            let writing = self.slot_word(s, S_WRITERS).load(Ordering::SeqCst) > 0;
            // A slot that never wrote is not on its way back.
            let wrote_for = self.slot_word(s, S_WROTE_FOR).load(Ordering::SeqCst);
            let returning = wrote_for != 0 && wrote_for == number.saturating_sub(1);
            (writing || returning) && process::alive(pid_of(owner))
        })
    }

    /// Ends claimed sync `number`: recorded as succeeded when `ok` (and `completed`
    /// moved past every sync that has ended so), else the board marked as failed.
    fn end(&self, number: u64, ok: bool) {
        if ok {
            self.ring(number).store(number, Ordering::SeqCst);
            self.advance();
        } else {
            self.words.word(W_FAILED).store(1, Ordering::SeqCst);
        }
        let claim = self.words.word(W_CLAIM);
        let running = Claimed {
            number,
            slot: self.slot,
            running: true,
        };
        let ended = Claimed {
            running: false,
            ..running
        };
        // A newer claim may have replaced it: that one is left alone.
        let _ = claim.compare_exchange(
            running.pack(),
            ended.pack(),
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
        // Moved before the waiters are counted, and a waiter counts itself before its
        // futex compares the word (both SeqCst): either this sees the waiter, or the
        // waiter's futex sees the word moved and does not sleep.
        self.words.word32(W_ENDED).fetch_add(1, Ordering::SeqCst);
        if self.words.word(W_ENDED_WAITERS).load(Ordering::SeqCst) > 0 {
            self.words.wake(W_ENDED);
        }
    }

    fn ring(&self, number: u64) -> &AtomicU64 {
        // The remainder is below RING, which fits any usize.
        self.words
            .word(FIRST_RING + usize::try_from(number % RING as u64).unwrap_or(0))
    }

    /// Moves `completed` over every next number recorded as succeeded. Each sync that
    /// succeeds records itself and then moves it, so that of two ending out of order
    /// the later to record sees the other's (SeqCst).
    fn advance(&self) {
        let completed = self.words.word(W_COMPLETED);
        loop {
            let at = completed.load(Ordering::SeqCst);
            let next = at + 1;
            if self.ring(next).load(Ordering::SeqCst) != next {
                return;
            }
            let _ = completed.compare_exchange(at, next, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Writes a claim word as another process would (for tests: a claimant that died).
    #[cfg(test)]
    pub(super) fn forge_claim(&self, number: u64, slot: usize, owner: u64, claimed_at: u64) {
        self.slot_word(slot, S_OWNER)
            .store(owner, Ordering::Release);
        self.slot_word(slot, S_CLAIMED_AT)
            .store(claimed_at, Ordering::Release);
        let word = Claimed {
            number,
            slot,
            running: true,
        };
        self.words
            .word(W_CLAIM)
            .store(word.pack(), Ordering::Release);
    }

    /// This handle's slot (for tests).
    #[cfg(test)]
    pub(super) fn slot(&self) -> usize {
        self.slot
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.mine(S_WRITERS).store(0, Ordering::Release);
        let _ =
            self.mine(S_OWNER)
                .compare_exchange(self.owner, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

fn pid_of(owner: u64) -> u32 {
    (owner & 0xffff_ffff) as u32
}

/// Whether a coarse monotonic stamp is younger than [`STALE`].
fn fresh(stamp: u64) -> bool {
    clock::within(Duration::from_nanos(stamp), clock::monotonic(), STALE)
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;

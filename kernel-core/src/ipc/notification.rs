//! Notifications: an asynchronous word of event bits with at most one waiting thread.
//!
//! Owns the notification word and the hand-over of bits to a waiter. Lock-free (a few CAS on two
//! atomics), because interrupt handlers signal notifications on any CPU while a thread waits or
//! polls on another. It must never lose a signalled bit (every bit ends up either in the word or
//! delivered to exactly one waiter, once), never wake a waiter with no bits, and never wake a
//! thread that is no longer waiting. Waking is the glue's job: [`Notification::signal`] only
//! says whom to wake, and with which bits.
//!
//! # Protocol
//!
//! The word holds the pending bits (bits 0..63, [`NOTIFICATION_BITS`]) and, in bit 63, `WAITING`:
//! a thread has registered and is blocking. `waiter` holds that thread's ID and doubles as the
//! right to wait: a thread claims it (CAS 0 → its ID) before looking at the word, so two threads
//! can never both wait. Invariant: `WAITING` set ⇒ no pending bits, and `waiter` names the
//! blocked thread.
//!
//! - `wait`: claim `waiter`; if bits are pending, take them (CAS bits → 0), release `waiter` and
//!   return them. Otherwise CAS 0 → `WAITING` and block. A signal that lands in between makes the
//!   CAS fail, and the loop takes the bits instead.
//! - `signal`: if `WAITING` is set, CAS it → 0 (that CAS hands the waiter to this signaller and to
//!   nobody else), take `waiter` and wake it with the bits. Otherwise CAS the bits in: they wait in
//!   the word for the next `wait` or `poll`.
//! - `cancel_wait` (timeout or kill): CAS `WAITING` → 0. If a signaller cleared `WAITING` first,
//!   the CAS fails: that signaller is waking the thread with bits, and the wake must win (the
//!   thread returns the bits, not a timeout), or the bits would be lost.
//!
//! Atomics come from `crate::sync`, so the loom models in `loom_tests` check this very code.

use crate::sync::AtomicU64;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::thread::ThreadId;
use abi::{Error, NOTIFICATION_BITS};
use core::fmt;

/// Bit 63 of the word: a thread is blocked waiting (and no bits are pending).
const WAITING: u64 = !NOTIFICATION_BITS;

/// "No waiter" in `waiter` (thread ID 0 is never valid).
const NO_WAITER: u64 = 0;

/// What [`Notification::signal`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Nobody was waiting: the bits are pending in the word.
    Pending,
    /// A thread was waiting: return `bits` from its `wait` and wake it. The word is clear.
    Wake {
        /// The waiter.
        waiter: ThreadId,
        /// Its bits (never 0).
        bits: u64,
    },
}

/// What [`Notification::wait`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Bits were pending: here they are (never 0); the word is clear. Do not block.
    Ready(u64),
    /// No bits: the thread is registered as the waiter; block it. A later signal wakes it with
    /// bits; a timeout or kill must call [`Notification::cancel_wait`].
    Block,
}

/// One notification word.
pub struct Notification {
    /// Pending bits, or `WAITING`.
    word: AtomicU64,
    /// The raw ID of the thread that holds the right to wait (0: none).
    waiter: AtomicU64,
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Relaxed);
        f.debug_struct("Notification")
            .field("bits", &format_args!("{:#x}", word & NOTIFICATION_BITS))
            .field("waiting", &(word & WAITING != 0))
            .field("waiter", &self.waiter())
            .finish()
    }
}

impl Default for Notification {
    fn default() -> Self {
        Self::new()
    }
}

impl Notification {
    /// A notification with no bits and no waiter.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            waiter: AtomicU64::new(NO_WAITER),
        }
    }

    /// A notification with no bits and no waiter (loom's atomics have no `const fn new`).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            waiter: AtomicU64::new(NO_WAITER),
        }
    }

    /// Sets `bits` (the caller's bits OR its capability's badge). [`Error::InvalidArgument`] if
    /// `bits` is 0 or has a bit outside [`NOTIFICATION_BITS`]. Never blocks; callable from an
    /// interrupt handler.
    pub fn signal(&self, bits: u64) -> Result<SignalOutcome, Error> {
        if bits == 0 || bits & !NOTIFICATION_BITS != 0 {
            return Err(Error::InvalidArgument);
        }
        let mut word = self.word.load(Acquire);
        loop {
            if word & WAITING != 0 {
                // Pending bits are 0 while WAITING is set; clearing the flag hands the waiter to
                // this signaller alone (Acquire: the waiter's ID, stored before its Release CAS
                // that set WAITING, is visible).
                match self.word.compare_exchange(word, 0, AcqRel, Acquire) {
                    Ok(_) => {
                        let waiter = self.waiter.swap(NO_WAITER, AcqRel);
                        return Ok(SignalOutcome::Wake {
                            waiter: ThreadId::from_u64(waiter),
                            bits: bits | (word & NOTIFICATION_BITS),
                        });
                    }
                    Err(now) => word = now,
                }
            } else {
                match self
                    .word
                    .compare_exchange(word, word | bits, AcqRel, Acquire)
                {
                    Ok(_) => return Ok(SignalOutcome::Pending),
                    Err(now) => word = now,
                }
            }
        }
    }

    /// Takes the pending bits (0 if none), clearing them. Never blocks.
    pub fn poll(&self) -> u64 {
        let mut word = self.word.load(Acquire);
        loop {
            if word & NOTIFICATION_BITS == 0 {
                // Nothing pending (possibly a waiter blocked): nothing to take.
                return 0;
            }
            match self
                .word
                .compare_exchange(word, word & WAITING, AcqRel, Acquire)
            {
                Ok(_) => return word & NOTIFICATION_BITS,
                Err(now) => word = now,
            }
        }
    }

    /// `wait` by `thread`: the pending bits if any, else (when `may_block`) register `thread` as
    /// the waiter and block.
    ///
    /// Errors (nothing changed): [`Error::Busy`] if another thread is waiting (or registering);
    /// [`Error::WouldBlock`] if no bits are pending and `may_block` is false.
    pub fn wait(&self, thread: ThreadId, may_block: bool) -> Result<WaitOutcome, Error> {
        // The right to wait; also makes `waiter` name us before WAITING can be set.
        if self
            .waiter
            .compare_exchange(NO_WAITER, thread.as_u64(), Acquire, Relaxed)
            .is_err()
        {
            return Err(Error::Busy);
        }
        let mut word = self.word.load(Acquire);
        loop {
            // WAITING is never set here: only the holder of the right to wait sets it.
            if word != 0 {
                match self.word.compare_exchange(word, 0, AcqRel, Acquire) {
                    Ok(_) => {
                        self.waiter.store(NO_WAITER, Release);
                        return Ok(WaitOutcome::Ready(word));
                    }
                    Err(now) => word = now,
                }
            } else if !may_block {
                self.waiter.store(NO_WAITER, Release);
                return Err(Error::WouldBlock);
            } else {
                match self.word.compare_exchange(0, WAITING, AcqRel, Acquire) {
                    Ok(_) => return Ok(WaitOutcome::Block),
                    Err(now) => word = now,
                }
            }
        }
    }

    /// Withdraws `thread`'s wait (its timeout expired, or it is being killed). True if it was
    /// withdrawn: the thread gets its timeout (or dies) and no bit was lost. False if `thread` is
    /// not the blocked waiter, in particular because a signal already claimed it: that signal's
    /// wake (with bits) must win.
    pub fn cancel_wait(&self, thread: ThreadId) -> bool {
        if self.waiter.load(Acquire) != thread.as_u64() {
            return false;
        }
        // Only WAITING with no bits can be withdrawn; a signaller that cleared WAITING first owns
        // the wake. (A thread calls this only for a thread blocked after `WaitOutcome::Block`, so
        // `waiter` cannot change under us except by that signaller's swap to 0.)
        if self
            .word
            .compare_exchange(WAITING, 0, AcqRel, Acquire)
            .is_err()
        {
            return false;
        }
        self.waiter.store(NO_WAITER, Release);
        true
    }

    /// The notification is being destroyed: clears the word and returns the blocked waiter, if
    /// any (the glue wakes it with [`Error::Killed`]). A signal racing with this either wakes the
    /// waiter first (and this returns `None`) or finds the word cleared.
    pub fn reset(&self) -> Option<ThreadId> {
        if self.word.swap(0, AcqRel) & WAITING == 0 {
            return None;
        }
        match self.waiter.swap(NO_WAITER, AcqRel) {
            NO_WAITER => None,
            raw => Some(ThreadId::from_u64(raw)),
        }
    }

    /// The pending bits (a racy snapshot, for dumps and tests).
    #[must_use]
    pub fn peek(&self) -> u64 {
        self.word.load(Relaxed) & NOTIFICATION_BITS
    }

    /// The thread registered as waiter (a racy snapshot, for dumps and tests).
    #[must_use]
    pub fn waiter(&self) -> Option<ThreadId> {
        match self.waiter.load(Relaxed) {
            NO_WAITER => None,
            raw => Some(ThreadId::from_u64(raw)),
        }
    }
}

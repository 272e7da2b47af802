//! One thread slot: its whole life packed into a single atomic word, plus the exit code.
//!
//! Owns the bit layout of the slot word and the pure arithmetic on it. Everything that decides a
//! transition (state, generation, on-CPU mark, joined/detached, pending wake-up) lives in the one
//! word, so a single CAS both checks that an ID is still current and moves the state: there is no
//! window between "the generation matches" and "the state changed" in which the slot could be
//! reclaimed and reused. This module must never perform a transition itself; `table` does, with a
//! CAS on the word.

use super::id::ThreadState;
use crate::sync::AtomicU64;

/// The slot word, decoded. Layout (bit numbers):
///
/// | bits   | meaning                                                          |
/// |--------|------------------------------------------------------------------|
/// | 0..8   | [`ThreadState`] as `u8`                                           |
/// | 8      | `ON_CPU`: some CPU may still be running on the thread's stack     |
/// | 9      | `JOINED`: a joiner collected the exit code                        |
/// | 10     | `DETACHED`: nobody will join; reclaim as soon as possible         |
/// | 11     | `WAKE_PENDING`: a wake-up arrived while the thread was not blocked |
/// | 32..64 | generation of the current (or last) occupancy                     |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Word(pub(super) u64);

impl Word {
    const STATE_MASK: u64 = 0xff;
    pub(super) const ON_CPU: u64 = 1 << 8;
    pub(super) const JOINED: u64 = 1 << 9;
    pub(super) const DETACHED: u64 = 1 << 10;
    pub(super) const WAKE_PENDING: u64 = 1 << 11;
    const FLAGS_MASK: u64 = Self::ON_CPU | Self::JOINED | Self::DETACHED | Self::WAKE_PENDING;

    /// A word in `state` with generation `generation` and no flags.
    pub(super) const fn new(state: ThreadState, generation: u32) -> Self {
        Self(((generation as u64) << 32) | state as u64)
    }

    pub(super) const fn state(self) -> ThreadState {
        match ThreadState::from_u8((self.0 & Self::STATE_MASK) as u8) {
            Some(state) => state,
            // Only `Word::new`/`with_state` write the state bits, always from a `ThreadState`.
            None => panic!("thread slot word holds no valid state"),
        }
    }

    pub(super) const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub(super) const fn has(self, flag: u64) -> bool {
        self.0 & flag != 0
    }

    /// Same generation and flags, another state.
    pub(super) const fn with_state(self, state: ThreadState) -> Self {
        Self((self.0 & !Self::STATE_MASK) | state as u64)
    }

    pub(super) const fn set(self, flag: u64) -> Self {
        Self(self.0 | flag)
    }

    pub(super) const fn clear(self, flag: u64) -> Self {
        Self(self.0 & !flag)
    }

    /// The slot after reclaim: `Free`, generation kept (the next claim bumps it), flags cleared.
    pub(super) const fn freed(self) -> Self {
        Self((self.0 & !(Self::STATE_MASK | Self::FLAGS_MASK)) | ThreadState::Free as u64)
    }

    /// The generation the next occupancy gets. Never 0, so that raw ID 0 is never valid.
    pub(super) const fn next_generation(self) -> u32 {
        match self.generation().wrapping_add(1) {
            0 => 1,
            g => g,
        }
    }
}

/// One slot of the table.
#[derive(Debug)]
pub(super) struct Slot {
    /// The packed [`Word`].
    pub(super) word: AtomicU64,
    /// The exit code (an `i64` stored as its bits). Written only by the thread itself while it is
    /// `Running` (just before the CAS to `Terminated`, which publishes it with release ordering);
    /// read only while the word says `Terminated` with the reader's generation.
    pub(super) exit_code: AtomicU64,
}

impl Slot {
    /// Reads the slot word as the starting point of a transition (which a CAS then confirms).
    ///
    /// In a real build this is an acquire load: the value is only a guess, because every
    /// operation installs or confirms its outcome with a CAS from exactly this value, and a stale
    /// guess just fails that CAS and retries.
    ///
    /// Under loom it is an RMW (`fetch_or(0)`) that reads the same value. loom 0.7's DPOR keeps only
    /// the *last* access of each atomic to decide which interleavings race (tokio-rs/loom issues
    /// 166 and 392): a thread's own load just before its CAS hides that CAS's race with another
    /// thread's earlier load, and loom then never tries the CAS before that load. With every access
    /// to the word an RMW, each access conflicts with the previous one and that reordering is
    /// explored. This does not weaken the model: the guess never decides an outcome on its own.
    pub(super) fn read(&self) -> u64 {
        #[cfg(not(loom))]
        return self.word.load(crate::sync::Ordering::Acquire);
        #[cfg(loom)]
        return self.word.fetch_or(0, crate::sync::Ordering::Acquire);
    }

    #[cfg(not(loom))]
    pub(super) const fn new() -> Self {
        Self {
            word: AtomicU64::new(Word::new(ThreadState::Free, 0).0),
            exit_code: AtomicU64::new(0),
        }
    }

    #[cfg(loom)]
    pub(super) fn new() -> Self {
        Self {
            word: AtomicU64::new(Word::new(ThreadState::Free, 0).0),
            exit_code: AtomicU64::new(0),
        }
    }
}

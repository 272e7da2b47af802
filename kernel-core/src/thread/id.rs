//! Thread identities, thread states and the errors of the thread table.
//!
//! Owns the encoding of a [`ThreadId`] (slot index + generation in one `u64`, so it can travel
//! through a syscall register or a trace record) and the meaning of each [`ThreadState`]. It must
//! never decide whether an ID is live: only the table can, by comparing the generation with the
//! slot's under one atomic load or CAS.

use core::fmt;

crate::generational_id!(
    /// The name of one thread: which slot it lives in and which occupancy of that slot it is.
    ///
    /// The generation is bumped every time the slot is claimed, so an ID kept after its thread
    /// was reclaimed (and the slot reused) no longer matches the slot and is refused with
    /// [`ThreadError::Stale`]. Generation 0 is never handed out, so the raw value 0 is never a
    /// valid thread ID and can stand for "no thread" in a trace record or a register.
    ThreadId
);

/// Where a thread slot is in its life.
///
/// `Free -> Initializing -> Ready <-> Running <-> Blocked`, `Running -> Terminated -> Free`
/// (`Blocked` returns to `Running` through `Ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ThreadState {
    /// Unused; the next [`claim`](super::ThreadTable::claim) may take it.
    Free = 0,
    /// Claimed and being set up. Only the holder of the [`Claim`](super::Claim) may move it on.
    Initializing = 1,
    /// Runnable, waiting for a CPU.
    Ready = 2,
    /// On a CPU.
    Running = 3,
    /// Waiting for a wake-up.
    Blocked = 4,
    /// Exited; holds the exit code until reclaimed.
    Terminated = 5,
}

impl ThreadState {
    /// Decodes the `repr(u8)` value (for trace records and dumps); `None` for any other byte.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Free,
            1 => Self::Initializing,
            2 => Self::Ready,
            3 => Self::Running,
            4 => Self::Blocked,
            5 => Self::Terminated,
            _ => return None,
        })
    }

    /// A short lower-case name for dumps.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Initializing => "initializing",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Terminated => "terminated",
        }
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the thread table refused an operation. A refused operation changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadError {
    /// The ID does not name a live thread: its slot was reclaimed (and maybe reused, with a new
    /// generation), or the index is outside the table.
    Stale,
    /// Every slot is in use.
    TableFull,
    /// The thread is not in a state this operation starts from.
    WrongState {
        /// The state it was in.
        found: ThreadState,
    },
    /// Its exit code was already collected by a join.
    AlreadyJoined,
    /// It was detached: nobody may join it.
    Detached,
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stale => f.write_str("stale thread ID (thread gone or slot reused)"),
            Self::TableFull => f.write_str("thread table full"),
            Self::WrongState { found } => write!(
                f,
                "thread is {found}, which this operation does not start from"
            ),
            Self::AlreadyJoined => f.write_str("thread already joined"),
            Self::Detached => f.write_str("thread is detached"),
        }
    }
}

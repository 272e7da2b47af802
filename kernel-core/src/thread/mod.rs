//! Thread slots: identities, the atomic slot state machine and the rules of reclaim.
//!
//! Owns the life of a thread *slot*:
//!
//! ```text
//!            claim            publish          start_running
//!   Free ───────────▶ Initializing ─────▶ Ready ◀──────────────▶ Running ──terminate──▶ Terminated
//!    ▲                  │ abandon           ▲        preempt        │                      │
//!    │◀─────────────────┘                   └──── wake ── Blocked ◀─┘ block                │
//!    └───────────── reclaim: terminated AND left its CPU AND (joined OR detached) ◀────────┘
//! ```
//!
//! The rules this module exists to enforce, each one a bug that has happened before:
//!
//! - Only the holder of a slot's [`Claim`] moves it out of `Initializing` (seed 003).
//! - A `Terminated` slot is reclaimed exactly once, and only when no CPU runs on its stack any more
//!   and its exit code was collected by its joiner or it was detached.
//! - A [`ThreadId`] carries a generation; an ID from before a slot was reused is refused with
//!   [`ThreadError::Stale`], never acted on.
//! - A wake-up is never lost: a wake that reaches a thread that is about to block is remembered.
//!
//! It must never lock, allocate or block: the table is used from interrupt handlers and the
//! context-switch path on every CPU. Its atomics come from `crate::sync`, so the loom models in
//! `loom_tests` (built with `RUSTFLAGS="--cfg loom"`) check the real code, and test builds can break
//! one operation on purpose (`fault`) to show that those models catch the bug. Scheduling policy
//! (who runs next) is not here; see [`crate::sched`]. What the kernel keeps about the thread in a
//! slot (stacks, priority, process, blocking operations) is its control block, [`Tcb`].

mod id;
mod slot;
mod table;
mod tcb;

#[cfg(test)]
mod fault;
#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use id::{ThreadError, ThreadId, ThreadState};
pub use table::{Claim, JoinOutcome, SlotInfo, ThreadTable};
pub use tcb::Tcb;

/// Slots in the kernel's thread table.
pub const MAX_THREADS: usize = 256;

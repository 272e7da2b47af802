//! Scheduling: per-CPU run queues with priorities, time slices, and the timer queue.
//!
//! Owns the *policy*: which ready thread a CPU runs next, when the current one is preempted, and
//! which sleeper is due next. The thread *state* (and whether an ID is still live) belongs to
//! [`crate::thread`]; this module only orders [`ThreadId`](crate::thread::ThreadId)s and the caller
//! moves the threads through the table (see [`cpu`] for the exact sequence).
//!
//! Everything here is plain data in fixed arrays, built by `const fn`, with O(1) or O(log n)
//! operations. It must never allocate, lock or block (the caller holds each CPU's structures behind
//! one interrupts-off lock and calls them from the timer interrupt), and it must never pick a
//! thread by scanning slot numbers (seed 004's starvation): order comes from FIFO queues only.
//!
//! Fairness, which the tests check: with `n` ready threads at the highest ready priority, each
//! runs within `n` consecutive slices, whatever their slot numbers and however often other threads
//! of that priority block and wake (a woken thread joins the back of its level).

pub mod cpu;
pub mod run_queue;
pub mod timer_queue;

#[cfg(test)]
mod tests;

pub use cpu::{CpuScheduler, SLICE_TICKS};
pub use run_queue::{QueueError, RunQueue};
pub use timer_queue::TimerQueue;

/// Priority levels: 0 lowest, `PRIORITIES - 1` highest. The idle thread has no level: it is never
/// queued and runs only when every level is empty.
pub const PRIORITIES: usize = 8;

//! One CPU's scheduler: its run queue, its current thread and the current thread's time slice.
//!
//! Owns the policy "who runs next on this CPU": the highest ready priority first, round-robin
//! inside a priority with a fixed slice, a thread that used up its slice going to the back of its
//! level. It is plain data: the caller keeps it behind an interrupts-off lock per CPU and performs
//! the thread-table transitions and the context switch itself. It must never touch the thread
//! table, allocate, or pick a thread by its slot number.
//!
//! # How the kernel drives it
//!
//! ```text
//! timer tick:   if sched.tick() { table.preempt(cur); next = sched.switch_out(true); switch }
//! yield:        table.preempt(cur); next = sched.switch_out(true); switch
//! block:        if table.block(cur)? { next = sched.switch_out(false); switch }  // else re-check
//! exit:         table.terminate(cur, code); next = sched.switch_out(false); switch
//! wake(id):     if table.wake(id)? { if sched_of(id).enqueue(id, prio)? { reschedule/IPI } }
//! after switch: table.left_cpu(prev)  // stack no longer in use; true: free prev's stack
//! ```
//!
//! where `switch` means `table.start_running(next)` and a context switch to `next`, or to the
//! CPU's idle thread when `switch_out` returned `None` (the idle thread is never queued).
//!
//! # SMP
//!
//! Each CPU has its own `CpuScheduler` (per-CPU queues: no global lock on the switch path). A
//! thread has a home CPU, kept in the kernel's per-thread payload; a wake-up enqueues it on its home
//! CPU's scheduler under that CPU's lock and sends that CPU a reschedule IPI when
//! [`CpuScheduler::enqueue`] says it should preempt. Because a thread is only ever queued on and
//! run by its home CPU, `left_cpu` after a switch cannot race with another CPU's `start_running`
//! of the same thread. Migration (load balancing) will take a thread out of one queue with
//! [`CpuScheduler::remove`] under both CPUs' locks, change its home and enqueue it on the other;
//! it must only move a thread whose on-CPU mark is clear.

use super::PRIORITIES;
use super::run_queue::{QueueError, RunQueue};
use crate::thread::ThreadId;

/// Default time slice, in timer ticks.
pub const SLICE_TICKS: u32 = 10;

/// The scheduling state of one CPU.
#[derive(Debug, Clone)]
pub struct CpuScheduler {
    queue: RunQueue,
    /// The thread on this CPU and its priority; `None` while the idle thread runs.
    current: Option<(ThreadId, u8)>,
    slice_ticks: u32,
    /// Ticks left in the current thread's slice (0: used up).
    slice_left: u32,
    /// Dispatches so far (each `switch_out` that picked a thread), for progress watchdogs.
    dispatches: u64,
}

impl Default for CpuScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuScheduler {
    /// An idle CPU with an empty queue and [`SLICE_TICKS`]-tick slices.
    #[must_use]
    pub const fn new() -> Self {
        Self::with_slice_ticks(SLICE_TICKS)
    }

    /// An idle CPU with an empty queue and `slice_ticks`-tick slices (at least 1).
    #[must_use]
    pub const fn with_slice_ticks(slice_ticks: u32) -> Self {
        let slice_ticks = if slice_ticks == 0 { 1 } else { slice_ticks };
        Self {
            queue: RunQueue::new(),
            current: None,
            slice_ticks,
            slice_left: 0,
            dispatches: 0,
        }
    }

    /// The thread on this CPU and its priority; `None` while idle.
    #[must_use]
    pub const fn current(&self) -> Option<(ThreadId, u8)> {
        self.current
    }

    /// Whether the idle thread runs (no current thread).
    #[must_use]
    pub const fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// Ticks left in the current thread's slice.
    #[must_use]
    pub const fn slice_left(&self) -> u32 {
        self.slice_left
    }

    /// Threads picked to run so far.
    #[must_use]
    pub const fn dispatches(&self) -> u64 {
        self.dispatches
    }

    /// The ready threads waiting for this CPU.
    #[must_use]
    pub const fn queue(&self) -> &RunQueue {
        &self.queue
    }

    /// Makes a thread that is already running on this CPU (the boot thread) its current thread,
    /// with a fresh slice. Refused if the CPU already has one.
    pub fn adopt(&mut self, id: ThreadId, prio: u8) -> Result<(), QueueError> {
        if self.current.is_some() {
            return Err(QueueError::NotIdle);
        }
        if prio as usize >= PRIORITIES {
            return Err(QueueError::InvalidPriority);
        }
        self.current = Some((id, prio));
        self.slice_left = self.slice_ticks;
        Ok(())
    }

    /// Queues a ready thread (new or woken) at the back of its priority level.
    ///
    /// Returns `Ok(true)` when it should preempt what runs now (the CPU is idle, or the new
    /// thread's priority is higher than the current one's): the caller reschedules now (or sends
    /// this CPU an IPI) instead of waiting for the end of the slice.
    pub fn enqueue(&mut self, id: ThreadId, prio: u8) -> Result<bool, QueueError> {
        if self.current.is_some_and(|(cur, _)| cur == id) {
            return Err(QueueError::AlreadyQueued);
        }
        self.queue.push_back(id, prio)?;
        Ok(self.current.is_none_or(|(_, cur_prio)| prio > cur_prio))
    }

    /// Takes a queued thread out (killed, re-prioritised, migrated). False if it was not queued.
    pub fn remove(&mut self, id: ThreadId) -> bool {
        self.queue.remove(id)
    }

    /// One timer tick elapsed on this CPU. Returns true when the current thread should be
    /// preempted now:
    ///
    /// - a thread of higher priority is waiting (whatever is left of the slice), or
    /// - the slice is used up and a thread of at least the same priority is waiting, or
    /// - the CPU is idle and a thread is waiting.
    ///
    /// A thread whose slice is used up but that has no equal-or-higher competitor keeps running
    /// with its slice at 0, so it yields at the first tick after such a thread arrives.
    pub fn tick(&mut self) -> bool {
        let Some((_, cur_prio)) = self.current else {
            return !self.queue.is_empty();
        };
        self.slice_left = self.slice_left.saturating_sub(1);
        match self.queue.highest_priority() {
            None => false,
            Some(waiting) => waiting > cur_prio || (self.slice_left == 0 && waiting >= cur_prio),
        }
    }

    /// The IPC fast path: the current thread has blocked and `next` (woken by the same
    /// operation, never queued) becomes current at once, on what is left of the slice, so a pair
    /// of threads calling each other shares one slice and cannot starve the queue. The caller
    /// checks that no queued thread has a higher priority than `next`.
    pub fn hand_off(&mut self, next: ThreadId, prio: u8) {
        self.current = Some((next, prio));
        self.dispatches += 1;
    }

    /// The current thread stops running: it goes to the back of its level if `still_runnable`
    /// (preempted, yielded) or is dropped (blocked, terminated). Then the head of the highest
    /// non-empty level becomes current with a fresh slice and is returned; `None` means run the idle
    /// thread.
    ///
    /// Going to the back means a thread that used its slice waits behind every thread of its level
    /// that was already waiting: with `n` ready threads at the top level, each runs within `n`
    /// slices, whatever their slot numbers.
    pub fn switch_out(&mut self, still_runnable: bool) -> Option<(ThreadId, u8)> {
        if let Some((id, prio)) = self.current.take()
            && still_runnable
        {
            // Cannot fail: the priority was accepted when the thread was queued or adopted, and
            // `enqueue` refuses to queue the current thread, so it is not queued already.
            let requeued = self.queue.push_back(id, prio);
            debug_assert!(
                requeued.is_ok(),
                "current thread {id} could not be requeued: {requeued:?}"
            );
        }
        self.current = self.queue.pop_highest();
        if self.current.is_some() {
            self.slice_left = self.slice_ticks;
            self.dispatches += 1;
        } else {
            self.slice_left = 0;
        }
        self.current
    }
}

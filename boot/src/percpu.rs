//! What every layer may ask about the CPU it runs on: the thread running there.
//!
//! Owns the running thread's ID. The scheduler writes it at each switch; the trace ring and the
//! lock's owner records read it. It lives below both so that neither imports the other (one CPU
//! today: the SMP work turns it into one slot per CPU). It must never take a lock.

use core::sync::atomic::{AtomicU64, Ordering};

/// Raw ID of the thread running on this CPU (0 before the scheduler starts).
static CURRENT: AtomicU64 = AtomicU64::new(0);

/// The running thread's raw ID (0 before threads exist).
#[inline(always)]
pub fn current_raw() -> u64 {
    CURRENT.load(Ordering::Relaxed)
}

/// Records that `raw` runs on this CPU from now on (the scheduler, interrupts masked).
#[inline(always)]
pub fn set_current(raw: u64) {
    CURRENT.store(raw, Ordering::Relaxed);
}

//! The kernel's thread control blocks: one [`Tcb`] per thread slot, in a static table.
//!
//! Owns the storage of every thread's record and the architecture's part of it (the FP/SIMD save
//! area, which the context switch writes through a raw pointer). kernel-core defines the record
//! and documents who writes each field; this module only places the records and hands out the
//! FP area under the rule below. It must never be the place where a thread's state changes: the
//! scheduler and the IPC glue do that.

use core::cell::UnsafeCell;
use kernel_core::hal::{FP_AREA_BYTES, FpArea};
use kernel_core::thread::{MAX_THREADS, Tcb, ThreadId};

/// The FP/SIMD state of a slot's user thread while it is switched out.
#[derive(Debug)]
pub struct FpSlot(UnsafeCell<FpArea>);

// SAFETY: a slot's area is touched only by that slot's claimer before it is published and by the
// switches into and out of its thread, which run with interrupts masked on the one CPU that runs
// it: never two at a time.
unsafe impl Sync for FpSlot {}

impl FpSlot {
    const fn new() -> Self {
        Self(UnsafeCell::new(FpArea([0; FP_AREA_BYTES])))
    }

    /// The area.
    ///
    /// # Safety
    /// The caller must be the only one touching this slot's area: its claimer before the slot is
    /// published, or a switch into or out of its thread (interrupts masked).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn area(&self) -> &mut FpArea {
        // SAFETY: exclusive access is guaranteed by the caller.
        unsafe { &mut *self.0.get() }
    }
}

/// One thread control block per thread slot.
pub type ThreadBlock = Tcb<FpSlot>;

/// Every slot's record, indexed by [`ThreadId::index`].
pub static TCBS: [ThreadBlock; MAX_THREADS] = [const { Tcb::new(FpSlot::new()) }; MAX_THREADS];

/// The record of `id`'s slot (whichever thread occupies it: the caller knows it is `id`).
#[inline(always)]
pub fn tcb(id: ThreadId) -> &'static ThreadBlock {
    &TCBS[id.index()]
}

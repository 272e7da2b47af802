//! This CPU's identity and its interrupt mask (PSTATE.I).
//!
//! Owns every change of PSTATE.I outside exception entry and return: the kernel's critical
//! sections mask IRQs with [`disable_interrupts`]/[`restore_interrupts`], the idle loop waits
//! with [`wait_for_interrupt`]. Only the I bit is ever changed here: D, A and F stay masked as
//! the entry code left them (the kernel takes no debug exceptions, reports an SError only when
//! it is synchronised by an exception, and routes no interrupt to FIQ: see `gic.rs`).

use core::arch::asm;

/// PSTATE.I in the DAIF register's layout.
const DAIF_I: u64 = 1 << 7;

/// This CPU's number. Only the boot CPU runs so far, so this is 0; with SMP each CPU will keep
/// a pointer to its per-CPU block in TPIDR_EL1 (set once when it comes up, never by user code)
/// and read its number from there, since MPIDR_EL1's affinity fields are not dense.
pub fn cpu_id() -> u32 {
    0
}

/// Masks IRQs and returns whether they were unmasked before.
pub fn disable_interrupts() -> bool {
    let daif: u64;
    // SAFETY: reading DAIF and setting PSTATE.I only changes whether this CPU takes IRQs. Not
    // `nomem`: the compiler must not move memory accesses out of the critical section it opens.
    unsafe {
        asm!(
            "mrs {daif}, daif",
            "msr daifset, #2",
            daif = out(reg) daif,
            options(nostack, preserves_flags)
        )
    };
    daif & DAIF_I == 0
}

/// Unmasks IRQs if `enabled` (what `disable_interrupts` returned); otherwise leaves them masked.
pub fn restore_interrupts(enabled: bool) {
    if enabled {
        // SAFETY: clearing PSTATE.I lets this CPU take IRQs, whose handler saves and restores
        // everything it touches. Not `nomem`: memory accesses of the critical section that
        // ends here must not move past it.
        unsafe { asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
    }
}

/// Called with IRQs masked: sleeps until an interrupt is pending, lets its handler run, and
/// returns with IRQs masked again.
///
/// `wfi` wakes on a pending interrupt even while PSTATE.I masks it, so an interrupt that
/// arrives between the caller's last check and the `wfi` is not lost: the `wfi` returns at once.
/// The `isb` after unmasking is a context synchronisation event, after which a pending unmasked
/// interrupt must have been taken, before the `msr daifset` masks IRQs again.
pub fn wait_for_interrupt() {
    // SAFETY: `dsb sy` and `wfi` only wait; unmasking IRQs for the window between `daifclr` and
    // `daifset` lets the IRQ handler run (it may switch threads and return here much later),
    // which is this function's purpose. Not `nomem`: the handler may change memory.
    unsafe {
        asm!(
            "dsb sy",
            "wfi",
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            options(nostack, preserves_flags)
        )
    };
}

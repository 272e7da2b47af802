//! Faults provoked on purpose, to test the trap path end to end.
//!
//! Owns the two functions whose names the test harness expects the trap pc to symbolize to:
//! `deliberate_unmapped_read` and `deliberate_undefined_instruction`. They must stay separate,
//! never-inlined functions, and must never be called except through `Platform::provoke`.

/// A kernel-half address no page table maps (see `layout.rs`).
const UNMAPPED: u64 = crate::layout::NEVER_MAPPED;

/// Reads from an unmapped kernel address: a translation-fault data abort.
#[inline(never)]
pub fn deliberate_unmapped_read() -> ! {
    // SAFETY: the read faults and the trap handler ends the boot, so no value is ever produced
    // and no memory is accessed; the volatile read keeps the compiler from removing it.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    panic!("read from unmapped {UNMAPPED:#x} returned {value:#x} instead of faulting");
}

/// Executes `udf #0`, an instruction the architecture defines as permanently undefined.
#[inline(never)]
pub fn deliberate_undefined_instruction() -> ! {
    // SAFETY: `udf` traps before it does anything; the trap handler ends the boot.
    unsafe { core::arch::asm!("udf #0", options(nomem, nostack)) };
    panic!("udf #0 returned instead of trapping");
}

//! Faults provoked on purpose so the boot tests can prove the trap report end to end.
//!
//! Owns the two functions whose names the test harness looks for in a symbolized report; they
//! are `#[inline(never)]` so the faulting instruction sits inside them. Nothing else may call
//! them: each ends the boot.

/// A canonical kernel-half address in PML4 slot 385, which no page table maps.
const UNMAPPED_KERNEL_ADDRESS: u64 = 0xffff_c0de_dead_b000;

/// Reads from an unmapped kernel address: a page fault the trap handler reports.
#[inline(never)]
pub fn deliberate_unmapped_read() -> ! {
    // SAFETY: not sound as a memory access, on purpose: the address is canonical and unmapped,
    // so the read faults before it produces a value, and the page-fault report ends the boot.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED_KERNEL_ADDRESS as *const u64) };
    panic!("read of unmapped address {UNMAPPED_KERNEL_ADDRESS:#x} returned {value:#x}")
}

/// Executes `ud2`: an invalid-opcode exception the trap handler reports.
#[inline(never)]
pub fn deliberate_undefined_instruction() -> ! {
    // SAFETY: `ud2` raises #UD, which the trap handler turns into a report that ends the boot;
    // no state is changed before that.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    panic!("ud2 did not trap")
}

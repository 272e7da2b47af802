//! Probing kernel addresses under fault recovery.
//!
//! Owns `Platform::probe`: one read, read-and-write-back, or call at a kernel address, with the
//! accessing instruction listed in the exception table so that an unmapped or forbidden address
//! comes back as `Err(ProbeFault)` instead of a fatal trap. Used by memory tests to prove W^X.
//! It must never be used on user addresses (that is `user_copy`'s job).

use core::arch::global_asm;
use kernel_core::hal::{Access, ProbeFault};

global_asm!(
    r#"
    .section .text.strait_probe, "ax"
    // Each routine: x0 = address; returns 0 when the access happened, 1 when it faulted.
    .global strait_probe_read
strait_probe_read:
1:  ldrb    w1, [x0]
    mov     x0, #0
    ret
    .pushsection .strait_extable, "a"
    .balign 8
    .quad   1b, strait_probe_faulted
    .popsection

    .global strait_probe_write
strait_probe_write:
1:  ldrb    w1, [x0]
2:  strb    w1, [x0]
    mov     x0, #0
    ret
    .pushsection .strait_extable, "a"
    .balign 8
    .quad   1b, strait_probe_faulted
    .quad   2b, strait_probe_faulted
    .popsection

    // The target must be a `ret`; an instruction abort there resumes at the fixup, found
    // through the link register (see extable.rs).
    .global strait_probe_execute
strait_probe_execute:
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
1:  blr     x0
    mov     x0, #0
    ldp     x29, x30, [sp], #16
    ret
    .pushsection .strait_extable, "a"
    .balign 8
    .quad   1b, 2f
    .popsection
2:  mov     x0, #1
    ldp     x29, x30, [sp], #16
    ret

strait_probe_faulted:
    mov     x0, #1
    ret
"#
);

unsafe extern "C" {
    fn strait_probe_read(addr: u64) -> u64;
    fn strait_probe_write(addr: u64) -> u64;
    fn strait_probe_execute(addr: u64) -> u64;
}

/// Performs `access` at kernel address `addr`; `Err(ProbeFault)` when it trapped.
pub fn probe(access: Access, addr: u64) -> Result<(), ProbeFault> {
    let faulted = match access {
        // SAFETY: the one-byte load is listed in the exception table, so a fault resumes at the
        // fixup with x0 = 1; a successful load has no effect.
        Access::Read => unsafe { strait_probe_read(addr) },
        // SAFETY: the load and the store of the same byte are listed; a successful pair leaves
        // memory unchanged (the caller must not probe memory another CPU writes concurrently).
        Access::Write => unsafe { strait_probe_write(addr) },
        // SAFETY: the caller guarantees `addr` holds a `ret` if it is executable, so the call
        // returns at once; a fault on fetching it is recovered through the listed `blr`.
        Access::Execute => unsafe { strait_probe_execute(addr) },
    };
    if faulted == 0 {
        Ok(())
    } else {
        Err(ProbeFault)
    }
}

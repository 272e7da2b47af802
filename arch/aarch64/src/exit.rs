//! How a boot ends: the emulator's exit status, or a CPU that stops for good.
//!
//! Owns the Arm semihosting call (`hlt #0xf000`; QEMU needs `-semihosting`) and its
//! `SYS_EXIT_EXTENDED` request, which makes QEMU exit with the kernel's status code. Without
//! semihosting the `hlt` is an undefined instruction: the trap handler recognises this one call
//! site and skips it, and `exit` falls back to PSCI `SYSTEM_OFF` for a passing run (QEMU then
//! exits 0) or to halting (so a failure can never look like a pass). This module must never
//! print the report of why the boot ends; callers do that first.

use crate::entry;
use crate::serial;
use core::arch::{asm, global_asm};
use kernel_core::boot_info::PsciConduit;
use kernel_core::hal::ExitStatus;

/// Semihosting operation: exit with a reason and a subcode (AArch64 form).
const SYS_EXIT_EXTENDED: u64 = 0x20;
/// Semihosting exit reason: the application exited normally; the subcode is its status.
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;
/// PSCI 0.2 function ID of SYSTEM_OFF.
const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

// `strait_semihosting_call(op, parameter) -> result`: an AAPCS64 function whose only instruction
// of interest is the `hlt`; `strait_semihosting_hlt` labels it for the trap handler.
global_asm!(
    r#"
    .section .text.strait_semihosting, "ax"
    .global strait_semihosting_call
    .global strait_semihosting_hlt
    .type strait_semihosting_call, %function
strait_semihosting_call:
strait_semihosting_hlt:
    hlt     #0xf000
    ret
    .size strait_semihosting_call, . - strait_semihosting_call
"#
);

unsafe extern "C" {
    fn strait_semihosting_call(op: u64, parameter: u64) -> u64;
    static strait_semihosting_hlt: u8;
}

/// Address of the semihosting `hlt`, the one undefined instruction the trap handler skips.
pub fn semihosting_trap_site() -> u64 {
    &raw const strait_semihosting_hlt as u64
}

/// Ends the boot with `status`: QEMU exits with its value (`ExitStatus::value`).
pub fn exit(status: ExitStatus) -> ! {
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, u64::from(status.value())];
    // SAFETY: SYS_EXIT_EXTENDED only reads the live two-word `block`; without semihosting the trap
    // handler skips the `hlt` and the call returns having changed only x0 and AAPCS64 scratch.
    unsafe { strait_semihosting_call(SYS_EXIT_EXTENDED, block.as_ptr() as u64) };
    serial::write(b"[exit] no semihosting (QEMU needs -semihosting to exit with a status)\n");
    if status == ExitStatus::Passed {
        system_off();
    }
    halt_forever()
}

/// Asks PSCI to power the machine off (QEMU exits 0); returns if there is no PSCI or it refuses.
fn system_off() {
    let Some(conduit) = entry::boot_info_if_ready().and_then(|info| info.psci) else {
        return;
    };
    match conduit {
        // SAFETY: SYSTEM_OFF either does not return or returns an error in x0; the SMC Calling
        // Convention lets the callee clobber x0-x17, which `clobber_abi("C")` declares.
        PsciConduit::Hvc => unsafe {
            asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, clobber_abi("C"), options(nostack))
        },
        // SAFETY: as for `hvc` above; the firmware is reached through `smc` instead.
        PsciConduit::Smc => unsafe {
            asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, clobber_abi("C"), options(nostack))
        },
    }
}

/// Masks every exception and sleeps forever.
pub fn halt_forever() -> ! {
    // SAFETY: masking D, A, I and F only changes which exceptions this CPU takes; nothing
    // runs after this but the `wfi` loop.
    unsafe { asm!("msr daifset, #0xf", options(nomem, nostack)) };
    loop {
        aarch64_cpu::asm::wfi();
    }
}

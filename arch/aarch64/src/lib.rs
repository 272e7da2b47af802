//! Strait's AArch64 support: Linux `Image` boot, EL2 -> EL1, the boot MMU, device tree, PL011,
//! exception vectors, semihosting exit.
//!
//! Owns everything that is specific to AArch64 and implements `kernel_core::hal::Platform` for
//! it as [`Machine`]. The kernel binary (`boot`) names this crate once and otherwise talks to it
//! only through that trait and [`entry_point!`]. Machine detail must never leak upwards: what
//! crosses the boundary is `BootInfo`, bytes for the console and an exit status.
//!
//! Boot path, in order: `entry` (Image header, EL2 -> EL1, `.bss`), `boot_mmu` (tables, MMU on),
//! `entry` again (higher half, `stacks`, `traps` vectors), `dtb` (via `dtb_copy`) and `serial`,
//! then the kernel's `main`. Afterwards: `traps` (with `extable` for the recoverable accesses of
//! `probe` and `user_copy`), `faults` for the deliberate ones, `exit`. `layout` holds the
//! addresses all of them derive from.
#![no_std]

mod boot_mmu;
mod dtb;
mod dtb_copy;
mod entry;
mod exit;
mod extable;
mod faults;
mod layout;
mod probe;
mod serial;
mod stacks;
mod traps;
mod user_copy;

use kernel_core::boot_info::BootInfo;
use kernel_core::hal::{
    Access, DeliberateFault, ExitStatus, Platform, ProbeFault, UserAccessError,
};

/// The AArch64 machine (QEMU `virt`), as the portable kernel sees it.
#[derive(Debug)]
pub struct Machine;

impl Platform for Machine {
    const NAME: &'static str = "aarch64";

    fn console_write(bytes: &[u8]) {
        serial::write(bytes);
    }

    fn boot_info() -> &'static BootInfo {
        entry::boot_info()
    }

    fn init_traps() -> Result<(), &'static str> {
        traps::init()
    }

    fn probe(access: Access, addr: u64) -> Result<(), ProbeFault> {
        probe::probe(access, addr)
    }

    fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), UserAccessError> {
        user_copy::copy_from_user(dst, src)
    }

    fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), UserAccessError> {
        user_copy::copy_to_user(dst, src)
    }

    fn provoke(fault: DeliberateFault) -> ! {
        match fault {
            DeliberateFault::UnmappedRead => faults::deliberate_unmapped_read(),
            DeliberateFault::UndefinedInstruction => faults::deliberate_undefined_instruction(),
        }
    }

    #[inline(always)]
    fn frame_pointer() -> u64 {
        let fp: u64;
        // SAFETY: copying x29 into a register has no side effects.
        unsafe {
            core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }

    fn read_stack_word(addr: u64) -> Option<u64> {
        read_stack_word(addr)
    }

    fn exit(status: ExitStatus) -> ! {
        exit::exit(status)
    }

    fn halt_forever() -> ! {
        exit::halt_forever()
    }
}

/// A word of the kernel image for the backtrace walker: `None` unless `addr` is 8-byte aligned,
/// the whole word lies inside `[__kernel_start, __kernel_end)`, which holds the boot and
/// exception stacks, and it is not in a stack's unmapped guard page.
fn read_stack_word(addr: u64) -> Option<u64> {
    let (start, end) = layout::kernel_image_virt();
    if !addr.is_multiple_of(8) || addr < start || addr.checked_add(8)? > end {
        return None;
    }
    if stacks::guard_page_of(addr).is_some() {
        return None;
    }
    // SAFETY: the word is aligned, lies inside the kernel image (text, data, bss and the boot
    // and exception stacks), which the boot tables map readable for the kernel's life, and is
    // not in one of the two unmapped guard pages (checked just above).
    Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
}

/// Declares the kernel's main function: `entry_point!(kernel_main)` with `fn kernel_main() -> !`.
/// The entry code calls it once the MMU, stack, vectors, boot information and console are ready.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn __strait_kernel_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}

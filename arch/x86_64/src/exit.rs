//! Ending a boot: QEMU's isa-debug-exit device, or a halted CPU.
//!
//! Owns port 0xf4. Writing v there makes QEMU exit with status `(v << 1) | 1`, which xtask decodes
//! (`test`, `bench` and `run`). Without the device the write does nothing and the CPU halts
//! instead, so the kernel never runs on past an exit.

use kernel_core::hal::ExitStatus;
use x86_64::instructions::{hlt, interrupts, port::Port};

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Exits QEMU with `status`.
pub fn exit(status: ExitStatus) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device (or nothing); the write cannot affect memory.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(status.value()) };
    halt_forever()
}

/// Masks interrupts and halts this CPU for good.
pub fn halt_forever() -> ! {
    interrupts::disable();
    loop {
        hlt();
    }
}

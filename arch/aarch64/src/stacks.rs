//! The boot and exception stacks and their guard pages.
//!
//! Owns where the two boot-time stacks live: in `.bss`, each directly above one page that the
//! boot tables leave unmapped (`boot_mmu` skips the `*_guard` symbols), so running off the
//! bottom of either faults at once instead of silently overwriting whatever `.bss` holds below.
//! The boot stack carries the kernel's `main`; the exception stack carries trap handling (see
//! `traps.rs`). The kernel's own tables (`kernel_space`) leave the guard pages unmapped as well.
//! This module must never hand out a stack to anything else: threads get their own (`kstack`).

use core::arch::global_asm;

/// Size of the boot stack (the kernel's `main` and everything it calls until threads exist).
const BOOT_STACK_SIZE: usize = 64 * 1024;
/// Size of the exception stack: a trap report formats text and walks a backtrace, nothing more.
const EXCEPTION_STACK_SIZE: usize = 16 * 1024;
const PAGE_SIZE: u64 = 4096;

global_asm!(
    r#"
    .section .bss.strait_stacks, "aw", %nobits
    .balign 4096
    .global strait_boot_stack_guard
strait_boot_stack_guard:
    .space  4096
    .space  {boot_stack_size}
    .global strait_boot_stack_top
strait_boot_stack_top:

    .balign 4096
    .global strait_exception_stack_guard
strait_exception_stack_guard:
    .space  4096
    .space  {exception_stack_size}
    .global strait_exception_stack_top
strait_exception_stack_top:
"#,
    boot_stack_size = const BOOT_STACK_SIZE,
    exception_stack_size = const EXCEPTION_STACK_SIZE,
);

const _: () = assert!(
    BOOT_STACK_SIZE.is_multiple_of(PAGE_SIZE as usize)
        && EXCEPTION_STACK_SIZE.is_multiple_of(PAGE_SIZE as usize)
);

unsafe extern "C" {
    static strait_boot_stack_guard: u8;
    static strait_exception_stack_guard: u8;
}

/// One of the two boot-time stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootStack {
    /// The boot CPU's stack (the kernel's `main`).
    Boot,
    /// The trap handler's stack.
    Exception,
}

impl BootStack {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BootStack::Boot => "boot stack",
            BootStack::Exception => "exception stack",
        }
    }
}

/// Which stack's guard page holds `addr`, if any.
pub fn guard_page_of(addr: u64) -> Option<BootStack> {
    let guards = [
        (&raw const strait_boot_stack_guard as u64, BootStack::Boot),
        (
            &raw const strait_exception_stack_guard as u64,
            BootStack::Exception,
        ),
    ];
    guards
        .into_iter()
        .find(|&(guard, _)| (guard..guard + PAGE_SIZE).contains(&addr))
        .map(|(_, stack)| stack)
}

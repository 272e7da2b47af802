//! The portable core of the Strait microkernel.
//!
//! # Design principles
//!
//! 1. **No architecture here.** This crate has no inline assembly and no `cfg(target_arch)`. What it
//!    needs from a machine it asks for through the small traits in [`hal`]; the arch crates
//!    implement them and the host tests implement them with fakes.
//! 2. **No unsafe code.** `#![forbid(unsafe_code)]`: every raw pointer, MMIO access and page-table
//!    write lives in an arch crate or in `boot`, next to the `// SAFETY:` argument that justifies it.
//! 3. **Tested on the host.** Every piece of logic here (memory-map arithmetic, the frame
//!    allocator, command-line parsing, the test runner and its console protocol) has unit tests that
//!    run with a plain `cargo test -p strait-kernel-core`.
//! 4. **Bad input is an error, never a panic.** Boot information, command lines and (later) syscall
//!    arguments are validated and rejected with a reason that ends up on the console.
//! 5. **Nothing hides a hang.** Every boot step reports itself with the console protocol in
//!    [`console`], so a missing line tells which step stopped.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod backtrace;
pub mod boot_info;
pub mod cap;
pub mod cmdline;
pub mod console;
pub mod frame_alloc;
pub mod hal;
pub mod id;
pub mod ipc;
pub mod lock;
pub mod memory_map;
pub mod object;
pub mod paging;
pub mod sched;
pub mod selftest;
pub mod stack_region;
mod sync;
pub mod thread;
pub mod trace;
pub mod trap_report;
pub mod watchdog;

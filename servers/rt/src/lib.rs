//! The Strait user runtime: what every user program links.
//!
//! Owns the boundary between a Rust program and the kernel, as seen from user space:
//!
//! - [`entry`](mod@entry): `_start` (per-architecture assembly), the program's `main` ([`entry!`]), the
//!   panic handler, and the trampoline of threads a program starts in its own address space
//!   ([`thread`]);
//! - [`syscall`](mod@syscall): the raw system-call instruction and one typed wrapper per
//!   [`abi::Syscall`];
//! - [`console`]: `print!`/`println!` through `DebugWrite`, whole lines per call;
//! - [`cycles`]: the cycle counter, for benchmarks;
//! - [`process`]: loading a static ELF from the initrd into a new address space;
//! - [`roles`]: the contract between a spawner and the `utest` helper (role numbers, the
//!   bootstrap page);
//! - [`echo`], [`fpu`]: the code the tests run on both sides (in `init` and in `utest`);
//! - [`text`]: a fixed-capacity text buffer (no allocator exists).
//!
//! It must never depend on the kernel's internals (only on [`abi`], the published contract),
//! never allocate, and never hide a failed system call: every wrapper returns the
//! [`abi::Error`] it got.
#![no_std]
#![deny(missing_docs)]

pub mod console;
pub mod cycles;
pub mod echo;
pub mod entry;
pub mod fpu;
pub mod process;
pub mod roles;
pub mod syscall;
pub mod text;
pub mod thread;

pub use abi;
pub use loader;

pub use syscall::*;

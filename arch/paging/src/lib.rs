//! The real page-table entry encodings of Strait's two architectures.
//!
//! Owns [`X86_64Format`] (4-level long-mode paging) and [`Aarch64Format`] (VMSAv8-64 stage 1,
//! 4 KiB granule, 48-bit addresses), the two implementations of kernel-core's
//! [`PageTableFormat`](kernel_core::paging::PageTableFormat). They live outside kernel-core
//! because kernel-core must never name an architecture, and outside the arch crates so that
//! they are tested on the host (`cargo test -p strait-arch-paging`), entry by entry and driven
//! through kernel-core's `Mapper` against emulated memory.
//!
//! This crate only turns values into values: it must never touch memory or a system register,
//! contain unsafe code, or use `cfg(target_arch)` (both formats build and test on any host).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod aarch64;
pub mod x86_64;

pub use aarch64::{Aarch64Format, MAIR_DEVICE_INDEX, MAIR_NORMAL_INDEX, MAIR_VALUE};
pub use x86_64::X86_64Format;

#[cfg(test)]
mod conformance;

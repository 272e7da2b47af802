//! Loading programs on Strait: the initrd archive and static ELF executables.
//!
//! The boot loader hands the kernel an initrd: a cpio "newc" archive holding every program of the
//! first user environment. The kernel itself loads exactly one of them, `init`; every other program
//! is loaded by userspace (the process server), from the same archive or from elsewhere. Both sides
//! therefore share this crate:
//!
//! - [`cpio`] finds a file in the archive by name ([`cpio::Archive::find`]) without copying it;
//! - [`elf_image`] checks that the file is a static executable for this machine that fits the
//!   user address range, and turns it into a [`LoadPlan`]: which bytes of the file go to which
//!   pages, with which permissions, and where execution starts. It maps nothing itself.
//!
//! # Ground rules
//!
//! - `no_std`, no `alloc`, no `unsafe`: it links into the kernel (`x86_64-unknown-none`,
//!   `aarch64-unknown-none-softfloat`) and into bare user programs alike.
//! - **The input is untrusted.** An archive or executable may be truncated or hostile. Every size
//!   and offset is checked arithmetic, every slice is taken with `get`; no input makes this crate
//!   panic. Each rejected input gets its own error variant carrying the offending values, and its
//!   `Display` is one line meant for the console.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod cpio;
pub mod elf_image;

pub use cpio::{Archive, CpioError, Entry};
pub use elf_image::{
    ElfError, Limits, LoadPlan, MAX_PROGRAM_HEADERS, MAX_SEGMENTS, Machine, Segment, SegmentFlags,
    plan, segment_bytes,
};

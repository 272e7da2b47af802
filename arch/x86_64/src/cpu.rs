//! CPU feature detection and the control-register bits that depend on it.
//!
//! Owns the CPUID queries the rest of the x86_64 crate needs (NX, 1 GiB pages, PCID, INVPCID,
//! SMEP, SMAP) and turns on the protections the CPU offers. Every feature is optional except NX
//! and long mode: the kernel must boot on `-cpu qemu64` (no PCID, SMEP or SMAP) and on
//! `-cpu max` alike, and say which it used.

use core::arch::x86_64::{__cpuid, __cpuid_count};
use spin::Once;
use x86_64::registers::control::{Cr4, Cr4Flags};

/// The optional features the kernel uses.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// Execute-disable bit in page tables (required).
    pub nx: bool,
    /// 1 GiB pages.
    pub huge_1g: bool,
    /// Process-context identifiers (tagged TLB entries).
    pub pcid: bool,
    /// The INVPCID instruction.
    pub invpcid: bool,
    /// Supervisor-mode execution prevention.
    pub smep: bool,
    /// Supervisor-mode access prevention.
    pub smap: bool,
}

static FEATURES: Once<Features> = Once::new();

fn detect() -> Features {
    // CPUID is always available in long mode and only reads identification registers.
    let basic = __cpuid(1);
    let extended = __cpuid(0x8000_0001);
    let max_leaf = __cpuid(0).eax;
    let structured = if max_leaf >= 7 {
        __cpuid_count(7, 0).ebx
    } else {
        0
    };
    Features {
        nx: extended.edx & (1 << 20) != 0,
        huge_1g: extended.edx & (1 << 26) != 0,
        pcid: basic.ecx & (1 << 17) != 0,
        invpcid: structured & (1 << 10) != 0,
        smep: structured & (1 << 7) != 0,
        smap: structured & (1 << 20) != 0,
    }
}

/// The features of this CPU (detected once).
pub fn features() -> Features {
    *FEATURES.call_once(detect)
}

/// Non-zero once SMAP is on: the trap entry then executes `clac` (read by assembly, so a plain
/// byte; written once, before the first user thread exists).
pub static SMAP_ON: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Turns on SMEP and SMAP where the CPU has them, so the kernel can neither execute user pages
/// nor touch user data outside the audited copy routines. Returns what was enabled.
pub fn enable_user_access_protection() -> (bool, bool) {
    let features = features();
    let mut flags = Cr4::read();
    if features.smep {
        flags |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if features.smap {
        flags |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    // SAFETY: SMEP and SMAP only add checks on accesses to user pages; the kernel runs on
    // supervisor pages and reaches user memory only through `user_copy`, which sets RFLAGS.AC.
    unsafe { Cr4::write(flags) };
    if features.smap {
        SMAP_ON.store(1, core::sync::atomic::Ordering::Release);
    }
    (features.smep, features.smap)
}

//! The cycle counter, for benchmarks.
//!
//! Owns the one instruction sequence that reads it per architecture. Under QEMU with
//! `-icount shift=0` both counters advance by one per executed instruction, so benchmark numbers
//! ("ticks") are instruction counts: deterministic, and comparable between runs, not between
//! architectures. It must never be used for timeouts or wall-clock time (that is
//! [`clock_nanos`](crate::syscall::clock_nanos)).

/// Reads the cycle counter.
///
/// x86_64: `lfence; rdtsc; lfence`, so that the read is ordered after earlier instructions and
/// before later ones. AArch64: `isb; mrs PMCCNTR_EL0` (the kernel enables EL0 access to the cycle
/// counter; without it this instruction faults).
#[inline(always)]
#[must_use]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let low: u32;
        let high: u32;
        // SAFETY: `lfence` and `rdtsc` only read the time-stamp counter into edx:eax; they touch
        // no memory and no flags.
        unsafe {
            core::arch::asm!(
                "lfence",
                "rdtsc",
                "lfence",
                out("eax") low,
                out("edx") high,
                options(nomem, nostack, preserves_flags),
            );
        }
        (u64::from(high) << 32) | u64::from(low)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let count: u64;
        // SAFETY: `isb` and `mrs` of PMCCNTR_EL0 only read the cycle counter into a register (the
        // kernel grants EL0 access); they touch no memory and no flags.
        unsafe {
            core::arch::asm!(
                "isb",
                "mrs {count}, pmccntr_el0",
                count = out(reg) count,
                options(nomem, nostack, preserves_flags),
            );
        }
        count
    }
}

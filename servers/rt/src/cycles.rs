//! The cycle counter, for benchmarks.
//!
//! Owns the instruction sequences that read it per architecture: [`cycles`], and
//! [`time_check_loop`], which reads it twice around a loop of a known instruction count so that
//! a benchmark run can check what a tick is. Under QEMU with `-icount shift=0` both counters
//! advance by one per executed instruction (the kernel's included), so benchmark numbers
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

/// Iterations of [`time_check_loop`]'s loop.
pub const CHECK_LOOP_ITERATIONS: u64 = 1000;
/// Instructions of one iteration of that loop: decrement, branch back while not zero.
pub const CHECK_LOOP_BODY: u64 = 2;

/// The ticks [`time_check_loop`] counts besides its loop, when a tick is one instruction: the
/// instructions between its two counter reads that are not the loop, plus one for a read itself
/// (each read counts the instructions retired up to and including itself, or all those before
/// it: either way the difference counts exactly one of the two reads). Everything from the first
/// read to the second is one `asm!` block, so the compiler cannot add or remove an instruction
/// there; `llvm-objdump -d` of a program that calls it (`target/user/<target>/release/init`)
/// shows the sequence as written.
///
/// x86_64, 5: the `lfence` that closes the first read (`lfence; rdtsc; lfence`, as in
/// [`cycles`]), the two `mov`s that save its result from `eax`/`edx` (the second read writes
/// them again), and the second read's `lfence` and `rdtsc`.
#[cfg(target_arch = "x86_64")]
pub const CHECK_READ_OVERHEAD: u64 = 5;
/// The ticks [`time_check_loop`] counts besides its loop (see the x86_64 constant for the rule).
///
/// AArch64, 2: the second read, `isb; mrs` (the first read's `mrs` is the last instruction before
/// the loop, and its result is already in the register the block returns).
#[cfg(target_arch = "aarch64")]
pub const CHECK_READ_OVERHEAD: u64 = 2;

/// What [`time_check_loop`] returns when a tick is one executed instruction and nothing else ran
/// in between: the loop's instructions plus [`CHECK_READ_OVERHEAD`] (x86_64: 2,005; AArch64:
/// 2,002).
pub const CHECK_LOOP_TICKS: u64 = CHECK_LOOP_ITERATIONS * CHECK_LOOP_BODY + CHECK_READ_OVERHEAD;

/// Reads the counter, runs a loop of exactly [`CHECK_LOOP_ITERATIONS`] × [`CHECK_LOOP_BODY`]
/// instructions, reads it again, and returns the difference: [`CHECK_LOOP_TICKS`] if a tick is
/// one instruction and no interrupt (timer tick) landed in between, more if one did.
///
/// The reads are the same sequences as in [`cycles`], but everything between them is in the one
/// `asm!` block, so the count does not depend on code generation. The loop is shorter than a timer
/// tick under the benchmark clock (2,000 instructions against 1,000,000), so most calls see no
/// interrupt.
#[must_use]
pub fn time_check_loop() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let (start_low, start_high, end_low, end_high): (u32, u32, u32, u32);
        // `lfence`, `rdtsc` (counter into edx:eax), register `mov`s and a decrement loop.
        // SAFETY: registers only: it touches no memory and no stack, and the flags it changes
        // are not declared preserved.
        unsafe {
            core::arch::asm!(
                "lfence",
                "rdtsc",
                "lfence",
                "mov {start_low:e}, eax",
                "mov {start_high:e}, edx",
                "2:",
                "dec {n}",
                "jnz 2b",
                "lfence",
                "rdtsc",
                "lfence",
                n = inout(reg) CHECK_LOOP_ITERATIONS => _,
                start_low = out(reg) start_low,
                start_high = out(reg) start_high,
                out("eax") end_low,
                out("edx") end_high,
                options(nomem, nostack),
            );
        }
        let start = (u64::from(start_high) << 32) | u64::from(start_low);
        let end = (u64::from(end_high) << 32) | u64::from(end_low);
        end.wrapping_sub(start)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let (start, end): (u64, u64);
        // SAFETY: a register-only sequence: `isb`, `mrs` of PMCCNTR_EL0 (the kernel grants EL0
        // access) and a decrement loop that ends with its counter at zero. It touches no memory
        // and no stack; the flags it changes are not declared preserved.
        unsafe {
            core::arch::asm!(
                "isb",
                "mrs {start}, pmccntr_el0",
                "2:",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                "isb",
                "mrs {end}, pmccntr_el0",
                n = inout(reg) CHECK_LOOP_ITERATIONS => _,
                start = out(reg) start,
                end = out(reg) end,
                options(nomem, nostack),
            );
        }
        end.wrapping_sub(start)
    }
}

//! The kernel's trace ring and the `LockHal` that ties kernel-core's diagnostic spinlock to this
//! machine.
//!
//! Owns the one `PerCpuTrace` static and [`KLock`], the spinlock type the kernel uses. Recording
//! a trace event never locks or allocates, so it is allowed everywhere: interrupt handlers, the
//! context switch, the panic path. The lock reports go straight to the console device, never
//! through the logger, because the stuck lock may be the logger's own.

use crate::platform::Machine;
use crate::sched;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::hal::Platform;
use kernel_core::lock::{LockHal, SpinLock};
use kernel_core::trace::{EventKind, PerCpuTrace, TraceEvent};

/// CPUs the trace has rings for.
pub const TRACE_CPUS: usize = 4;
/// Events kept per CPU.
pub const TRACE_EVENTS: usize = 512;

/// The per-CPU trace rings.
pub static TRACE: PerCpuTrace<TRACE_CPUS, TRACE_EVENTS> = PerCpuTrace::new();

/// Lock-contention reports printed so far (the `lock_diagnostics` test counts them).
pub static LOCK_REPORTS: AtomicU64 = AtomicU64::new(0);
/// Time of the latest lock report, in monotonic nanoseconds.
pub static LOCK_REPORT_AT: AtomicU64 = AtomicU64::new(0);

/// Records an event on this CPU.
pub fn record(kind: EventKind, a: u64, b: u64) {
    let cpu = Machine::cpu_id();
    TRACE.record(
        cpu,
        TraceEvent {
            timestamp: Machine::now_ns(),
            cpu,
            kind,
            a,
            b,
        },
    );
}

/// Writes straight to the console device: no lock, no buffering (panic and lock reports).
#[derive(Debug)]
pub struct RawConsole;

impl Write for RawConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        Machine::console_write(s.as_bytes());
        Ok(())
    }
}

/// Prints the trace rings and the lock call-site table (for `cargo xtask trace`).
pub fn dump_raw() {
    let _ = TRACE.dump(&mut RawConsole);
    let _ = kernel_core::lock::write_call_sites(&mut RawConsole);
}

/// The kernel's `LockHal`.
#[derive(Debug)]
pub struct KernelLockHal;

impl LockHal for KernelLockHal {
    fn cpu() -> u32 {
        Machine::cpu_id()
    }

    fn thread() -> u64 {
        sched::current_raw()
    }

    fn now_ns() -> u64 {
        Machine::now_ns()
    }

    fn interrupts_disable() -> bool {
        Machine::disable_interrupts()
    }

    fn interrupts_restore(was_enabled: bool) {
        Machine::restore_interrupts(was_enabled);
    }

    fn report(args: fmt::Arguments<'_>) {
        LOCK_REPORT_AT.store(Machine::now_ns(), Ordering::Relaxed);
        LOCK_REPORTS.fetch_add(1, Ordering::Relaxed);
        let _ = RawConsole.write_fmt(args);
    }

    fn trace(event: TraceEvent) {
        TRACE.record(event.cpu, event);
    }
}

/// The kernel's spinlock: records its owner and explains a wait that lasts too long.
pub type KLock<T> = SpinLock<T, KernelLockHal>;

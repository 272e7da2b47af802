//! The kernel's trace ring and the `LockHal` that ties kernel-core's diagnostic spinlock to this
//! machine.
//!
//! Owns the one `PerCpuTrace` static and [`KLock`], the spinlock type the kernel uses. Recording
//! a trace event never locks or allocates, so it is allowed everywhere: interrupt handlers, the
//! context switch, the panic path. The lock reports go straight to the console device, never
//! through the logger, because the stuck lock may be the logger's own.

use crate::platform::Machine;
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

/// Lock-contention reports printed so far (a statistic kept in every kernel, written only on
/// the cold report path; the `lock_diagnostics` test counts them).
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
        #[cfg(feature = "testing")]
        capture::copy(s.as_bytes());
        Machine::console_write(s.as_bytes());
        Ok(())
    }
}

/// Test boots: a copy of what [`RawConsole`] printed while a test armed it, so that the test can
/// check the text of a lock or watchdog report (which never reaches the logger's buffer). As
/// lock-free as the writes it copies: a writer reserves its bytes with one `fetch_add`.
#[cfg(feature = "testing")]
pub mod capture {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

    /// Bytes kept: a report's first lines (the watchdog's trace dump that follows is cut off).
    const BYTES: usize = 4096;

    static ARMED: AtomicBool = AtomicBool::new(false);
    static LEN: AtomicUsize = AtomicUsize::new(0);
    static TEXT: [AtomicU8; BYTES] = [const { AtomicU8::new(0) }; BYTES];

    /// Starts a capture, dropping what an earlier one kept.
    pub fn start() {
        ARMED.store(false, Ordering::SeqCst);
        LEN.store(0, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
    }

    /// Appends `bytes` while armed (whatever lies past [`BYTES`] is dropped).
    pub(super) fn copy(bytes: &[u8]) {
        if !ARMED.load(Ordering::Acquire) {
            return;
        }
        let at = LEN.fetch_add(bytes.len(), Ordering::AcqRel);
        for (cell, &byte) in TEXT.iter().skip(at).zip(bytes) {
            cell.store(byte, Ordering::Relaxed);
        }
    }

    /// Ends the capture and returns what it kept (the first [`BYTES`] bytes). Writers must have
    /// finished (a report is printed whole before the count a test waits for moves).
    pub fn stop() -> String {
        ARMED.store(false, Ordering::SeqCst);
        let len = LEN.load(Ordering::Acquire).min(BYTES);
        let bytes: Vec<u8> = TEXT[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
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
        crate::percpu::current_raw()
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

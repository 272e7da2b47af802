//! The scheduling watchdog: notices a CPU that stopped making scheduling decisions while
//! threads were waiting to run.
//!
//! Owns the stall rule and the text of the watchdog dump:
//!
//! ```text
//! [watchdog] cpu1 made no scheduling progress for 2004 ms (since t=1000000000) while threads were ready
//! [watchdog] state at t=3004000000
//! [watchdog] cpu0 ok: 1234 decisions, last progress seen 3 ms ago; <per-CPU state from the caller>
//! [watchdog] cpu1 STALLED: 77 decisions, last progress seen 2004 ms ago; <...>
//! [watchdog] threads
//! <thread table from the caller>
//! <trace dump from the caller>
//! [watchdog] end
//! ```
//!
//! The scheduler calls [`Watchdog::progress`] at every scheduling decision; the timer interrupt
//! calls [`Watchdog::check`]. A CPU that runs with interrupts masked cannot check itself: any
//! other CPU's timer may call `check` for it (the state is atomics, checks may race). This module
//! only counts and compares: it must never print on its own, take a lock, allocate or read the
//! clock (the caller passes the time), so it is safe in the timer interrupt.

use crate::trace::{EventKind, TraceEvent};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How long a CPU may go without a scheduling decision while threads are ready before it is
/// reported: far beyond any time slice, short enough to report within a test's timeout.
pub const STALL_NS: u64 = 2_000_000_000;

/// A CPU found stalled by [`Watchdog::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// The stalled CPU.
    pub cpu: u32,
    /// When the watchdog last saw it make progress (or have nothing to run), in monotonic ns.
    pub since_ns: u64,
    /// When the stall was detected.
    pub now_ns: u64,
}

impl Stall {
    /// How long the CPU has made no progress.
    pub fn stalled_ns(&self) -> u64 {
        self.now_ns.saturating_sub(self.since_ns)
    }

    /// The trace event of this stall, recorded by `recording_cpu`.
    pub fn event(&self, recording_cpu: u32) -> TraceEvent {
        TraceEvent {
            timestamp: self.now_ns,
            cpu: recording_cpu,
            kind: EventKind::Watchdog,
            a: u64::from(self.cpu),
            b: self.stalled_ns(),
        }
    }
}

impl fmt::Display for Stall {
    /// The report line (see the module documentation), without a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[watchdog] cpu{} made no scheduling progress for {} ms (since t={}) while threads \
             were ready",
            self.cpu,
            self.stalled_ns() / 1_000_000,
            self.since_ns
        )
    }
}

/// What the watchdog knows about one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuState {
    /// Scheduling decisions so far.
    pub progress: u64,
    /// When a check last saw progress (or nothing ready); `None` before the first check.
    pub since_ns: Option<u64>,
    /// A stall was reported and no progress was seen since.
    pub stalled: bool,
}

/// `since` value before the first check.
const NOT_STARTED: u64 = u64::MAX;

struct CpuWatch {
    /// Scheduling decisions: the only thing the hot path touches (one relaxed increment).
    progress: AtomicU64,
    /// `progress` as the last check saw it.
    seen: AtomicU64,
    /// Time of the last check that saw progress or nothing ready.
    since: AtomicU64,
    /// The current stall was reported; cleared by progress.
    reported: AtomicBool,
}

impl CpuWatch {
    const fn new() -> CpuWatch {
        CpuWatch {
            progress: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            since: AtomicU64::new(NOT_STARTED),
            reported: AtomicBool::new(false),
        }
    }
}

/// Per-CPU scheduling-progress watch. `const`-constructible, so it can be a `static`.
pub struct Watchdog<const CPUS: usize> {
    cpus: [CpuWatch; CPUS],
}

impl<const CPUS: usize> fmt::Debug for Watchdog<CPUS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((0..CPUS as u32).filter_map(|cpu| self.state(cpu)))
            .finish()
    }
}

impl<const CPUS: usize> Default for Watchdog<CPUS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize> Watchdog<CPUS> {
    /// A watchdog with no progress recorded and no check done.
    pub const fn new() -> Self {
        Watchdog {
            cpus: [const { CpuWatch::new() }; CPUS],
        }
    }

    fn watch(&self, cpu: u32) -> Option<&CpuWatch> {
        self.cpus.get(usize::try_from(cpu).ok()?)
    }

    /// Notes a scheduling decision on `cpu` (call it at every one: picking the next thread,
    /// including picking the same one again or the idle thread). A CPU beyond `CPUS` is ignored.
    pub fn progress(&self, cpu: u32) {
        if let Some(w) = self.watch(cpu) {
            w.progress.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks `cpu` at time `now_ns` (monotonic). `has_ready_threads`: whether threads are
    /// waiting for that CPU. Returns a [`Stall`] once per stall: when no progress was seen for
    /// [`STALL_NS`] while threads were ready. Progress, or nothing to run, re-arms it.
    ///
    /// The resolution is the check period: `since_ns` is the last check that saw the CPU healthy.
    pub fn check(&self, cpu: u32, now_ns: u64, has_ready_threads: bool) -> Option<Stall> {
        let w = self.watch(cpu)?;
        let progress = w.progress.load(Ordering::Relaxed);
        let moved = w.seen.swap(progress, Ordering::Relaxed) != progress;
        let since = w.since.load(Ordering::Relaxed);
        // A clock that went backwards (`now < since`) restarts the watch rather than misfiring.
        if moved || !has_ready_threads || since == NOT_STARTED || now_ns < since {
            w.since.store(now_ns, Ordering::Relaxed);
            w.reported.store(false, Ordering::Relaxed);
            return None;
        }
        // `swap`: of two CPUs checking the same stalled CPU at once, one reports.
        if now_ns - since >= STALL_NS && !w.reported.swap(true, Ordering::Relaxed) {
            return Some(Stall {
                cpu,
                since_ns: since,
                now_ns,
            });
        }
        None
    }

    /// What the watchdog knows about `cpu`.
    pub fn state(&self, cpu: u32) -> Option<CpuState> {
        let w = self.watch(cpu)?;
        let since = w.since.load(Ordering::Relaxed);
        Some(CpuState {
            progress: w.progress.load(Ordering::Relaxed),
            since_ns: (since != NOT_STARTED).then_some(since),
            stalled: w.reported.load(Ordering::Relaxed),
        })
    }

    /// Prints the per-CPU state, the thread table and the trace (see the module documentation).
    ///
    /// `cpu_state(cpu, out)` appends what the scheduler knows to each CPU's line (current thread,
    /// ready count); `threads(out)` prints the thread table; `trace(out)` prints the trace dump
    /// (`PerCpuTrace::dump` and `lock::write_call_sites`). They run in the caller's context, so
    /// from the timer interrupt they must be lock-free too.
    pub fn dump(
        &self,
        out: &mut dyn Write,
        now_ns: u64,
        mut cpu_state: impl FnMut(u32, &mut dyn Write) -> fmt::Result,
        threads: impl FnOnce(&mut dyn Write) -> fmt::Result,
        trace: impl FnOnce(&mut dyn Write) -> fmt::Result,
    ) -> fmt::Result {
        writeln!(out, "[watchdog] state at t={now_ns}")?;
        for cpu in 0..CPUS as u32 {
            let Some(state) = self.state(cpu) else { break };
            let verdict = if state.stalled { "STALLED" } else { "ok" };
            write!(
                out,
                "[watchdog] cpu{cpu} {verdict}: {} decisions, ",
                state.progress
            )?;
            match state.since_ns {
                Some(since) => write!(
                    out,
                    "last progress seen {} ms ago; ",
                    now_ns.saturating_sub(since) / 1_000_000
                )?,
                None => write!(out, "never checked; ")?,
            }
            cpu_state(cpu, out)?;
            writeln!(out)?;
        }
        writeln!(out, "[watchdog] threads")?;
        threads(out)?;
        trace(out)?;
        writeln!(out, "[watchdog] end")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};

    const MS: u64 = 1_000_000;

    #[test]
    fn progress_keeps_a_busy_cpu_quiet() {
        let wd = Watchdog::<2>::new();
        for tick in 0..10_000 {
            wd.progress(0);
            assert_eq!(wd.check(0, tick * 10 * MS, true), None);
        }
    }

    #[test]
    fn an_idle_cpu_is_never_stalled() {
        let wd = Watchdog::<1>::new();
        for tick in 0..1_000 {
            assert_eq!(wd.check(0, tick * 10 * MS, false), None);
        }
    }

    #[test]
    fn a_stall_is_reported_once_and_re_armed_by_progress() {
        let wd = Watchdog::<2>::new();
        wd.progress(1);
        assert_eq!(wd.check(1, 100 * MS, true), None); // first check: starts the watch
        // No decision any more while threads are ready.
        assert_eq!(wd.check(1, 100 * MS + STALL_NS - 1, true), None);
        let stall = wd.check(1, 100 * MS + STALL_NS, true).unwrap();
        assert_eq!(
            stall,
            Stall {
                cpu: 1,
                since_ns: 100 * MS,
                now_ns: 100 * MS + STALL_NS
            }
        );
        assert_eq!(
            stall.to_string(),
            "[watchdog] cpu1 made no scheduling progress for 2000 ms (since t=100000000) while \
             threads were ready"
        );
        assert_eq!(
            stall.event(0),
            TraceEvent {
                timestamp: 100 * MS + STALL_NS,
                cpu: 0,
                kind: EventKind::Watchdog,
                a: 1,
                b: STALL_NS
            }
        );
        // Once only.
        for t in 1..100 {
            assert_eq!(wd.check(1, 100 * MS + STALL_NS + t * 10 * MS, true), None);
        }
        assert!(wd.state(1).unwrap().stalled);
        // Progress re-arms; a second stall is reported again, from the new start.
        wd.progress(1);
        assert_eq!(wd.check(1, 5_000 * MS, true), None);
        assert!(!wd.state(1).unwrap().stalled);
        assert_eq!(
            wd.check(1, 5_000 * MS + STALL_NS, true).unwrap().since_ns,
            5_000 * MS
        );
        // The other CPU was never involved.
        assert_eq!(
            wd.state(0).unwrap(),
            CpuState {
                progress: 0,
                since_ns: None,
                stalled: false
            }
        );
    }

    #[test]
    fn the_stall_clock_starts_at_the_last_healthy_check() {
        let wd = Watchdog::<1>::new();
        assert_eq!(wd.check(0, 0, false), None);
        // Idle for a long time: never a stall.
        assert_eq!(wd.check(0, 10_000 * MS, false), None);
        // Then a thread becomes ready and nobody schedules it.
        assert_eq!(wd.check(0, 10_000 * MS + STALL_NS / 2, true), None);
        assert_eq!(wd.check(0, 10_000 * MS + STALL_NS - 1, true), None);
        let stall = wd.check(0, 10_000 * MS + STALL_NS, true).unwrap();
        assert_eq!(stall.since_ns, 10_000 * MS);
    }

    #[test]
    fn cpus_beyond_the_table_are_ignored() {
        let wd = Watchdog::<1>::new();
        wd.progress(5);
        assert_eq!(wd.check(5, 0, true), None);
        assert_eq!(wd.check(5, 10 * STALL_NS, true), None);
        assert_eq!(wd.state(5), None);
    }

    #[test]
    fn a_clock_going_backwards_restarts_the_watch() {
        let wd = Watchdog::<1>::new();
        assert_eq!(wd.check(0, 10 * STALL_NS, true), None);
        assert_eq!(wd.check(0, 0, true), None);
        assert_eq!(wd.check(0, STALL_NS - 1, true), None);
        assert!(wd.check(0, STALL_NS, true).is_some());
    }

    #[test]
    fn dump_prints_each_cpu_then_the_callers_tables() {
        let wd = Watchdog::<2>::new();
        wd.progress(0);
        wd.progress(0);
        wd.check(0, 1_000 * MS, true);
        wd.check(1, 1_000 * MS, true);
        assert!(wd.check(1, 1_000 * MS + STALL_NS, true).is_some());
        let mut out = String::new();
        wd.dump(
            &mut out,
            1_000 * MS + STALL_NS,
            |cpu, o| write!(o, "running {cpu}.1"),
            |o| writeln!(o, "thread 0.1 Running"),
            |o| writeln!(o, "[trace] begin\n[trace] end"),
        )
        .unwrap();
        assert_eq!(
            out,
            "[watchdog] state at t=3000000000\n\
             [watchdog] cpu0 ok: 2 decisions, last progress seen 2000 ms ago; running 0.1\n\
             [watchdog] cpu1 STALLED: 0 decisions, last progress seen 2000 ms ago; running 1.1\n\
             [watchdog] threads\n\
             thread 0.1 Running\n\
             [trace] begin\n\
             [trace] end\n\
             [watchdog] end\n"
        );
    }
}

//! In-kernel tests of threads, scheduling, time, logging and lock diagnostics.
//!
//! Owns the tests the thread issue names: `kthread_join`, `sched_fairness`, `sleep_accuracy`,
//! `log_from_irq`, `lock_diagnostics`, plus `watchdog_stall`. Each runs real kernel threads on
//! the preemptive scheduler and checks what it observed, never just that nothing crashed: slot
//! and frame counts must come back, counters must advance, reports must appear in time.

use super::check;
use crate::ktrace::{KLock, LOCK_REPORT_AT, LOCK_REPORTS, capture};
use crate::memory::FRAMES;
use crate::platform::Machine;
use crate::sched::{self, NORMAL_PRIORITY, PREEMPT_OFF, THREADS, TICK_HZ, TICKS, WATCHDOG_REPORTS};
use crate::testing::TestEnv;
use crate::{kdebug, klog};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel_core::hal::Platform;
use kernel_core::lock::CONTENDED_REPORT_NS;
use kernel_core::sched::SLICE_TICKS;
use kernel_core::thread::ThreadId;
use kernel_core::watchdog::STALL_NS;

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
/// One timer tick. Sleepers, timed waits and the watchdog are only looked at by the tick, so
/// this is the resolution of every deadline the kernel keeps.
const TICK_NS: u64 = SECOND / TICK_HZ as u64;
/// Guest nanoseconds per executed instruction under the instruction-count clock (`-icount
/// shift=3`: 2^3 ns), the only clock timing bounds are asserted under.
const NS_PER_INSTRUCTION: u64 = 8;
/// The kernel's work between noticing a deadline in the tick and the woken code reading the
/// clock: the interrupt entry, the tick handler (timer queue, run queue, watchdog), a context
/// switch and the return from the sleep or wait. Measured from the tick's clock read to the
/// sleeper's: 9 us on x86_64, 12 us on AArch64 (1,100 and 1,500 instructions). Bounded by 6,250
/// instructions (50 us): room for four times more code on the path before a bound below is
/// wrong rather than the kernel, and still a twentieth of a tick.
const WAKE_PATH_NS: u64 = 6_250 * NS_PER_INSTRUCTION;

/// Free frames, with the kernel-stack cache emptied first (its stacks are kept for reuse, not
/// leaked).
fn free_frames() -> usize {
    sched::trim_stack_cache();
    FRAMES
        .lock_irqsave()
        .as_ref()
        .map_or(0, |f| f.free_frames())
}

/// Spawns, runs and joins 1,000 kernel threads in waves of 100; every exit code must come back,
/// and the free-slot and free-frame counts must return exactly to where they started.
pub fn kthread_join(_: &mut TestEnv) -> Result<(), String> {
    sched::reap();
    let (slots_before, frames_before) = (THREADS.free_count(), free_frames());
    for wave in 0..10u64 {
        let mut ids = Vec::with_capacity(100);
        for i in 0..100u64 {
            let arg = wave * 100 + i;
            let id = sched::spawn(NORMAL_PRIORITY, |x| (x * 3) as i64, arg)
                .map_err(|e| format!("wave {wave}, thread {i}: {e}"))?;
            ids.push((id, arg));
        }
        for (id, arg) in ids {
            let code = sched::join(id).map_err(|e| format!("join {id}: {e}"))?;
            check(code == (arg * 3) as i64, || {
                format!("thread {id} returned {code}")
            })?;
            check(sched::join(id).is_err(), || {
                format!("thread {id} could be joined twice")
            })?;
        }
    }
    sched::reap();
    let (slots, frames) = (THREADS.free_count(), free_frames());
    check(slots == slots_before, || {
        format!("{} slots free, {slots_before} before", slots)
    })?;
    check(frames == frames_before, || {
        format!("{} frames leaked", frames_before as i64 - frames as i64)
    })
}

/// CPU-bound threads of `sched_fairness`, all at one priority.
const WORKERS: usize = 16;
/// Index of the thread that blocks and wakes (after the CPU-bound ones).
const SLEEPY: usize = WORKERS;
/// Loop iterations (busy workers) or wake-ups (the sleepy one) of each thread.
static PROGRESS: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
static STOP: AtomicBool = AtomicBool::new(false);
/// Raw IDs of the workers, so the tick can tell whom it interrupted (0: not spawned).
static WORKER_IDS: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
/// Ticks of the window each worker was running at, and ticks any other thread was.
static CHARGED: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
static CHARGED_OTHER: AtomicU64 = AtomicU64::new(0);
/// Calls of [`charge_tick`] since it was installed.
static HOOK_CALLS: AtomicU64 = AtomicU64::new(0);
/// The sleepy worker's wake-ups at the start and at the end of the window.
static SLEEPY_WAKES: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static WINDOW_DONE: AtomicBool = AtomicBool::new(false);

/// One rotation: every busy worker runs one full slice.
const ROUND_TICKS: u64 = WORKERS as u64 * SLICE_TICKS as u64;
/// Ticks before the window opens: one rotation, so every worker has run and the test thread
/// has gone to sleep.
const SETTLE_TICKS: u64 = ROUND_TICKS;
/// Rotations the window lasts.
const ROUNDS: u64 = 5;
const WINDOW_TICKS: u64 = ROUNDS * ROUND_TICKS;
/// Each busy worker's fair share of the window.
const FAIR_TICKS: u64 = ROUNDS * SLICE_TICKS as u64;
/// How far a busy worker's ticks may be from [`FAIR_TICKS`] under the exact clock. Every slice
/// lasts exactly `SLICE_TICKS` of the ticks counted here (the scheduler counts the same ticks
/// down), and in `ROUNDS` whole rotations each worker gets `ROUNDS` slices. Only the window's two
/// edges cut a slice: the worker running when it opens keeps the rest of its slice, the one
/// running when it closes loses the rest of its; between them they gain or lose at most one
/// slice. The sleepy thread and the test thread only run for microseconds between two ticks and
/// take no tick from a worker's slice. A thread given two slices per rotation, or skipped once,
/// is off by `SLICE_TICKS` per rotation.
const FAIR_TOLERANCE_TICKS: u64 = SLICE_TICKS as u64;

fn busy_worker(index: u64) -> i64 {
    while !STOP.load(Ordering::Relaxed) {
        PROGRESS[index as usize].fetch_add(1, Ordering::Relaxed);
    }
    0
}

fn sleepy_worker(index: u64) -> i64 {
    while !STOP.load(Ordering::Relaxed) {
        PROGRESS[index as usize].fetch_add(1, Ordering::Relaxed);
        sched::sleep_ns(2 * MS);
    }
    0
}

/// The tick hook of `sched_fairness` (interrupt context): charges each tick of the window to the
/// thread it interrupted, which is the thread that ran during the tick period just ended.
fn charge_tick() {
    let call = HOOK_CALLS.fetch_add(1, Ordering::Relaxed);
    let end = SETTLE_TICKS + WINDOW_TICKS;
    if call == SETTLE_TICKS {
        SLEEPY_WAKES[0].store(PROGRESS[SLEEPY].load(Ordering::Relaxed), Ordering::Relaxed);
    }
    if call <= SETTLE_TICKS || call > end {
        return;
    }
    let running = sched::current_raw();
    match WORKER_IDS
        .iter()
        .position(|id| id.load(Ordering::Relaxed) == running)
    {
        Some(i) => CHARGED[i].fetch_add(1, Ordering::Relaxed),
        None => CHARGED_OTHER.fetch_add(1, Ordering::Relaxed),
    };
    if call == end {
        SLEEPY_WAKES[1].store(PROGRESS[SLEEPY].load(Ordering::Relaxed), Ordering::Relaxed);
        WINDOW_DONE.store(true, Ordering::Release);
    }
}

/// 16 CPU-bound threads in high slot numbers plus one that blocks and wakes every 2 ms, all at
/// one priority: over a window of `ROUNDS` rotations, the tick charges each tick to the thread
/// it interrupted. Under the exact clock every CPU-bound thread must get its fair share of
/// ticks within one slice, and the sleepy one must run once per rotation; otherwise only that
/// every thread ran in the window (no starvation), since a loaded host can drop ticks.
pub fn sched_fairness(env: &mut TestEnv) -> Result<(), String> {
    STOP.store(false, Ordering::Relaxed);
    WINDOW_DONE.store(false, Ordering::Relaxed);
    HOOK_CALLS.store(0, Ordering::Relaxed);
    CHARGED_OTHER.store(0, Ordering::Relaxed);
    for counter in PROGRESS.iter().chain(&WORKER_IDS).chain(&CHARGED) {
        counter.store(0, Ordering::Relaxed);
    }
    // Push the workers to high slot numbers: the scan this replaces starved high slots.
    let mut holders = Vec::new();
    while THREADS.free_count() > WORKERS + 8 {
        match THREADS.claim() {
            Ok(claim) => holders.push(claim),
            Err(_) => break,
        }
    }
    let mut ids: Vec<ThreadId> = Vec::new();
    let spawned = (0..WORKERS as u64)
        .map(|i| sched::spawn(NORMAL_PRIORITY, busy_worker, i))
        .chain([sched::spawn(NORMAL_PRIORITY, sleepy_worker, SLEEPY as u64)])
        .try_for_each(|spawned| {
            spawned.map(|id| {
                WORKER_IDS[ids.len()].store(id.as_u64(), Ordering::Relaxed);
                ids.push(id);
            })
        });
    let lowest = ids.iter().map(|id| id.index()).min().unwrap_or(0);
    if spawned.is_ok() {
        sched::set_tick_hook(Some(charge_tick));
        // One sleep over the whole window: the test thread cuts into the rotation only once.
        sched::sleep_ns((SETTLE_TICKS + WINDOW_TICKS) * TICK_NS);
        let deadline = Machine::now_ns() + 30 * SECOND;
        while !WINDOW_DONE.load(Ordering::Acquire) && Machine::now_ns() < deadline {
            sched::sleep_ns(ROUND_TICKS * TICK_NS);
        }
        sched::set_tick_hook(None);
    }
    STOP.store(true, Ordering::Relaxed);
    for &id in &ids {
        let _ = sched::join(id);
    }
    for claim in holders {
        THREADS.abandon(claim);
    }
    spawned?;
    check(WINDOW_DONE.load(Ordering::Acquire), || {
        format!(
            "the window of {WINDOW_TICKS} ticks never closed: {} tick hook calls in 30 s",
            HOOK_CALLS.load(Ordering::Relaxed)
        )
    })?;
    let charged: Vec<u64> = CHARGED.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let busy = &charged[..WORKERS];
    let (least, most) = (
        busy.iter().copied().min().unwrap_or(0),
        busy.iter().copied().max().unwrap_or(0),
    );
    let other = CHARGED_OTHER.load(Ordering::Relaxed);
    let sleepy_runs =
        SLEEPY_WAKES[1].load(Ordering::Relaxed) - SLEEPY_WAKES[0].load(Ordering::Relaxed);
    crate::kprintln!(
        "[sched] {} threads from slot {lowest} up, {WINDOW_TICKS}-tick window: CPU-bound {least}..{most} ticks each (fair {FAIR_TICKS}), sleepy ran {sleepy_runs} times for {} ticks, others {other} ticks",
        WORKERS + 1,
        charged[SLEEPY]
    );
    // Starvation, on any clock: every thread ran in a window of several rotations.
    if let Some(i) = busy.iter().position(|&ticks| ticks == 0) {
        return Err(format!(
            "thread {} got no tick in {WINDOW_TICKS} ticks",
            ids[i]
        ));
    }
    check(sleepy_runs > 0, || {
        format!(
            "the sleepy thread {} never ran in {WINDOW_TICKS} ticks",
            ids[SLEEPY]
        )
    })?;
    if !env.exact_clock {
        return Ok(());
    }
    for (i, &ticks) in busy.iter().enumerate() {
        check(ticks.abs_diff(FAIR_TICKS) <= FAIR_TOLERANCE_TICKS, || {
            format!(
                "thread {} got {ticks} of {WINDOW_TICKS} ticks, fair share {FAIR_TICKS} +- {FAIR_TOLERANCE_TICKS} (all: {busy:?})",
                ids[i]
            )
        })?;
    }
    // The sleepy thread wakes long before its turn comes round, so it runs once per rotation
    // (the window's edges may cut one run off or add one).
    check(sleepy_runs.abs_diff(ROUNDS) <= 1, || {
        format!(
            "the sleepy thread ran {sleepy_runs} times in {ROUNDS} rotations, expected {ROUNDS} +- 1"
        )
    })
}

/// Sleeps of 1, 10 and 100 ms never wake early; under the exact clock they wake at most
/// `LATE_BOUND` late.
pub fn sleep_accuracy(env: &mut TestEnv) -> Result<(), String> {
    /// Sleepers are only woken by the tick: a deadline just after a tick is seen one tick
    /// period later, and the sleeper then reads the clock after the wake path.
    const LATE_BOUND: u64 = TICK_NS + WAKE_PATH_NS;
    for ms in [1u64, 10, 100] {
        let start = Machine::now_ns();
        sched::sleep_ns(ms * MS);
        let slept = Machine::now_ns() - start;
        check(slept >= ms * MS, || {
            format!("{ms} ms sleep woke after {slept} ns, early")
        })?;
        let late = slept - ms * MS;
        crate::kprintln!("[sleep] {ms} ms -> {} us ({late} ns late)", slept / 1000);
        check(!env.exact_clock || late <= LATE_BOUND, || {
            format!(
                "{ms} ms sleep woke {late} ns late, bound {LATE_BOUND} ns (one tick and the wake path)"
            )
        })?;
    }
    Ok(())
}

const IRQ_LOG_TICKS: u64 = 10_000;
/// Lines the tick hook logged, and the tick numbers of its first and last.
static IRQ_LOGS: AtomicU64 = AtomicU64::new(0);
static FIRST_LOG_TICK: AtomicU64 = AtomicU64::new(0);
static LAST_LOG_TICK: AtomicU64 = AtomicU64::new(0);
static THREAD_LOGS: AtomicU64 = AtomicU64::new(0);

fn log_from_tick() {
    let n = IRQ_LOGS.load(Ordering::Relaxed);
    if n < IRQ_LOG_TICKS {
        let tick = TICKS.load(Ordering::Relaxed);
        if n == 0 {
            FIRST_LOG_TICK.store(tick, Ordering::Relaxed);
        }
        LAST_LOG_TICK.store(tick, Ordering::Relaxed);
        kdebug!("[irq-log] tick {n}");
        IRQ_LOGS.store(n + 1, Ordering::Relaxed);
    }
}

fn log_in_a_loop(_: u64) -> i64 {
    while IRQ_LOGS.load(Ordering::Relaxed) < IRQ_LOG_TICKS {
        let n = THREAD_LOGS.fetch_add(1, Ordering::Relaxed);
        kdebug!("[thread-log] line {n}");
    }
    0
}

/// A line of `log_from_irq`: which writer and its number.
fn parse_test_line(line: &str) -> Option<(bool, u64)> {
    if let Some(n) = line.strip_prefix("[irq-log] tick ") {
        return n.parse().ok().map(|n| (true, n));
    }
    line.strip_prefix("[thread-log] line ")?
        .parse()
        .ok()
        .map(|n| (false, n))
}

/// Checks that the log buffer holds the last lines of the two writers, whole and in order:
/// each writer's lines numbered without a gap, ending with the last line each wrote; after the
/// last interrupt line at most the one thread line that the last tick interrupted.
fn check_log_tail(irq: u64, thread: u64) -> Result<(), String> {
    let lines = klog::buffered_lines();
    check(lines.len() == klog::BUFFER_LINES, || {
        format!(
            "{} lines buffered, the buffer keeps {}",
            lines.len(),
            klog::BUFFER_LINES
        )
    })?;
    let mut last: [Option<u64>; 2] = [None, None];
    let mut after_last_irq = 0;
    for line in &lines {
        let (from_irq, n) =
            parse_test_line(line).ok_or_else(|| format!("foreign or mangled line {line:?}"))?;
        let previous = &mut last[usize::from(from_irq)];
        check(previous.is_none_or(|p| n == p + 1), || {
            format!("{line:?} follows line {previous:?} of the same writer")
        })?;
        *previous = Some(n);
        after_last_irq = if from_irq { 0 } else { after_last_irq + 1 };
    }
    check(last[1] == Some(irq - 1), || {
        format!(
            "the last interrupt line is {:?}, {irq} were logged",
            last[1]
        )
    })?;
    check(last[0] == Some(thread - 1), || {
        format!(
            "the last thread line is {:?}, {thread} were logged",
            last[0]
        )
    })?;
    check(after_last_irq <= 1, || {
        format!("{after_last_irq} thread lines after the interrupt's last, at most 1 expected")
    })
}

/// The timer interrupt logs on each of 10,000 consecutive ticks while a thread logs in a tight
/// loop (a logger that locks without masking interrupts deadlocks here at once). Every line
/// must be counted exactly once, and the buffer must end with exactly the last lines written.
pub fn log_from_irq(_: &mut TestEnv) -> Result<(), String> {
    IRQ_LOGS.store(0, Ordering::Relaxed);
    THREAD_LOGS.store(0, Ordering::Relaxed);
    let before = klog::lines_logged();
    let logger = sched::spawn(NORMAL_PRIORITY, log_in_a_loop, 0)?;
    sched::set_tick_hook(Some(log_from_tick));
    let deadline = Machine::now_ns() + 60 * SECOND;
    while IRQ_LOGS.load(Ordering::Relaxed) < IRQ_LOG_TICKS && Machine::now_ns() < deadline {
        sched::sleep_ns(100 * MS);
    }
    sched::set_tick_hook(None);
    let _ = sched::join(logger);
    let logged = klog::lines_logged() - before;
    let (irq, thread) = (
        IRQ_LOGS.load(Ordering::Relaxed),
        THREAD_LOGS.load(Ordering::Relaxed),
    );
    check(irq == IRQ_LOG_TICKS, || {
        format!("only {irq} of {IRQ_LOG_TICKS} ticks logged")
    })?;
    // The tick calls the hook once per tick: 10,000 lines on 10,000 consecutive ticks.
    let (first, last) = (
        FIRST_LOG_TICK.load(Ordering::Relaxed),
        LAST_LOG_TICK.load(Ordering::Relaxed),
    );
    check(last - first == irq - 1, || {
        format!("{irq} interrupt lines took ticks {first}..={last}")
    })?;
    check(thread > 0, || "the logging thread never logged".into())?;
    check(logged == irq + thread, || {
        format!(
            "{logged} lines reached the log, {} were written",
            irq + thread
        )
    })?;
    check_log_tail(irq, thread)?;
    check(!klog::is_busy(), || "the log buffer is still locked".into())?;
    crate::kprintln!("[log] {irq} lines from the timer interrupt, {thread} from a thread");
    Ok(())
}

static LEAKY: KLock<u32> = KLock::new("lock_diagnostics test lock", 0);
/// The source line of the acquisition whose guard `leak_guard` leaks.
static LEAK_LINE: AtomicU32 = AtomicU32::new(0);

fn leak_guard(_: u64) -> i64 {
    let (guard, line) = (LEAKY.lock(), line!());
    LEAK_LINE.store(line, Ordering::Relaxed);
    guard.leak_for_test();
    0
}

/// The number after `key` in `text`, up to the next non-digit.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// A thread takes a lock and leaks the guard (the test-only switch); a waiter with a deadline
/// must get exactly one report, at `CONTENDED_REPORT_NS` into its wait, naming the lock, the
/// waiter and the owner with their call sites, and give up at its deadline.
pub fn lock_diagnostics(env: &mut TestEnv) -> Result<(), String> {
    /// How long the waiter waits.
    const TIMEOUT: u64 = 1_500 * MS;
    /// How late the report (and the give-up) may come under the exact clock. The waiter reads
    /// the clock every 32 spins (`lock.rs`, `CLOCK_POLL_SPINS`: a few hundred instructions,
    /// under 5 us) and, with nobody else ready, only a tick interrupt can run between two
    /// reads, at most one (ticks are 1 ms apart). So it sees its deadline within one poll and
    /// one tick handler: the wake path's 50 us covers both.
    const LATE_BOUND: u64 = WAKE_PATH_NS;
    let leaker = sched::spawn(NORMAL_PRIORITY, leak_guard, 0)?;
    sched::join(leaker).map_err(|e| format!("join: {e}"))?;
    check(LEAKY.is_locked(), || {
        "the leaked guard released the lock".into()
    })?;
    let owner = LEAKY.owner().ok_or("no owner recorded")?;
    check(owner.thread == leaker.as_u64(), || {
        format!("owner thread {} is not the leaker", owner.thread)
    })?;
    let (me, cpu) = (sched::current(), Machine::cpu_id());
    let reports = LOCK_REPORTS.load(Ordering::Relaxed);
    capture::start();
    let start = Machine::now_ns();
    let (waited, line) = (LEAKY.try_lock_for(TIMEOUT), line!());
    let end = Machine::now_ns();
    let text = capture::stop();
    let timeout = match waited {
        Ok(_) => return Err("a leaked lock was acquired".into()),
        Err(timeout) => timeout,
    };
    check(LOCK_REPORTS.load(Ordering::Relaxed) == reports + 1, || {
        format!(
            "{} reports, expected one",
            LOCK_REPORTS.load(Ordering::Relaxed) - reports
        )
    })?;
    // When: never before the deadline, and before the waiter gave up.
    let at = LOCK_REPORT_AT.load(Ordering::Relaxed);
    let (after, gave_up) = (at.wrapping_sub(start), end - start);
    check(at >= start + CONTENDED_REPORT_NS && at <= end, || {
        format!(
            "the report came {after} ns into a {gave_up} ns wait, expected from {CONTENDED_REPORT_NS} ns on"
        )
    })?;
    check(
        gave_up >= TIMEOUT && timeout.waited.as_ns() >= TIMEOUT,
        || {
            format!(
                "gave up after {gave_up} ns ({}), timeout {TIMEOUT} ns",
                timeout.waited
            )
        },
    )?;
    crate::kprintln!(
        "[lock_diagnostics] report {} ns after the {CONTENDED_REPORT_NS} ns deadline, gave up {} ns after {TIMEOUT} ns",
        after - CONTENDED_REPORT_NS,
        gave_up - TIMEOUT
    );
    if env.exact_clock {
        check(after - CONTENDED_REPORT_NS <= LATE_BOUND, || {
            format!(
                "the report came {after} ns into the wait, bound {CONTENDED_REPORT_NS} + {LATE_BOUND} ns"
            )
        })?;
        check(gave_up - TIMEOUT <= LATE_BOUND, || {
            format!("gave up after {gave_up} ns, bound {TIMEOUT} + {LATE_BOUND} ns")
        })?;
    }
    // What: one line naming the lock, the waiter and the owner with their call sites.
    let file = file!();
    let head = format!(
        "[lock] '{}' ({:#x}) contended for ",
        LEAKY.name(),
        LEAKY.id()
    );
    let waiter = format!(": waiter cpu{cpu} thread {me} at {file}:{line}:");
    let leak_line = LEAK_LINE.load(Ordering::Relaxed);
    let holder = format!("; owner cpu{cpu} thread {leaker} at {file}:{leak_line}:");
    let reported_ms = number_after(&text, &head).unwrap_or(0);
    let held_ms = number_after(&text, ", held for ").unwrap_or(0);
    let contended_ms = CONTENDED_REPORT_NS / MS;
    check(
        text.starts_with(&head)
            && text.contains(&waiter)
            && text.contains(&holder)
            && text.ends_with(" ms\n")
            && text.matches('\n').count() == 1,
        || format!("report {text:?} does not name lock {head:?}, {waiter:?} and {holder:?}"),
    )?;
    check(
        reported_ms >= contended_ms && held_ms >= reported_ms,
        || {
            format!(
                "report {text:?}: contended {reported_ms} ms, held {held_ms} ms, threshold {contended_ms} ms"
            )
        },
    )?;
    // Under the exact clock the report comes within a millisecond of the threshold.
    check(!env.exact_clock || reported_ms == contended_ms, || {
        format!("report {text:?} says {reported_ms} ms, expected {contended_ms} ms")
    })?;
    check(
        timeout.name == LEAKY.name() && timeout.owner.is_some_and(|o| o.thread == leaker.as_u64()),
        || format!("the timeout {timeout} does not name the lock and its owner {leaker}"),
    )
}

/// When the hog of `watchdog_stall` began to run.
static HOG_STARTED: AtomicU64 = AtomicU64::new(0);

fn hog_with_preemption_off(_: u64) -> i64 {
    PREEMPT_OFF.fetch_add(1, Ordering::SeqCst);
    HOG_STARTED.store(Machine::now_ns(), Ordering::Relaxed);
    let reports = WATCHDOG_REPORTS.load(Ordering::Relaxed);
    let deadline = Machine::now_ns() + 10 * SECOND;
    while WATCHDOG_REPORTS.load(Ordering::Relaxed) == reports && Machine::now_ns() < deadline {
        core::hint::spin_loop();
    }
    PREEMPT_OFF.fetch_sub(1, Ordering::SeqCst);
    (WATCHDOG_REPORTS.load(Ordering::Relaxed) - reports) as i64
}

/// A thread spins with preemption off while the test thread is ready: the watchdog must report
/// it once, `STALL_NS` after the first tick that saw the hog running (under the exact clock
/// within `REPORT_LATE_BOUND` of that), naming the CPU and the hog, and print the thread table.
pub fn watchdog_stall(env: &mut TestEnv) -> Result<(), String> {
    /// How long after the hog began to run the watch may start: the next tick sees the switch
    /// to the hog as progress and starts the watch, within one tick period and its handler's
    /// entry latency (the wake path bounds that).
    const WATCH_START_BOUND: u64 = TICK_NS + WAKE_PATH_NS;
    /// The watchdog checks once per tick, and `STALL_NS` is a whole number of ticks: it reports
    /// at the tick exactly `STALL_NS / TICK_NS` periods after the one that started the watch.
    /// The two read the clock at their handler's entry latency, which differs by at most the
    /// wake path's instructions (the x86_64 LAPIC period is calibrated to the clock within a
    /// few ns, a few us over 2,000 ticks). A report one tick late is 20 times this bound.
    const REPORT_LATE_BOUND: u64 = WAKE_PATH_NS;
    const _: () = assert!(
        STALL_NS.is_multiple_of(TICK_NS),
        "the stall is not whole ticks"
    );
    let (me, cpu) = (sched::current(), Machine::cpu_id());
    capture::start();
    let start = Machine::now_ns();
    let hog = sched::spawn(NORMAL_PRIORITY + 1, hog_with_preemption_off, 0);
    let reports = hog
        .as_ref()
        .map_err(String::clone)
        .and_then(|&hog| sched::join(hog).map_err(|e| format!("join: {e}")));
    let text = capture::stop();
    let (hog, reports) = (hog?, reports?);
    let took = (Machine::now_ns() - start) / MS;
    check(reports == 1, || {
        format!("{reports} watchdog reports after {took} ms, expected one")
    })?;
    let mut lines = text.lines();
    let (stall, state, verdict) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let stall_head = format!("[watchdog] cpu{cpu} made no scheduling progress for ");
    let since = number_after(stall, "(since t=").unwrap_or(0);
    let now = number_after(state, "[watchdog] state at t=").unwrap_or(0);
    let stalled_ms = number_after(stall, &stall_head).unwrap_or(0);
    check(
        stall.starts_with(&stall_head) && stall.ends_with(") while threads were ready"),
        || format!("the report begins {stall:?}, expected {stall_head:?}"),
    )?;
    // When: after the hog took the CPU, never before the threshold, as the text says. (A tick
    // between the switch to the hog and its first clock read may start the watch a little
    // before that read.)
    let hog_started = HOG_STARTED.load(Ordering::Relaxed);
    let watch_start = since.saturating_sub(hog_started);
    let stalled = now.wrapping_sub(since);
    check(since >= start && now >= since + STALL_NS, || {
        format!(
            "report {stall:?} / {state:?}: watch began {} ns after the spawn, reported after {stalled} ns, threshold {STALL_NS} ns",
            since as i64 - start as i64
        )
    })?;
    check(stalled_ms == stalled / MS, || {
        format!("report {stall:?} says {stalled_ms} ms, its times {since}..{now} give {stalled} ns")
    })?;
    crate::kprintln!(
        "[watchdog_stall] hog ran {} ns after the spawn began, watch began {watch_start} ns later, report {} ns past the {STALL_NS} ns threshold",
        hog_started.saturating_sub(start),
        stalled - STALL_NS
    );
    if env.exact_clock {
        check(watch_start <= WATCH_START_BOUND, || {
            format!(
                "the watch began {watch_start} ns after the hog ran, bound {WATCH_START_BOUND} ns"
            )
        })?;
        check(stalled - STALL_NS <= REPORT_LATE_BOUND, || {
            format!(
                "reported after {stalled} ns without progress, bound {STALL_NS} + {REPORT_LATE_BOUND} ns"
            )
        })?;
    }
    // What: the stalled CPU, the thread it runs with preemption off, and the thread table with
    // the hog running and the test thread ready (the "threads were ready").
    let cpu_line = format!("[watchdog] cpu{cpu} STALLED: ");
    let running = format!("; cpu{cpu} runs thread {hog}, preemption off: 1");
    check(
        verdict.starts_with(&cpu_line) && verdict.ends_with(&running),
        || format!("the CPU line is {verdict:?}, expected {cpu_line:?} ... {running:?}"),
    )?;
    for (thread, state) in [(hog, "Running"), (me, "Ready")] {
        let entry = format!("[watchdog] thread {thread}: {state}");
        check(text.lines().any(|l| l == entry), || {
            format!("no {entry:?} in the thread table of {text:?}")
        })?;
    }
    Ok(())
}

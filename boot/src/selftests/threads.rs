//! In-kernel tests of threads, scheduling, time, logging and lock diagnostics.
//!
//! Owns the tests the thread issue names: `kthread_join`, `sched_fairness`, `sleep_accuracy`,
//! `log_from_irq`, `lock_diagnostics`, plus `watchdog_stall`. Each runs real kernel threads on
//! the preemptive scheduler and checks what it observed, never just that nothing crashed: slot
//! and frame counts must come back, counters must advance, reports must appear in time.

use super::check;
use crate::ktrace::{KLock, LOCK_REPORT_AT, LOCK_REPORTS};
use crate::memory::FRAMES;
use crate::platform::Machine;
use crate::sched::{self, NORMAL_PRIORITY, PREEMPT_OFF, THREADS, WATCHDOG_REPORTS};
use crate::{kdebug, klog};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel_core::hal::Platform;
use kernel_core::lock::CONTENDED_REPORT_NS;
use kernel_core::thread::ThreadId;

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;

fn free_frames() -> usize {
    FRAMES
        .lock_irqsave()
        .as_ref()
        .map_or(0, |f| f.free_frames())
}

/// Spawns, runs and joins 1,000 kernel threads in waves of 100; every exit code must come back,
/// and the free-slot and free-frame counts must return exactly to where they started.
pub fn kthread_join(_: &mut ()) -> Result<(), String> {
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

const WORKERS: usize = 16;
static PROGRESS: [AtomicU64; WORKERS + 1] = [const { AtomicU64::new(0) }; WORKERS + 1];
static STOP: AtomicBool = AtomicBool::new(false);

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

/// 16 CPU-bound threads in high slot numbers plus one that blocks and wakes every 2 ms: over
/// three seconds, every thread's progress counter must advance within every second.
pub fn sched_fairness(_: &mut ()) -> Result<(), String> {
    STOP.store(false, Ordering::Relaxed);
    for counter in &PROGRESS {
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
    let mut result = (0..WORKERS as u64)
        .map(|i| sched::spawn(NORMAL_PRIORITY, busy_worker, i))
        .chain([sched::spawn(NORMAL_PRIORITY, sleepy_worker, WORKERS as u64)])
        .try_for_each(|spawned| spawned.map(|id| ids.push(id)));
    let lowest = ids.iter().map(|id| id.index()).min().unwrap_or(0);
    let mut last: Vec<u64> = PROGRESS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    for second in 1..=3 {
        if result.is_err() {
            break;
        }
        sched::sleep_ns(SECOND);
        let now: Vec<u64> = PROGRESS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        result = match (0..=WORKERS).find(|&i| now[i] == last[i]) {
            Some(i) => Err(format!(
                "thread {} made no progress in second {second}",
                ids[i]
            )),
            None => Ok(()),
        };
        last = now;
    }
    STOP.store(true, Ordering::Relaxed);
    for id in ids {
        let _ = sched::join(id);
    }
    for claim in holders {
        THREADS.abandon(claim);
    }
    result?;
    crate::kprintln!(
        "[sched] {} threads from slot {lowest} up all progressed each second",
        WORKERS + 1
    );
    Ok(())
}

/// Sleeps of 1, 10 and 100 ms wake no earlier than asked and at most `LATE_BOUND` late.
pub fn sleep_accuracy(_: &mut ()) -> Result<(), String> {
    /// One tick to notice the deadline, plus room for the host descheduling the emulator.
    const LATE_BOUND: u64 = 50 * MS;
    for ms in [1u64, 10, 100] {
        let start = Machine::now_ns();
        sched::sleep_ns(ms * MS);
        let slept = Machine::now_ns() - start;
        check(slept >= ms * MS, || {
            format!("{ms} ms sleep woke after {slept} ns")
        })?;
        check(slept <= ms * MS + LATE_BOUND, || {
            format!(
                "{ms} ms sleep woke after {} us (bound {} ms late)",
                slept / 1000,
                LATE_BOUND / MS
            )
        })?;
        crate::kprintln!("[sleep] {ms} ms -> {} us", slept / 1000);
    }
    Ok(())
}

const IRQ_LOG_TICKS: u64 = 10_000;
static IRQ_LOGS: AtomicU64 = AtomicU64::new(0);
static THREAD_LOGS: AtomicU64 = AtomicU64::new(0);

fn log_from_tick() {
    let n = IRQ_LOGS.load(Ordering::Relaxed);
    if n < IRQ_LOG_TICKS {
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

/// The timer interrupt logs on each of 10,000 ticks while a thread logs in a tight loop: both
/// must keep going (a logger that locks without masking interrupts deadlocks here at once).
pub fn log_from_irq(_: &mut ()) -> Result<(), String> {
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
    let (irq, thread) = (
        IRQ_LOGS.load(Ordering::Relaxed),
        THREAD_LOGS.load(Ordering::Relaxed),
    );
    check(irq == IRQ_LOG_TICKS, || {
        format!("only {irq} of {IRQ_LOG_TICKS} ticks logged")
    })?;
    check(thread > 0, || "the logging thread never logged".into())?;
    let logged = klog::lines_logged() - before;
    check(logged >= irq + thread, || {
        format!(
            "{logged} lines reached the log, {} were written",
            irq + thread
        )
    })?;
    check(klog::count_buffered("[irq-log]") > 0, || {
        "no interrupt line in the log buffer".into()
    })?;
    check(!klog::is_busy(), || "the log buffer is still locked".into())?;
    crate::kprintln!("[log] {irq} lines from the timer interrupt, {thread} from a thread");
    Ok(())
}

static LEAKY: KLock<u32> = KLock::new("lock_diagnostics test lock", 0);

fn leak_guard(_: u64) -> i64 {
    LEAKY.lock().leak_for_test();
    0
}

/// A thread takes a lock and leaks the guard (the test-only switch); a waiter must get one
/// report naming owner and waiter within a second of virtual time, and give up at its deadline.
pub fn lock_diagnostics(_: &mut ()) -> Result<(), String> {
    let leaker = sched::spawn(NORMAL_PRIORITY, leak_guard, 0)?;
    sched::join(leaker).map_err(|e| format!("join: {e}"))?;
    check(LEAKY.is_locked(), || {
        "the leaked guard released the lock".into()
    })?;
    let owner = LEAKY.owner().ok_or("no owner recorded")?;
    check(owner.thread == leaker.as_u64(), || {
        format!("owner thread {} is not the leaker", owner.thread)
    })?;
    let reports = LOCK_REPORTS.load(Ordering::Relaxed);
    let start = Machine::now_ns();
    let waited = LEAKY.try_lock_for(1_500 * MS);
    check(waited.is_err(), || "a leaked lock was acquired".into())?;
    check(LOCK_REPORTS.load(Ordering::Relaxed) == reports + 1, || {
        format!(
            "{} reports, expected one",
            LOCK_REPORTS.load(Ordering::Relaxed) - reports
        )
    })?;
    let after = LOCK_REPORT_AT.load(Ordering::Relaxed).saturating_sub(start);
    check((CONTENDED_REPORT_NS..=SECOND).contains(&after), || {
        format!("the report came after {} ms", after / MS)
    })
}

fn hog_with_preemption_off(_: u64) -> i64 {
    PREEMPT_OFF.fetch_add(1, Ordering::SeqCst);
    let reports = WATCHDOG_REPORTS.load(Ordering::Relaxed);
    let deadline = Machine::now_ns() + 10 * SECOND;
    while WATCHDOG_REPORTS.load(Ordering::Relaxed) == reports && Machine::now_ns() < deadline {
        core::hint::spin_loop();
    }
    PREEMPT_OFF.fetch_sub(1, Ordering::SeqCst);
    (WATCHDOG_REPORTS.load(Ordering::Relaxed) - reports) as i64
}

/// A thread spins with preemption off while others are ready: the watchdog must notice within
/// its stall time and print the CPU state, the thread table and the trace.
pub fn watchdog_stall(_: &mut ()) -> Result<(), String> {
    let start = Machine::now_ns();
    let hog = sched::spawn(NORMAL_PRIORITY + 1, hog_with_preemption_off, 0)?;
    let reports = sched::join(hog).map_err(|e| format!("join: {e}"))?;
    let took = (Machine::now_ns() - start) / MS;
    check(reports == 1, || {
        format!("{reports} watchdog reports after {took} ms, expected one")
    })
}

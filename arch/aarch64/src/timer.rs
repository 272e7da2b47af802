//! Time on AArch64: the monotonic clock (the virtual counter CNTVCT_EL0) and the periodic tick
//! (the EL1 virtual timer CNTV, through the GIC) that drives preemption; and the dispatch of
//! every IRQ, since the tick is the only interrupt the kernel enables so far.
//!
//! Owns CNTV_CTL_EL0/CNTV_CVAL_EL0, the registered tick handler and the IRQ counters. The tick
//! is kept periodic by moving the compare value forward by exactly one period on each interrupt
//! (`CVAL += period`), so ticks do not drift with interrupt latency; if the CPU fell more than a
//! period behind (the emulator was descheduled), the missed ticks are dropped rather than
//! delivered back to back. [`on_interrupt`] runs in interrupt context with IRQs masked, on the
//! interrupted thread's stack (see `traps.rs`); it acknowledges and completes the interrupt
//! *before* calling the tick handler, because the handler may switch threads and come back only
//! much later. Nothing here may take a lock.

use crate::{entry, gic, serial};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTVCT_EL0};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel_core::hal::TimerReport;
use spin::Once;
use tock_registers::interfaces::{Readable, Writeable};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Counter frequency in Hz (CNTFRQ_EL0); 0 until `init`, which makes `now_ns` return 0.
static CLOCK_HZ: AtomicU64 = AtomicU64::new(0);
/// Counter value at `init`: time 0 of `now_ns`.
static ORIGIN: AtomicU64 = AtomicU64::new(0);
/// Counter ticks between two timer interrupts.
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// GIC INTID of the EL1 virtual timer.
static TIMER_INTID: AtomicU32 = AtomicU32::new(u32::MAX);
static TICK_HANDLER: Once<fn()> = Once::new();
static STARTED: AtomicBool = AtomicBool::new(false);

// Counters for diagnostics (read them from GDB): never reset.
/// Timer interrupts that delivered a tick.
static TICKS: AtomicU64 = AtomicU64::new(0);
/// Ticks dropped because the CPU was more than a period late.
static MISSED_TICKS: AtomicU64 = AtomicU64::new(0);
/// IRQs with nothing to acknowledge, or a timer interrupt whose condition had already gone.
static SPURIOUS: AtomicU64 = AtomicU64::new(0);
/// Interrupts from a source nobody enabled (each is disabled when seen).
static UNEXPECTED: AtomicU64 = AtomicU64::new(0);

/// The virtual counter, ordered after the instructions before it.
fn counter() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Nanoseconds since `init` (0 before).
pub fn now_ns() -> u64 {
    let hz = CLOCK_HZ.load(Ordering::Acquire);
    if hz == 0 {
        return 0;
    }
    let elapsed = counter().wrapping_sub(ORIGIN.load(Ordering::Relaxed));
    // Split so that nothing overflows for any CNTFRQ below 18 GHz.
    elapsed / hz * NANOS_PER_SECOND + elapsed % hz * NANOS_PER_SECOND / hz
}

/// Brings up the GIC, enables the EL1 virtual timer's interrupt and starts a periodic tick of
/// `hz` that calls `handler`. IRQs stay masked at the CPU: the caller unmasks them when ready.
pub fn init(hz: u32, handler: fn()) -> Result<TimerReport, &'static str> {
    if hz == 0 {
        return Err("tick rate of 0 Hz");
    }
    if STARTED.swap(true, Ordering::AcqRel) {
        return Err("init_timer ran twice");
    }
    let info = entry::boot_info();
    let intid = info
        .timer
        .ok_or("the device tree describes no generic timer interrupts")?
        .el1_virtual;
    let clock_hz = CNTFRQ_EL0.get();
    if clock_hz == 0 {
        return Err("CNTFRQ_EL0 is 0: the firmware did not set the counter frequency");
    }
    let period = (clock_hz / u64::from(hz)).max(1);
    // Quiet until everything is in place (the timer may hold a stale condition).
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::SET);
    gic::init(info.interrupt_controller)?;
    TIMER_INTID.store(intid, Ordering::Relaxed);
    PERIOD.store(period, Ordering::Relaxed);
    TICK_HANDLER.call_once(|| handler);
    let origin = counter();
    ORIGIN.store(origin, Ordering::Relaxed);
    CLOCK_HZ.store(clock_hz, Ordering::Release);
    gic::enable_ppi(intid)?;
    CNTV_CVAL_EL0.set(origin + period);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    barrier::isb(barrier::SY);
    Ok(TimerReport {
        tick_hz: hz,
        clock_hz,
        event_hz: clock_hz,
    })
}

/// Moves the compare value one period on; false when the timer condition is not met (nothing
/// to do: the interrupt was stale).
fn rearm() -> bool {
    if !CNTV_CTL_EL0.is_set(CNTV_CTL_EL0::ISTATUS) {
        return false;
    }
    let period = PERIOD.load(Ordering::Relaxed);
    let mut next = CNTV_CVAL_EL0.get().wrapping_add(period);
    let now = counter();
    if next <= now {
        let behind = (now - next) / period + 1;
        MISSED_TICKS.fetch_add(behind, Ordering::Relaxed);
        next += behind * period;
    }
    CNTV_CVAL_EL0.set(next);
    // The new compare value takes effect (and the level-triggered line drops) before the EOI.
    barrier::isb(barrier::SY);
    true
}

/// Called by the IRQ vectors (`traps.rs`) for every IRQ: acknowledges it, completes it, and for
/// a timer tick calls the tick handler last (it may switch threads).
pub fn on_interrupt() {
    let ack = match gic::acknowledge() {
        gic::Pending::Interrupt(ack) => ack,
        gic::Pending::Spurious => {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if ack.intid == TIMER_INTID.load(Ordering::Relaxed) {
        let fired = rearm();
        gic::end_of_interrupt(ack);
        if !fired {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        TICKS.fetch_add(1, Ordering::Relaxed);
        if let Some(handler) = TICK_HANDLER.get() {
            handler();
        }
        return;
    }
    // Nobody enabled this source: silence it so a level-triggered one cannot storm.
    gic::disable(ack.intid);
    gic::end_of_interrupt(ack);
    if UNEXPECTED.fetch_add(1, Ordering::Relaxed) == 0 {
        // The console write is lock-free (safe here); only the first one is reported.
        let mut line = LineBuf::new();
        let _ = core::fmt::write(
            &mut line,
            format_args!(
                "[irq] unexpected interrupt INTID {} (disabled; further ones are only counted)\n",
                ack.intid
            ),
        );
        serial::write(line.as_bytes());
    }
}

/// A one-line buffer for the report above (no allocation in an interrupt).
struct LineBuf {
    bytes: [u8; 96],
    len: usize,
}

impl LineBuf {
    const fn new() -> Self {
        Self {
            bytes: [0; 96],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

//! Time on x86_64: the monotonic clock (the TSC, calibrated once against the PIT) and the
//! periodic tick (the LAPIC timer) that drives preemption.
//!
//! Owns the tick vector and the registered tick handler. The handler runs in interrupt context
//! with interrupts disabled, after the interrupt has been acknowledged, and may switch threads:
//! the interrupted context resumes when it is switched back to. Nothing here may take a lock.

use crate::lapic::{self, Calibration};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::hal::TimerReport;
use kernel_core::paging::FrameSource;
use spin::Once;

/// Interrupt vector of the LAPIC timer.
pub const TIMER_VECTOR: u8 = 0x20;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_ORIGIN: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick as a 32.32 fixed-point number, so that `now_ns` (on the trace and
/// switch paths) multiplies instead of dividing.
static NS_PER_TICK_FP32: AtomicU64 = AtomicU64::new(0);
static TICK_HANDLER: Once<fn()> = Once::new();

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Nanoseconds since the clock was calibrated (0 before).
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let elapsed = rdtsc().wrapping_sub(TSC_ORIGIN.load(Ordering::Relaxed));
    let scale = NS_PER_TICK_FP32.load(Ordering::Relaxed);
    ((u128::from(elapsed) * u128::from(scale)) >> 32) as u64
}

/// Enables the LAPIC, calibrates the clocks and starts the periodic tick at `hz`, calling
/// `handler` on every tick. Interrupts stay disabled: the caller enables them when ready.
pub fn init(
    frames: &mut impl FrameSource,
    hz: u32,
    handler: fn(),
) -> Result<TimerReport, &'static str> {
    lapic::init(frames)?;
    let Calibration { tsc_hz, lapic_hz } = lapic::calibrate()?;
    TSC_ORIGIN.store(rdtsc(), Ordering::Relaxed);
    NS_PER_TICK_FP32.store(
        ((1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1))) as u64,
        Ordering::Relaxed,
    );
    TSC_HZ.store(tsc_hz, Ordering::Release);
    TICK_HANDLER.call_once(|| handler);
    lapic::start_periodic(Calibration { tsc_hz, lapic_hz }, hz, TIMER_VECTOR);
    Ok(TimerReport {
        tick_hz: hz,
        clock_hz: tsc_hz,
        event_hz: lapic_hz,
    })
}

/// Called by the interrupt path for every vector from 32 up.
pub fn on_interrupt(vector: u8) {
    match vector {
        TIMER_VECTOR => {
            lapic::end_of_interrupt();
            if let Some(handler) = TICK_HANDLER.get() {
                handler();
            }
        }
        lapic::SPURIOUS_VECTOR => {} // Spurious interrupts are never acknowledged.
        _ => lapic::end_of_interrupt(),
    }
}

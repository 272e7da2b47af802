//! The local APIC (xAPIC, memory-mapped) and the legacy interrupt hardware it replaces.
//!
//! Owns the LAPIC registers of this CPU, the 8259 PICs (remapped and masked for good, so a
//! stray legacy interrupt can never arrive as an exception vector) and the PIT, used once to
//! calibrate the LAPIC timer and the TSC. x2APIC is not used: QEMU's TCG does not offer it.
//! Register access takes no lock: each CPU touches only its own LAPIC.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::paging::FrameSource;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;

const REG_EOI: u64 = 0xb0;
const REG_SPURIOUS: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;

const SPURIOUS_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const DIVIDE_BY_16: u32 = 0b0011;

/// Vector of spurious LAPIC interrupts (never acknowledged).
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Virtual address of this CPU's LAPIC registers (0 before `init`).
static BASE: AtomicU64 = AtomicU64::new(0);

fn read(register: u64) -> u32 {
    let base = BASE.load(Ordering::Acquire);
    // SAFETY: `base` maps the LAPIC page uncached (set by `init` before any register access)
    // and every register offset used here is inside that page and 16-byte aligned.
    unsafe { core::ptr::read_volatile((base + register) as *const u32) }
}

fn write(register: u64, value: u32) {
    let base = BASE.load(Ordering::Acquire);
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile((base + register) as *mut u32, value) }
}

fn outb(port: u16, value: u8) {
    // SAFETY: the PIC and PIT ports are owned by this module; writing them cannot affect memory.
    unsafe { Port::<u8>::new(port).write(value) }
}

fn inb(port: u16) -> u8 {
    // SAFETY: as in `outb`.
    unsafe { Port::<u8>::new(port).read() }
}

/// Remaps the two 8259s to vectors 0x20..0x2f and masks every line.
fn disable_legacy_pic() {
    for (command, data, offset, cascade) in [(0x20u16, 0x21u16, 0x20u8, 4u8), (0xa0, 0xa1, 0x28, 2)]
    {
        outb(command, 0x11); // initialise, expect ICW4
        outb(data, offset);
        outb(data, cascade);
        outb(data, 0x01); // 8086 mode
        outb(data, 0xff); // mask everything
    }
}

/// Enables this CPU's LAPIC, mapping its registers with `frames` for page tables if needed.
pub fn init(frames: &mut impl FrameSource) -> Result<(), &'static str> {
    disable_legacy_pic();
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every CPU with a LAPIC (all x86_64 CPUs QEMU models).
    let value = unsafe { msr.read() };
    // SAFETY: setting the global enable bit keeps the LAPIC at the same base address.
    unsafe { msr.write(value | APIC_BASE_ENABLE) };
    let phys = value & 0x000f_ffff_ffff_f000;
    let virt = crate::paging::map_device_page(phys, frames).map_err(|_| "cannot map the LAPIC")?;
    BASE.store(virt, Ordering::Release);
    write(REG_SPURIOUS, SPURIOUS_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(REG_LVT_TIMER, LVT_MASKED);
    Ok(())
}

/// Acknowledges the interrupt being handled.
pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}

/// PIT input clock in Hz.
const PIT_HZ: u64 = 1_193_182;

/// Runs PIT channel 2 for `ms` milliseconds (one-shot, polled) and returns how far the TSC and
/// the LAPIC timer (divide by 16, counting down from u32::MAX) moved meanwhile.
fn measure_with_pit(ms: u64) -> (u64, u64) {
    let count = (PIT_HZ * ms / 1000) as u16;
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED);
    let gate = inb(0x61);
    outb(0x61, (gate & !0x02) & !0x01); // gate low, speaker off
    outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0 (one-shot)
    outb(0x42, count as u8);
    outb(0x42, (count >> 8) as u8);
    write(REG_TIMER_INITIAL, u32::MAX);
    // SAFETY: rdtsc only reads the time-stamp counter.
    let tsc_start = unsafe { core::arch::x86_64::_rdtsc() };
    outb(0x61, (inb(0x61) & !0x02) | 0x01); // gate high: start counting
    while inb(0x61) & 0x20 == 0 {}
    // SAFETY: as above.
    let tsc_end = unsafe { core::arch::x86_64::_rdtsc() };
    let lapic_elapsed = u64::from(u32::MAX - read(REG_TIMER_CURRENT));
    write(REG_TIMER_INITIAL, 0);
    (tsc_end - tsc_start, lapic_elapsed)
}

/// Measured frequencies: TSC in Hz and LAPIC timer ticks (after the divider) in Hz.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// LAPIC timer ticks per second (divide by 16).
    pub lapic_hz: u64,
}

/// Calibrates the TSC and the LAPIC timer against 50 ms of the PIT.
pub fn calibrate() -> Result<Calibration, &'static str> {
    const WINDOW_MS: u64 = 50;
    let (tsc, lapic) = measure_with_pit(WINDOW_MS);
    if tsc == 0 || lapic == 0 {
        return Err("the PIT, TSC or LAPIC timer did not advance during calibration");
    }
    Ok(Calibration {
        tsc_hz: tsc * 1000 / WINDOW_MS,
        lapic_hz: lapic * 1000 / WINDOW_MS,
    })
}

/// Starts the LAPIC timer in periodic mode at `hz` interrupts per second on `vector`.
pub fn start_periodic(calibration: Calibration, hz: u32, vector: u8) {
    let initial = (calibration.lapic_hz / u64::from(hz)).clamp(1, u64::from(u32::MAX)) as u32;
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_PERIODIC | u32::from(vector));
    write(REG_TIMER_INITIAL, initial);
}

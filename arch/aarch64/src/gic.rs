//! The Arm Generic Interrupt Controller, v2 and v3, as far as the kernel uses it: per-CPU
//! interrupts (PPIs) routed to this CPU as IRQs, acknowledged and completed one at a time.
//!
//! Owns the GIC's registers: the distributor, and the CPU interface (GICv2, memory-mapped) or
//! this CPU's redistributor and the ICC system registers (GICv3). Which one the machine has comes
//! from `BootInfo::interrupt_controller` (the device tree); `kernel_space` has already mapped
//! every register frame Device-nGnRnE at its HHDM address, so nothing here maps anything.
//!
//! Configuration (both versions): every interrupt the kernel enables is Group 1 (GICv3) or
//! Group 0 without FIQ signalling (GICv2, no security extensions), so it arrives as an IRQ, never
//! an FIQ; priority [`PRIORITY`] under a priority mask of [`PRIORITY_MASK`]; completion is the
//! classic one-step EOI (priority drop and deactivation together, `EOImode` 0). Interrupts stay
//! masked at the CPU (PSTATE.I) throughout; this module never touches DAIF.
//!
//! SMP: the distributor is set up once; each CPU must bring up its own CPU interface (GICv2) or
//! find and wake its own redistributor and enable its ICC registers (GICv3) — [`init_cpu`] is the
//! per-CPU half, and its redistributor base then has to become per-CPU data instead of the one
//! global below. Register access takes no lock: the distributor is written only during `init`,
//! everything else is banked per CPU.

use crate::layout::phys_to_virt;
use core::arch::asm;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use kernel_core::boot_info::InterruptController;

/// Priority of every interrupt the kernel enables (lower is more urgent).
const PRIORITY: u8 = 0x80;
/// Priority mask: interrupts with a priority value below it are signalled. 0xf0 is valid however
/// many priority bits the implementation has (at least four).
const PRIORITY_MASK: u8 = 0xf0;

/// First INTID that is not a per-CPU interrupt (SGIs 0-15, PPIs 16-31).
const FIRST_SPI: u32 = 32;
/// INTIDs 1020-1023 are special: nothing to acknowledge (1023: no pending interrupt).
const FIRST_SPECIAL_INTID: u32 = 1020;

// Distributor (both versions).
const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IGROUPR: u64 = 0x080;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ICPENDR: u64 = 0x280;
const GICD_IPRIORITYR: u64 = 0x400;
/// GICD_CTLR.RWP (GICv3): a write to CTLR is still taking effect.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR (GICv3) with affinity routing and both group enables. Bits 0, 1 and 4 are
/// EnableGrp0, EnableGrp1 and ARE with one security state (QEMU `virt` without `secure=on`) and
/// EnableGrp1NS, EnableGrp1A and ARE_NS in the non-secure view of two: this value means "group 1
/// on, affinity routing on" in both.
const GICD_CTLR_V3_ARE: u32 = 1 << 4;
const GICD_CTLR_V3_ENABLE: u32 = GICD_CTLR_V3_ARE | 0b11;
/// GICD_CTLR (GICv2): forward group 0 and group 1.
const GICD_CTLR_V2_ENABLE: u32 = 0b11;

// GICv2 CPU interface.
const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
const GICC_BPR: u64 = 0x008;
const GICC_IAR: u64 = 0x00c;
const GICC_EOIR: u64 = 0x010;
/// GICC_CTLR: signal group 0 and group 1 as IRQs (FIQEn clear), EOImode 0.
const GICC_CTLR_ENABLE: u32 = 0b11;

// GICv3 redistributor: RD_base frame, then the SGI_base frame 64 KiB above it.
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_SGI_FRAME: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = GICR_SGI_FRAME + 0x0080;
const GICR_ISENABLER0: u64 = GICR_SGI_FRAME + 0x0100;
const GICR_ICENABLER0: u64 = GICR_SGI_FRAME + 0x0180;
const GICR_ICPENDR0: u64 = GICR_SGI_FRAME + 0x0280;
const GICR_IPRIORITYR: u64 = GICR_SGI_FRAME + 0x0400;
const GICR_IGRPMODR0: u64 = GICR_SGI_FRAME + 0x0d00;
/// GICR_TYPER.Last: the last redistributor of its region.
const GICR_TYPER_LAST: u64 = 1 << 4;
/// GICR_TYPER.VLPIS: two more 64 KiB frames (VLPI, reserved) follow the pair.
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// ICC_SRE_EL1.SRE: use the system-register CPU interface.
const ICC_SRE_SRE: u64 = 1;

/// Spins on a GIC status bit at most this often before giving up with an error.
const POLL_LIMIT: u32 = 1_000_000;

/// Which GIC is live (0 = none yet).
static VERSION: AtomicU8 = AtomicU8::new(0);
/// Virtual address of the distributor.
static DIST: AtomicU64 = AtomicU64::new(0);
/// Virtual address of this CPU's interface: the GICv2 CPU interface, or the GICv3
/// redistributor's RD_base frame (per CPU once SMP lands).
static CPU_BASE: AtomicU64 = AtomicU64::new(0);

fn read32(addr: u64) -> u32 {
    // SAFETY: every address passed here is a 4-byte aligned register inside a GIC frame that
    // `kernel_space` mapped Device-nGnRnE at its HHDM address; reading a GIC register has no
    // side effect on memory (IAR's side effect is on the GIC and wanted).
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write32(addr: u64, value: u32) {
    // SAFETY: as in `read32`; GIC register writes affect only the interrupt controller.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn read64(addr: u64) -> u64 {
    // SAFETY: as in `read32`; the 64-bit GICR_TYPER allows a 64-bit access at its 8-byte
    // aligned offset.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

fn write8(addr: u64, value: u8) {
    // SAFETY: as in `write32`; the priority registers are byte-accessible.
    unsafe { core::ptr::write_volatile(addr as *mut u8, value) }
}

fn wait_until(what: &'static str, mut done: impl FnMut() -> bool) -> Result<(), &'static str> {
    for _ in 0..POLL_LIMIT {
        if done() {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(what)
}

/// Brings up the distributor and this CPU's interface. Every interrupt stays disabled until
/// [`enable_ppi`]. Fails when no GIC is described, or one of its registers misbehaves.
pub fn init(controller: Option<InterruptController>) -> Result<(), &'static str> {
    match controller {
        None => Err("the device tree describes no GIC"),
        Some(InterruptController::GicV2 {
            distributor,
            cpu_interface,
        }) => {
            let dist = phys_to_virt(distributor.start);
            let cpu = phys_to_virt(cpu_interface.start);
            init_distributor_v2(dist);
            DIST.store(dist, Ordering::Relaxed);
            CPU_BASE.store(cpu, Ordering::Relaxed);
            VERSION.store(2, Ordering::Release);
            init_cpu()
        }
        Some(InterruptController::GicV3 {
            distributor,
            redistributors,
        }) => {
            let dist = phys_to_virt(distributor.start);
            init_distributor_v3(dist)?;
            let rd = find_redistributor(
                phys_to_virt(redistributors.start),
                phys_to_virt(redistributors.end),
            )?;
            DIST.store(dist, Ordering::Relaxed);
            CPU_BASE.store(rd, Ordering::Relaxed);
            VERSION.store(3, Ordering::Release);
            init_cpu()
        }
    }
}

/// Number of 32-interrupt register words the distributor implements (GICD_TYPER.ITLinesNumber).
fn interrupt_words(dist: u64) -> u64 {
    u64::from(read32(dist + GICD_TYPER) & 0x1f) + 1
}

/// Disables, un-pends and deprioritises nothing but the shared interrupts (SPIs): the firmware
/// may have left some enabled, and the kernel drives none yet.
fn quiesce_spis(dist: u64) {
    for word in 1..interrupt_words(dist) {
        write32(dist + GICD_ICENABLER + 4 * word, u32::MAX);
        write32(dist + GICD_ICPENDR + 4 * word, u32::MAX);
    }
}

fn init_distributor_v2(dist: u64) {
    write32(dist + GICD_CTLR, 0);
    quiesce_spis(dist);
    write32(dist + GICD_CTLR, GICD_CTLR_V2_ENABLE);
}

fn init_distributor_v3(dist: u64) -> Result<(), &'static str> {
    let rwp_clear = || read32(dist + GICD_CTLR) & GICD_CTLR_RWP == 0;
    write32(dist + GICD_CTLR, 0);
    wait_until(
        "GICv3 distributor: GICD_CTLR.RWP stuck (disable)",
        rwp_clear,
    )?;
    // ARE may only change while the groups are disabled.
    write32(dist + GICD_CTLR, GICD_CTLR_V3_ARE);
    wait_until("GICv3 distributor: GICD_CTLR.RWP stuck (ARE)", rwp_clear)?;
    if read32(dist + GICD_CTLR) & GICD_CTLR_V3_ARE == 0 {
        return Err("GICv3 distributor refuses affinity routing (GICD_CTLR.ARE)");
    }
    quiesce_spis(dist);
    // SPIs in group 1 so that one enabled later arrives as an IRQ.
    for word in 1..interrupt_words(dist) {
        write32(dist + GICD_IGROUPR + 4 * word, u32::MAX);
    }
    write32(dist + GICD_CTLR, GICD_CTLR_V3_ENABLE);
    wait_until("GICv3 distributor: GICD_CTLR.RWP stuck (enable)", rwp_clear)
}

/// This CPU's affinity in GICR_TYPER's format (Aff3.Aff2.Aff1.Aff0).
fn this_cpu_affinity() -> u32 {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack, preserves_flags)) };
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}

/// Walks the redistributor region `[start, end)` for the one whose affinity is this CPU's.
fn find_redistributor(start: u64, end: u64) -> Result<u64, &'static str> {
    let me = this_cpu_affinity();
    let mut rd = start;
    while rd + 2 * GICR_SGI_FRAME <= end {
        let typer = read64(rd + GICR_TYPER);
        if (typer >> 32) as u32 == me {
            return Ok(rd);
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
        rd += if typer & GICR_TYPER_VLPIS != 0 {
            4 * GICR_SGI_FRAME
        } else {
            2 * GICR_SGI_FRAME
        };
    }
    Err("no GICv3 redistributor has this CPU's affinity")
}

/// Brings up this CPU's side: the CPU interface (v2), or the redistributor and the ICC system
/// registers (v3). All SGIs and PPIs end up disabled.
pub fn init_cpu() -> Result<(), &'static str> {
    let base = CPU_BASE.load(Ordering::Relaxed);
    match VERSION.load(Ordering::Acquire) {
        2 => {
            let dist = DIST.load(Ordering::Relaxed);
            // SGIs and PPIs are banked per CPU in the distributor.
            write32(dist + GICD_ICENABLER, u32::MAX);
            write32(dist + GICD_ICPENDR, u32::MAX);
            write32(base + GICC_PMR, u32::from(PRIORITY_MASK));
            write32(base + GICC_BPR, 0);
            write32(base + GICC_CTLR, GICC_CTLR_ENABLE);
            Ok(())
        }
        3 => {
            let waker = read32(base + GICR_WAKER);
            write32(base + GICR_WAKER, waker & !GICR_WAKER_PROCESSOR_SLEEP);
            wait_until("GICv3 redistributor did not wake (GICR_WAKER)", || {
                read32(base + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP == 0
            })?;
            write32(base + GICR_ICENABLER0, u32::MAX);
            write32(base + GICR_ICPENDR0, u32::MAX);
            write32(base + GICR_IGROUPR0, u32::MAX);
            write32(base + GICR_IGRPMODR0, 0);
            enable_system_registers()
        }
        _ => Err("GIC not initialised"),
    }
}

/// GICv3: switches this CPU to the ICC system registers and opens it for group 1 interrupts.
fn enable_system_registers() -> Result<(), &'static str> {
    let sre: u64;
    // SAFETY: ICC_SRE_EL1 exists wherever a GICv3 is wired to the CPU (and EL2, when present,
    // let EL1 use it: `entry` sets ICC_SRE_EL2.Enable); setting SRE only selects the
    // system-register interface, which nothing used in memory-mapped form before.
    unsafe {
        asm!(
            "mrs {sre}, icc_sre_el1",
            "orr {sre}, {sre}, {bit}",
            "msr icc_sre_el1, {sre}",
            "isb",
            "mrs {sre}, icc_sre_el1",
            sre = out(reg) sre,
            bit = const ICC_SRE_SRE,
            options(nomem, nostack, preserves_flags)
        )
    };
    if sre & ICC_SRE_SRE == 0 {
        return Err("GICv3 CPU interface refuses the system-register interface (ICC_SRE_EL1)");
    }
    // SAFETY: with SRE set the ICC registers are accessible at EL1. PMR sets which priorities
    // are signalled, BPR1 = 0 disables preemption grouping, CTLR = 0 selects EOImode 0, IGRPEN1
    // enables group 1; none of them affects memory, and PSTATE.I still masks the IRQs.
    unsafe {
        asm!(
            "msr icc_pmr_el1, {pmr}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_ctlr_el1, xzr",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            pmr = in(reg) u64::from(PRIORITY_MASK),
            one = in(reg) 1u64,
            options(nomem, nostack, preserves_flags)
        )
    };
    Ok(())
}

/// Enables the per-CPU interrupt `intid` (16..32) on this CPU at [`PRIORITY`], as an IRQ.
pub fn enable_ppi(intid: u32) -> Result<(), &'static str> {
    if !(16..FIRST_SPI).contains(&intid) {
        return Err("the timer interrupt is not a PPI (INTID 16..32)");
    }
    let bit = 1u32 << intid;
    let base = CPU_BASE.load(Ordering::Relaxed);
    match VERSION.load(Ordering::Acquire) {
        2 => {
            let dist = DIST.load(Ordering::Relaxed);
            write8(dist + GICD_IPRIORITYR + u64::from(intid), PRIORITY);
            write32(dist + GICD_ISENABLER, bit);
            Ok(())
        }
        3 => {
            write8(base + GICR_IPRIORITYR + u64::from(intid), PRIORITY);
            write32(base + GICR_ISENABLER0, bit);
            Ok(())
        }
        _ => Err("GIC not initialised"),
    }
}

/// Disables interrupt `intid` on this CPU (a source nobody handles).
pub fn disable(intid: u32) {
    let word = u64::from(intid / 32);
    let bit = 1u32 << (intid % 32);
    let dist = DIST.load(Ordering::Relaxed);
    match VERSION.load(Ordering::Acquire) {
        3 if intid < FIRST_SPI => {
            write32(CPU_BASE.load(Ordering::Relaxed) + GICR_ICENABLER0, bit);
        }
        2 | 3 => write32(dist + GICD_ICENABLER + 4 * word, bit),
        _ => {}
    }
}

/// An acknowledged interrupt: must be passed to [`end_of_interrupt`] exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    /// The raw acknowledge value, written back to complete it (GICv2 also encodes the source
    /// CPU of an SGI in it).
    raw: u32,
    /// The interrupt's ID.
    pub intid: u32,
}

/// What the CPU interface says about the IRQ being taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// An interrupt, now active: complete it with [`end_of_interrupt`].
    Interrupt(Acknowledged),
    /// Nothing to acknowledge (the interrupt went away, or a special INTID): no EOI.
    Spurious,
}

/// Acknowledges the highest-priority pending interrupt of this CPU.
pub fn acknowledge() -> Pending {
    let ack = match VERSION.load(Ordering::Acquire) {
        2 => {
            let raw = read32(CPU_BASE.load(Ordering::Relaxed) + GICC_IAR) & 0x1fff;
            Acknowledged {
                raw,
                intid: raw & 0x3ff,
            }
        }
        3 => {
            let iar: u64;
            // SAFETY: reading ICC_IAR1_EL1 acknowledges the pending group 1 interrupt in the
            // GIC (the caller then completes it); it touches no memory.
            unsafe {
                asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nomem, nostack, preserves_flags))
            };
            let raw = iar as u32 & 0x00ff_ffff;
            Acknowledged { raw, intid: raw }
        }
        _ => return Pending::Spurious,
    };
    if (FIRST_SPECIAL_INTID..FIRST_SPECIAL_INTID + 4).contains(&ack.intid) {
        Pending::Spurious
    } else {
        Pending::Interrupt(ack)
    }
}

/// Completes `ack` (priority drop and deactivation: EOImode 0).
pub fn end_of_interrupt(ack: Acknowledged) {
    match VERSION.load(Ordering::Acquire) {
        2 => write32(CPU_BASE.load(Ordering::Relaxed) + GICC_EOIR, ack.raw),
        3 => {
            // SAFETY: writing ICC_EOIR1_EL1 with the value ICC_IAR1_EL1 returned completes that
            // interrupt in the GIC; it touches no memory. The isb makes the completion take
            // effect before IRQs can be unmasked again.
            unsafe {
                asm!(
                    "msr icc_eoir1_el1, {}",
                    "isb",
                    in(reg) u64::from(ack.raw),
                    options(nomem, nostack, preserves_flags)
                )
            };
        }
        _ => {}
    }
}

//! The kernel's own page tables (TTBR1) and the empty user half (TTBR0 with ASID 0).
//!
//! Owns `Platform::init_kernel_space` and `activate_kernel_space`, and the kernel tree after
//! that ([`KERNEL_TABLES`], also the lock every later change to the kernel half takes). The tree
//! replaces the boot tables (`boot_mmu`) at the same virtual addresses:
//!
//! - the HHDM over every RAM range of the memory map, Normal memory, read+write, never
//!   executable, global, in the largest aligned blocks (1 GiB, 2 MiB, 4 KiB at the edges).
//!   The image's own frames are the exception: the 2 MiB blocks they touch get 4 KiB pages, the
//!   image's text and rodata read-only, its data and bss read+write, all never executable (no
//!   writable alias of kernel text), and the rest of those blocks plain HHDM;
//! - the kernel image at its link address (`KERNEL_IMAGE_BASE`), in 4 KiB pages from the
//!   physical address the loader put it at (`layout::image_virt_to_phys`): text read+execute,
//!   rodata read-only, data and bss read+write and never executable, the boot and exception
//!   stacks' guard pages unmapped;
//! - the MMIO the kernel uses (the PL011, the GIC's register frames from `BootInfo`), Device
//!   nGnRnE, read+write, never executable, in 4 KiB pages at their HHDM addresses.
//!
//! Nothing else is mapped: the rest of the first GiB (flash, virtio, ...) and every hole between
//! RAM ranges now faults. After the switch TTBR0 walks are on, with an all-invalid root under
//! ASID 0 whenever no user space is active, SCTLR_EL1.WXN forbids executing anything writable,
//! and PAN (when the CPU has it) makes every EL1 access to user pages fault except through
//! `user_copy`'s unprivileged loads and stores. This module must never map a page writable and
//! executable, nor split an HHDM block later (live blocks need break-before-make): kernel
//! mappings made after boot go to their own 4 KiB-mapped regions (`kstack`).

use crate::layout::{
    HHDM_BASE, HHDM_PHYS_LIMIT, image_sections, image_virt_to_phys, kernel_image_phys,
    kernel_image_virt,
};
use crate::spaces::HhdmTables;
use crate::{mmu, serial, stacks};
use arch_paging::{Aarch64Format, MAIR_VALUE};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel_core::boot_info::{BootInfo, ConsoleDevice, InterruptController, PhysRange};
use kernel_core::hal::KernelSpaceReport;
use kernel_core::memory_map::ram_ranges;
use kernel_core::paging::{
    ENTRIES, FrameSource, Half, MapError, MapFlags, Mapper, PAGE_SIZE, TableMemory, level_size,
};
use spin::Mutex;

/// The kernel's TTBR1 tree once it is live; its lock serialises every change to the kernel
/// half. Lock order: the caller's frame-allocator lock first, then this one.
pub static KERNEL_TABLES: Mutex<Option<Mapper<Aarch64Format>>> = Mutex::new(None);

/// Physical address of the all-invalid TTBR0 root (0 until `init`).
static EMPTY_USER_ROOT: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Bytes of one PL011 register block (the page the console needs).
const PL011_SIZE: u64 = 0x1000;

/// The HHDM, and data and bss: read+write, never executable.
const DATA: MapFlags = MapFlags::READ
    .union(MapFlags::WRITE)
    .union(MapFlags::GLOBAL);
/// Kernel text.
const TEXT: MapFlags = MapFlags::READ
    .union(MapFlags::EXECUTE)
    .union(MapFlags::GLOBAL);
/// Read-only data.
const RODATA: MapFlags = MapFlags::READ.union(MapFlags::GLOBAL);
/// MMIO registers.
const DEVICE: MapFlags = DATA.union(MapFlags::DEVICE);

/// Builds the kernel's tables, switches to them and turns on the protections (see the module
/// docs). Table frames come from `frames` (all below `info.hhdm_limit`, so the boot tables reach
/// them). On failure nothing was switched and every table allocated here is freed.
pub fn init(
    info: &BootInfo,
    frames: &mut impl FrameSource,
) -> Result<KernelSpaceReport, &'static str> {
    if STARTED.swap(true, Ordering::AcqRel) {
        return Err("init_kernel_space ran twice");
    }
    let mair: u64;
    // SAFETY: reading MAIR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, mair_el1", out(reg) mair, options(nomem, nostack)) };
    if mair != MAIR_VALUE {
        return Err("MAIR_EL1 differs from the attributes the page-table format encodes");
    }
    let features = mmu::features();
    let mut mem = HhdmTables;
    let mut mapper = Mapper::<Aarch64Format>::new(&mut mem, frames, Half::Kernel)
        .map_err(|_| "out of frames for the kernel's root table")?;
    let built = build(&mut mapper, &mut mem, frames, info).and_then(|hhdm_bytes| {
        check_switch_is_seamless(&mapper, &mem)?;
        let root = frames
            .allocate()
            .ok_or("out of frames for the empty user root")?;
        Ok((hhdm_bytes, root))
    });
    let (hhdm_bytes, empty_root) = match built {
        Ok(done) => done,
        Err(reason) => {
            // Never live: the tables can go back without any TLB maintenance.
            mapper.destroy(&mut mem, frames, 0..ENTRIES, |_| {});
            return Err(reason);
        }
    };
    mem.zero(empty_root);

    mmu::switch_kernel_root(mapper.root());
    mmu::enable_user_half(empty_root, features.asid16);
    mmu::harden_sctlr(features.pan);
    let pan = features.pan && mmu::enable_pan();
    EMPTY_USER_ROOT.store(empty_root, Ordering::Release);
    *KERNEL_TABLES.lock() = Some(mapper);
    Ok(KernelSpaceReport {
        hhdm_bytes,
        tlb_tags: mmu::asid_count(),
        // Every user leaf carries PXN (`Aarch64Format`); WXN adds "writable is never executable".
        user_execute_blocked: true,
        user_access_blocked: pan,
    })
}

/// Points TTBR0 back at the empty root under ASID 0: user addresses fault until a user space is
/// activated. Before `init` TTBR0 walks are still disabled, which means the same.
pub fn activate_kernel_space() {
    let root = EMPTY_USER_ROOT.load(Ordering::Acquire);
    if root != 0 {
        // ASID 0 never tags a translation (the empty root has none), so nothing to flush.
        mmu::activate_user_root(root, 0, false);
    }
}

/// What `mmu::switch_kernel_root` requires: the code doing the switch and the stack it runs on
/// translate in the new tree exactly as in the boot tables (4 KiB pages of the kernel image at
/// its link address, from its physical load address, which is how `boot_mmu` maps the image).
fn check_switch_is_seamless(
    mapper: &Mapper<Aarch64Format>,
    mem: &HhdmTables,
) -> Result<(), &'static str> {
    let sp: u64;
    // SAFETY: copying SP into a register has no side effects.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    let code = mmu::switch_kernel_root as *const () as u64;
    let (start, end) = kernel_image_virt();
    for va in [sp - 8, code] {
        let same = (start..end).contains(&va)
            && mapper
                .translate(mem, va)
                .is_some_and(|t| t.level == 0 && t.phys == image_virt_to_phys(va));
        if !same {
            return Err("the running code or stack would move in the switch to the kernel tables");
        }
    }
    Ok(())
}

/// What a failed mapping was for, for the `[paging]` line and the stage's reason.
#[derive(Debug, Clone, Copy)]
enum Part {
    Ram,
    Image,
    Device,
}

impl Part {
    fn reason(self) -> &'static str {
        match self {
            Part::Ram => "mapping RAM into the HHDM failed (see the [paging] line above)",
            Part::Image => "mapping the kernel image failed (see the [paging] line above)",
            Part::Device => "mapping device MMIO failed (see the [paging] line above)",
        }
    }
}

/// Prints the details and returns the stage reason.
fn failed(part: Part, at: u64, error: MapError) -> &'static str {
    let _ = writeln!(
        serial::Writer,
        "[paging] {part:?} at physical {at:#x}: {error}"
    );
    part.reason()
}

/// Maps everything into `mapper`; returns the bytes of RAM the HHDM covers.
fn build(
    mapper: &mut Mapper<Aarch64Format>,
    mem: &mut HhdmTables,
    frames: &mut impl FrameSource,
    info: &BootInfo,
) -> Result<u64, &'static str> {
    let ram = ram_ranges(&info.memory);
    let image = image_sections();
    let image_phys = kernel_image_phys();
    let block = level_size(1);
    // The 2 MiB blocks of the HHDM that the image's frames touch get 4 KiB pages.
    let span = PhysRange {
        start: image_phys.start & !(block - 1),
        end: image_phys.end.next_multiple_of(block),
    };
    let in_ram = |pa: u64| ram.iter().any(|r| (r.start..r.end).contains(&pa));

    let mut hhdm_bytes = 0;
    for range in &ram {
        let range = PhysRange {
            start: range.start,
            end: range.end.min(HHDM_PHYS_LIMIT),
        };
        if range.is_empty() {
            continue;
        }
        hhdm_bytes += range.len();
        let below = PhysRange {
            start: range.start,
            end: range.end.min(span.start),
        };
        let above = PhysRange {
            start: range.start.max(span.end),
            end: range.end,
        };
        for piece in [below, above] {
            if !piece.is_empty() {
                map_blocks(mapper, mem, frames, piece, DATA)
                    .map_err(|(at, e)| failed(Part::Ram, at, e))?;
            }
        }
    }

    // The HHDM alias of the image's frames: never executable, and text and rodata never
    // writable through it either.
    for pa in (span.start..span.end).step_by(PAGE_SIZE as usize) {
        let flags = if (image_phys.start..image_phys.end).contains(&pa) {
            if image.start + (pa - image_phys.start) < image.rodata_end {
                RODATA
            } else {
                DATA
            }
        } else if in_ram(pa) {
            DATA
        } else {
            continue;
        };
        mapper
            .map(mem, frames, HHDM_BASE + pa, pa, flags)
            .map_err(|e| failed(Part::Ram, pa, e))?;
    }

    // The image at its link address, from wherever the loader put it.
    for va in (image.start..image.end).step_by(PAGE_SIZE as usize) {
        if stacks::guard_page_of(va).is_some() {
            continue;
        }
        let flags = if va < image.text_end {
            TEXT
        } else if va < image.rodata_end {
            RODATA
        } else {
            DATA
        };
        let pa = image_virt_to_phys(va);
        mapper
            .map(mem, frames, va, pa, flags)
            .map_err(|e| failed(Part::Image, pa, e))?;
    }

    for range in devices(info).into_iter().flatten() {
        map_device(mapper, mem, frames, range).map_err(|(at, e)| failed(Part::Device, at, e))?;
    }
    Ok(hhdm_bytes)
}

/// The MMIO ranges the kernel uses: the console and the GIC's register frames.
fn devices(info: &BootInfo) -> [Option<PhysRange>; 3] {
    let console = info.console.and_then(|console| match console {
        ConsoleDevice::Pl011 { base } => PhysRange::from_start_len(base, PL011_SIZE),
        ConsoleDevice::Ns16550Port { .. } => None,
    });
    let (first, second) = match info.interrupt_controller {
        Some(InterruptController::GicV2 {
            distributor,
            cpu_interface,
        }) => (Some(distributor), Some(cpu_interface)),
        Some(InterruptController::GicV3 {
            distributor,
            redistributors,
        }) => (Some(distributor), Some(redistributors)),
        None => (None, None),
    };
    [console, first, second]
}

/// Maps the physical `range` (frame aligned) at its HHDM address in the largest blocks its
/// alignment allows. On error returns the physical address that failed.
fn map_blocks(
    mapper: &mut Mapper<Aarch64Format>,
    mem: &mut HhdmTables,
    frames: &mut impl FrameSource,
    range: PhysRange,
    flags: MapFlags,
) -> Result<(), (u64, MapError)> {
    let mut pa = range.start;
    while pa < range.end {
        let level = [2u8, 1]
            .into_iter()
            .find(|&level| {
                let size = level_size(level);
                pa.is_multiple_of(size) && range.end - pa >= size
            })
            .unwrap_or(0);
        let va = HHDM_BASE + pa;
        let result = if level == 0 {
            mapper.map(mem, frames, va, pa, flags)
        } else {
            mapper.map_huge(mem, frames, va, pa, flags, level)
        };
        result.map_err(|e| (pa, e))?;
        pa += level_size(level);
    }
    Ok(())
}

/// Maps an MMIO range (widened to whole pages) Device-nGnRnE with 4 KiB pages. A page that an
/// earlier device range already mapped as device memory is fine (ranges may share a page);
/// anything else in the way (RAM) is an error.
fn map_device(
    mapper: &mut Mapper<Aarch64Format>,
    mem: &mut HhdmTables,
    frames: &mut impl FrameSource,
    range: PhysRange,
) -> Result<(), (u64, MapError)> {
    let start = range.start & !(PAGE_SIZE - 1);
    let end = range.end.next_multiple_of(PAGE_SIZE);
    if end > HHDM_PHYS_LIMIT {
        return Err((start, MapError::PhysicalTooHigh));
    }
    for pa in (start..end).step_by(PAGE_SIZE as usize) {
        let va = HHDM_BASE + pa;
        match mapper.map(mem, frames, va, pa, DEVICE) {
            Ok(()) => {}
            Err(MapError::AlreadyMapped)
                if mapper
                    .translate(mem, va)
                    .is_some_and(|t| t.phys == pa && t.flags.contains(MapFlags::DEVICE)) => {}
            Err(error) => return Err((pa, error)),
        }
    }
    Ok(())
}

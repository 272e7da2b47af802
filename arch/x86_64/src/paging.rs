//! x86_64 page tables: the kernel address space and the hooks user address spaces run on.
//!
//! Owns the kernel's PML4 (built once in [`init_kernel_space`] and never changed in its upper
//! half afterwards, so every user PML4 can share it by copying slots 256..512), the HHDM table
//! accessor, and the CR3/PCID/INVLPG/INVPCID side of `kernel_core::paging::AddressSpaceHal`.
//! It must never flush lazily where the portable layer expects a flush, and never let the HHDM
//! offset be written anywhere but `layout`.

use crate::cpu;
use crate::layout::{HHDM_OFFSET, KERNEL_OFFSET, LOW_MEMORY_END, kernel_image_virt};
use arch_paging::X86_64Format;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel_core::boot_info::{BootInfo, PhysRange};
use kernel_core::hal::KernelSpaceReport;
use kernel_core::memory_map::ram_ranges;
use kernel_core::paging::{
    AddressSpaceHal, FrameSource, Half, MapError, MapFlags, Mapper, PAGE_SIZE, Shootdown,
    TableMemory, level_size,
};
use spin::Mutex;
use x86_64::instructions::tlb;
use x86_64::registers::control::{Cr3, Cr4, Cr4Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::{PhysAddr, VirtAddr};

/// Page tables reached through the HHDM by physical address.
#[derive(Debug, Clone, Copy, Default)]
pub struct HhdmTables;

fn entry_ptr(table: u64, index: usize) -> *mut u64 {
    debug_assert!(table.is_multiple_of(PAGE_SIZE) && index < 512);
    (HHDM_OFFSET + table + index as u64 * 8) as *mut u64
}

impl TableMemory for HhdmTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a page-table frame (allocated from the frame allocator or read from
        // a present table entry), so it is RAM the HHDM maps; `index < 512` keeps the access
        // inside it, aligned.
        unsafe { entry_ptr(table, index).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `read`; the caller (the mapper, under its lock) owns the table.
        unsafe { entry_ptr(table, index).write_volatile(value) }
    }

    fn zero(&mut self, table: u64) {
        // SAFETY: `table` is a whole page-table frame the caller just allocated and owns.
        unsafe { core::ptr::write_bytes(entry_ptr(table, 0), 0, 512) }
    }
}

/// The kernel's page tables (after `init_kernel_space`).
static KERNEL: Mutex<Option<Mapper<X86_64Format>>> = Mutex::new(None);
/// Physical address of the kernel PML4, read without the lock by `init_root` and `activate`.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
/// PCIDs whose TLB entries may be stale because they were changed while not active and the
/// CPU has no INVPCID: the next activation of such a PCID flushes it.
static STALE_PCIDS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static PCID_ENABLED: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
}

/// Runs `f` on the kernel mapper (after `init_kernel_space`).
pub fn with_kernel_mapper<R>(f: impl FnOnce(&mut Mapper<X86_64Format>) -> R) -> Option<R> {
    KERNEL.lock().as_mut().map(f)
}

/// Maps `[phys_start, phys_end)` at `HHDM_OFFSET + phys` with the largest pages that fit.
fn map_direct(
    mapper: &mut Mapper<X86_64Format>,
    frames: &mut impl FrameSource,
    phys_start: u64,
    phys_end: u64,
    huge_1g: bool,
) -> Result<(), &'static str> {
    let flags = MapFlags::READ | MapFlags::WRITE | MapFlags::GLOBAL;
    let mut phys = phys_start;
    while phys < phys_end {
        let va = HHDM_OFFSET + phys;
        let level = [2u8, 1]
            .into_iter()
            .filter(|&l| l == 1 || huge_1g)
            .find(|&l| phys.is_multiple_of(level_size(l)) && phys_end - phys >= level_size(l));
        let result = match level {
            Some(level) => mapper.map_huge(&mut HhdmTables, frames, va, phys, flags, level),
            None => mapper.map(&mut HhdmTables, frames, va, phys, flags),
        };
        result.map_err(|_| "cannot map the HHDM")?;
        phys += level.map_or(PAGE_SIZE, level_size);
    }
    Ok(())
}

/// Maps the kernel image section `[start, end)` (virtual, page aligned) with `flags`.
fn map_section(
    mapper: &mut Mapper<X86_64Format>,
    frames: &mut impl FrameSource,
    start: u64,
    end: u64,
    flags: MapFlags,
) -> Result<(), &'static str> {
    for va in (start..end).step_by(PAGE_SIZE as usize) {
        mapper
            .map(
                &mut HhdmTables,
                frames,
                va,
                va - KERNEL_OFFSET,
                flags | MapFlags::GLOBAL,
            )
            .map_err(|_| "cannot map the kernel image")?;
    }
    Ok(())
}

/// Builds the kernel PML4, switches to it and enables global pages, PCIDs, SMEP and SMAP.
pub fn init_kernel_space(
    info: &BootInfo,
    frames: &mut impl FrameSource,
) -> Result<KernelSpaceReport, &'static str> {
    let features = cpu::features();
    if !features.nx {
        return Err("the CPU has no execute-disable bit (NX); W^X cannot be enforced");
    }
    let mut mapper = Mapper::<X86_64Format>::new(&mut HhdmTables, frames, Half::Kernel)
        .map_err(|_| "no frame for the kernel PML4")?;
    // Every kernel-half slot gets its table now, so user PML4s can copy them once.
    mapper
        .populate_root(&mut HhdmTables, frames, 256..512)
        .map_err(|_| "no frames for the kernel-half tables")?;

    let mut hhdm_bytes = 0;
    for range in ram_ranges(&info.memory) {
        map_direct(
            &mut mapper,
            frames,
            range.start,
            range.end,
            features.huge_1g,
        )?;
        hhdm_bytes += range.len();
    }
    // Boot data the kernel still reads (start info, command line, modules) and the first MiB
    // (BIOS data, ACPI RSDP) may lie outside what the firmware calls RAM: map what is missing.
    let low_memory = PhysRange {
        start: 0,
        end: LOW_MEMORY_END,
    };
    for range in info.reserved.iter().map(|r| r.range).chain([low_memory]) {
        let start = range.start & !(PAGE_SIZE - 1);
        for phys in (start..range.end).step_by(PAGE_SIZE as usize) {
            let va = HHDM_OFFSET + phys;
            if mapper.translate(&HhdmTables, va).is_none() {
                let flags = MapFlags::READ | MapFlags::WRITE | MapFlags::GLOBAL;
                mapper
                    .map(&mut HhdmTables, frames, va, phys, flags)
                    .map_err(|_| "cannot map boot data into the HHDM")?;
                hhdm_bytes += PAGE_SIZE;
            }
        }
    }

    let (image_start, image_end) = kernel_image_virt();
    let symbol = |s: &u8| s as *const u8 as u64;
    // SAFETY: only the addresses of the linker symbols are taken; nothing is read.
    let (text, text_end, rodata, rodata_end, data) = unsafe {
        (
            symbol(&__text_start),
            symbol(&__text_end),
            symbol(&__rodata_start),
            symbol(&__rodata_end),
            symbol(&__data_start),
        )
    };
    debug_assert!(image_start == text && text_end == rodata && rodata_end == data);
    map_section(
        &mut mapper,
        frames,
        text,
        text_end,
        MapFlags::READ | MapFlags::EXECUTE,
    )?;
    map_section(&mut mapper, frames, rodata, rodata_end, MapFlags::READ)?;
    map_section(
        &mut mapper,
        frames,
        data,
        image_end,
        MapFlags::READ | MapFlags::WRITE,
    )?;

    let root = mapper.root();
    let frame = PhysFrame::from_start_address(PhysAddr::new(root)).map_err(|_| "bad PML4")?;
    // SAFETY: the new PML4 maps everything the kernel touches from here on at the same virtual
    // addresses as the boot tables (the image, the HHDM over all RAM, including the current
    // stack in .bss and the boot data); the identity map is dropped on purpose. PCID 0.
    unsafe { Cr3::write(frame, Cr3::read().1) };
    let mut cr4 = Cr4::read() | Cr4Flags::PAGE_GLOBAL;
    if features.pcid {
        cr4 |= Cr4Flags::PCID;
    }
    // SAFETY: global pages only keep kernel-half entries (the GLOBAL ones) across CR3 writes;
    // PCIDE may be set because CR3's PCID is 0 (just written) and we are in long mode.
    unsafe { Cr4::write(cr4) };
    PCID_ENABLED.store(features.pcid, Ordering::Release);
    let (smep, smap) = cpu::enable_user_access_protection();

    KERNEL_ROOT.store(root, Ordering::Release);
    *KERNEL.lock() = Some(mapper);
    Ok(KernelSpaceReport {
        hhdm_bytes,
        tlb_tags: X86Spaces::asid_count(),
        user_execute_blocked: smep,
        user_access_blocked: smap,
    })
}

/// Makes the kernel PML4 current (PCID 0): no user half.
pub fn activate_kernel_space() {
    let root = KERNEL_ROOT.load(Ordering::Acquire);
    if root != 0 {
        X86Spaces::activate(root, 0, false);
    }
}

fn pcid_stale(pcid: u32, set: Option<bool>) -> bool {
    let (word, mask) = (&STALE_PCIDS[(pcid as usize / 64) % 64], 1u64 << (pcid % 64));
    match set {
        Some(true) => word.fetch_or(mask, Ordering::AcqRel) & mask != 0,
        Some(false) => word.fetch_and(!mask, Ordering::AcqRel) & mask != 0,
        None => word.load(Ordering::Acquire) & mask != 0,
    }
}

fn current_pcid() -> u32 {
    if PCID_ENABLED.load(Ordering::Acquire) {
        u32::from(Cr3::read_raw().1 & 0xfff)
    } else {
        0
    }
}

/// The x86_64 side of user address spaces.
#[derive(Debug)]
pub struct X86Spaces;

impl AddressSpaceHal for X86Spaces {
    type Format = X86_64Format;
    type Memory = HhdmTables;

    fn memory() -> HhdmTables {
        HhdmTables
    }

    fn asid_count() -> u32 {
        if PCID_ENABLED.load(Ordering::Acquire) {
            4096
        } else {
            1
        }
    }

    fn init_root(mem: &mut HhdmTables, root: u64) {
        let kernel = KERNEL_ROOT.load(Ordering::Acquire);
        for slot in 256..512 {
            let entry = mem.read(kernel, slot);
            mem.write(root, slot, entry);
        }
    }

    fn flush_page(asid: u32, va: u64) {
        let va = VirtAddr::new_truncate(va);
        if asid == current_pcid() {
            tlb::flush(va);
        } else if cpu::features().invpcid {
            if let Ok(pcid) = tlb::Pcid::new(asid as u16) {
                // SAFETY: INVPCID exists (CPUID) and PCIDs are enabled (the asid is non-zero only
                // then); invalidating a translation is always safe.
                unsafe { tlb::flush_pcid(tlb::InvPcidCommand::Address(va, pcid)) };
            }
        } else {
            pcid_stale(asid, Some(true));
        }
    }

    fn flush_asid(asid: u32) {
        if !PCID_ENABLED.load(Ordering::Acquire) {
            tlb::flush_all();
        } else if cpu::features().invpcid {
            if let Ok(pcid) = tlb::Pcid::new(asid as u16) {
                // SAFETY: as in `flush_page`.
                unsafe { tlb::flush_pcid(tlb::InvPcidCommand::Single(pcid)) };
            }
        } else {
            pcid_stale(asid, Some(true));
            if asid == current_pcid() {
                tlb::flush_all();
            }
        }
    }

    fn flush_all_non_global() {
        if PCID_ENABLED.load(Ordering::Acquire) && cpu::features().invpcid {
            // SAFETY: as in `flush_page`.
            unsafe { tlb::flush_pcid(tlb::InvPcidCommand::AllExceptGlobal) };
        } else {
            for word in &STALE_PCIDS {
                word.store(u64::MAX, Ordering::Release);
            }
            tlb::flush_all();
        }
    }

    fn activate(root: u64, asid: u32, flush: bool) {
        let mut value = root;
        if PCID_ENABLED.load(Ordering::Acquire) {
            let flush = flush || pcid_stale(asid, Some(false));
            value |= u64::from(asid & 0xfff);
            if !flush {
                value |= 1 << 63;
            }
        }
        // SAFETY: `root` is a PML4 whose kernel half is the kernel's own (copied by
        // `init_root`, or the kernel root itself), so the kernel keeps running unchanged; the
        // PCID (when enabled) is below 4096.
        unsafe {
            core::arch::asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags));
        }
    }

    fn shootdown(_request: Shootdown) {
        // One CPU runs for now; with SMP this sends an IPI to every CPU that may cache the
        // entries (see docs/ARCHITECTURE.md section 3).
    }
}

/// Maps the device page at physical `phys` uncached at its HHDM address (idempotent) and
/// returns that virtual address.
pub fn map_device_page(phys: u64, frames: &mut impl FrameSource) -> Result<u64, MapError> {
    let phys = phys & !(PAGE_SIZE - 1);
    let va = HHDM_OFFSET + phys;
    let flags = MapFlags::READ | MapFlags::WRITE | MapFlags::GLOBAL | MapFlags::DEVICE;
    with_kernel_mapper(|mapper| match mapper.translate(&HhdmTables, va) {
        Some(_) => Ok(va),
        None => mapper
            .map(&mut HhdmTables, frames, va, phys, flags)
            .map(|()| va),
    })
    .unwrap_or(Err(MapError::NotMapped))
}

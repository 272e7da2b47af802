//! PVH `hvm_start_info` → `BootInfo`.
//!
//! Owns the reading of the Xen PVH boot structures QEMU leaves in memory (layout from Xen's
//! `arch-x86/hvm/start_info.h`). Every pointer in them is a physical address checked against
//! what the boot HHDM maps before it is read; anything malformed becomes a warning in
//! `BootInfo`, never a fault. Nothing outside this module sees a PVH structure.

use crate::layout::{
    BOOT_HHDM_LIMIT, HHDM_OFFSET, KERNEL_OFFSET, LOW_MEMORY_END, kernel_image_virt,
};
use crate::serial::COM1;
use kernel_core::boot_info::{
    BootInfo, BootSource, ConsoleDevice, PhysRange, RegionKind, ReservedKind,
};
use spin::Once;

const START_INFO_MAGIC: u32 = 0x336e_c578;
const MAX_CMDLINE: u64 = 4096;
const MAX_MODULES: u32 = 16;
const MAX_MEMMAP_ENTRIES: u32 = 256;

static BOOT_INFO: Once<BootInfo> = Once::new();

/// `struct hvm_start_info`.
#[repr(C)]
#[derive(Clone, Copy)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_modlist_entry`.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// `struct hvm_memmap_table_entry` (E820 types).
#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Reads a `T` at physical address `phys` through the HHDM, or `None` when `[phys, phys+size)`
/// is not entirely inside the boot direct map or is misaligned for `T`.
fn read_phys<T: Copy>(phys: u64) -> Option<T> {
    let size = core::mem::size_of::<T>() as u64;
    let end = phys.checked_add(size)?;
    if end > BOOT_HHDM_LIMIT || !phys.is_multiple_of(core::mem::align_of::<T>() as u64) {
        return None;
    }
    // SAFETY: the range lies below BOOT_HHDM_LIMIT, which the boot page tables map read-write at
    // HHDM_OFFSET; the address is aligned for T, and T is a plain-data `Copy` type valid for any
    // bit pattern (integers only).
    Some(unsafe { core::ptr::read_volatile((HHDM_OFFSET + phys) as *const T) })
}

/// The NUL-terminated command line at `phys`, as a `'static` string, or a warning.
fn read_cmdline(phys: u64) -> Result<&'static str, &'static str> {
    if phys == 0 {
        return Ok("");
    }
    let mut len = 0;
    loop {
        if len == MAX_CMDLINE {
            return Err("command line longer than 4096 bytes or unterminated; ignored");
        }
        match read_phys::<u8>(phys + len) {
            Some(0) => break,
            Some(_) => len += 1,
            None => return Err("command line outside mapped memory; ignored"),
        }
    }
    // SAFETY: all `len` bytes were just read through the HHDM, so the range is mapped; the memory
    // belongs to the boot data that `parse` reserves, so it is never reused and lives forever.
    let bytes =
        unsafe { core::slice::from_raw_parts((HHDM_OFFSET + phys) as *const u8, len as usize) };
    core::str::from_utf8(bytes).map_err(|_| "command line is not UTF-8; ignored")
}

fn region_kind(e820_type: u32) -> RegionKind {
    match e820_type {
        1 => RegionKind::Usable,
        3 => RegionKind::AcpiReclaimable,
        4 => RegionKind::AcpiNvs,
        5 => RegionKind::Defective,
        _ => RegionKind::Reserved,
    }
}

fn kernel_image_phys() -> PhysRange {
    let (start, end) = kernel_image_virt();
    PhysRange {
        start: start - KERNEL_OFFSET,
        end: end - KERNEL_OFFSET,
    }
}

fn reserve_table(info: &mut BootInfo, phys: u64, len: u64) {
    if let Some(range) = PhysRange::from_start_len(phys, len) {
        info.reserve(range, ReservedKind::BootData);
    }
}

fn parse(start_info_phys: u64) -> BootInfo {
    let mut info = BootInfo::new(BootSource::Pvh, HHDM_OFFSET, kernel_image_phys());
    info.hhdm_limit = BOOT_HHDM_LIMIT;
    info.console = Some(ConsoleDevice::Ns16550Port { port: COM1 });
    info.reserve(info.kernel_image, ReservedKind::KernelImage);
    info.reserve(
        PhysRange {
            start: 0,
            end: LOW_MEMORY_END,
        },
        ReservedKind::Firmware,
    );

    let Some(start) = read_phys::<StartInfo>(start_info_phys) else {
        info.warn("hvm_start_info pointer is outside mapped memory");
        return info;
    };
    if start.magic != START_INFO_MAGIC {
        info.warn("hvm_start_info has a bad magic number");
        return info;
    }
    reserve_table(
        &mut info,
        start_info_phys,
        core::mem::size_of::<StartInfo>() as u64,
    );

    match read_cmdline(start.cmdline_paddr) {
        Ok(line) => {
            info.cmdline = line;
            reserve_table(&mut info, start.cmdline_paddr, line.len() as u64 + 1);
        }
        Err(warning) => info.warn(warning),
    }
    if start.rsdp_paddr != 0 {
        info.acpi_rsdp = Some(start.rsdp_paddr);
    }

    if start.nr_modules > MAX_MODULES {
        info.warn("more than 16 boot modules; only the first is used");
    }
    let module_entry_size = core::mem::size_of::<ModlistEntry>() as u64;
    for index in 0..start.nr_modules.min(MAX_MODULES) as u64 {
        let Some(module) =
            read_phys::<ModlistEntry>(start.modlist_paddr + index * module_entry_size)
        else {
            info.warn("boot module list is outside mapped memory");
            break;
        };
        match PhysRange::from_start_len(module.paddr, module.size) {
            Some(range) if !range.is_empty() => {
                info.reserve(range, ReservedKind::BootModule);
                if info.initrd.is_none() {
                    info.initrd = Some(range);
                }
            }
            _ => info.warn("boot module with an empty or wrapping range ignored"),
        }
    }
    reserve_table(
        &mut info,
        start.modlist_paddr,
        start.nr_modules.min(MAX_MODULES) as u64 * module_entry_size,
    );

    if start.version < 1 || start.memmap_paddr == 0 {
        info.warn("hvm_start_info has no memory map (version 0)");
        return info;
    }
    if start.memmap_entries > MAX_MEMMAP_ENTRIES {
        info.warn("memory map has more than 256 entries; the rest were ignored");
    }
    let entry_size = core::mem::size_of::<MemmapEntry>() as u64;
    for index in 0..start.memmap_entries.min(MAX_MEMMAP_ENTRIES) as u64 {
        let Some(entry) = read_phys::<MemmapEntry>(start.memmap_paddr + index * entry_size) else {
            info.warn("memory map is outside mapped memory");
            break;
        };
        match PhysRange::from_start_len(entry.addr, entry.size) {
            Some(range) => info.add_memory(range, region_kind(entry.kind)),
            None => info.warn("memory-map entry wraps around the address space; ignored"),
        }
    }
    reserve_table(
        &mut info,
        start.memmap_paddr,
        start.memmap_entries.min(MAX_MEMMAP_ENTRIES) as u64 * entry_size,
    );
    info
}

/// Parses the start info once; later calls keep the first result.
pub fn parse_into_boot_info(start_info_phys: u64) {
    BOOT_INFO.call_once(|| parse(start_info_phys));
}

/// The parsed boot information.
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO
        .get()
        .expect("boot info is parsed in the entry path before the kernel main runs")
}

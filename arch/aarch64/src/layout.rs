//! The AArch64 virtual memory layout, defined once, and where the kernel image lies.
//!
//! Owns every fixed kernel virtual address: the HHDM and its extent, what the boot tables map,
//! the kernel image's link address and the region of guarded kernel stacks; and the one record
//! of the image's *physical* address, which is not fixed: the loader may put the `Image` at any
//! 2 MiB-aligned address (arm64 boot protocol), the entry code finds it with `adr` before the
//! MMU is on and `entry` records it here before any other Rust code runs. Every
//! other module derives addresses from these constants and that record ([`kernel_image_phys`],
//! [`image_virt_to_phys`]); nothing may assume a link-time physical address. The linker script
//! (`boot/linker/aarch64.ld`) repeats [`KERNEL_IMAGE_BASE`] because a linker script cannot import
//! Rust; `entry.rs` checks at boot, before the MMU is on, that `_start` is linked there, so the
//! two can never silently disagree. Nothing else may hard-code these values.
//!
//! The kernel half (TTBR1, `0xffff_0000_0000_0000..`), by level-0 slot (512 GiB each):
//!
//! ```text
//! slots   0..256   HHDM: physical 0..128 TiB at HHDM_BASE + pa (only RAM and the MMIO the
//!                  kernel uses are mapped; the image's own frames read-only or read-write,
//!                  never executable)
//! slot  256        never mapped (the deliberate-fault address lives here)
//! slot  508        kernel stacks: 4096 slots of 64 KiB, each a guard page and 60 KiB of stack
//! slot  511        the kernel image, linked at KERNEL_IMAGE_BASE and mapped from the physical
//!                  address the loader chose
//! ```

use core::sync::atomic::{AtomicU64, Ordering};

/// Virtual address of physical address 0: the kernel reaches all of physical memory at
/// `HHDM_BASE + pa`. It is the lowest TTBR1 address with 48-bit virtual addresses
/// (`TCR_EL1.T1SZ = 16`), so the whole upper half is kernel space.
pub const HHDM_BASE: u64 = 0xffff_0000_0000_0000;

/// Virtual address the kernel image is linked at (its first byte, the `Image` header): the
/// start of level-0 slot 511, whatever physical address the loader chose. Both addresses are
/// 2 MiB aligned, so the image's pages keep their offsets within 2 MiB blocks.
pub const KERNEL_IMAGE_BASE: u64 = 0xffff_ff80_0000_0000;

/// Alignment the arm64 boot protocol guarantees for the image's physical address
/// (`text_offset` 0).
pub const IMAGE_ALIGN: u64 = 2 << 20;

/// Physical addresses the HHDM can hold (level-0 slots 0..256). RAM above it is left out of the
/// memory map with a warning.
pub const HHDM_PHYS_LIMIT: u64 = 1 << 47;

/// How much physical address space the *boot* tables map: 8 GiB of 1 GiB blocks. The device
/// tree, the frame bitmap and the first page tables must lie below it; RAM above it is withheld
/// from the frame allocator until the kernel's own tables map all of RAM (`BootInfo::hhdm_limit`).
pub const BOOT_HHDM_SIZE: u64 = 8 << 30;

/// Physical addresses below this are the QEMU `virt` MMIO window (flash, GIC, UART, RTC, virtio),
/// which the boot tables map Device-nGnRnE; the rest of [`BOOT_HHDM_SIZE`] they map Normal
/// write-back memory. A device register the kernel uses before its own tables are live must lie
/// below it, RAM the kernel reads through the boot HHDM above it.
pub const DEVICE_WINDOW_END: u64 = 1 << 30;

/// Start of the kernel-stack region (level-0 slot 508): mapped with 4 KiB pages only, never with
/// blocks, so that mapping and unmapping a stack never splits a live block.
pub const KERNEL_STACKS_BASE: u64 = 0xffff_fe00_0000_0000;

/// Pages per kernel-stack slot: the unmapped guard page and 15 pages (60 KiB) of stack.
pub const KERNEL_STACK_SLOT_PAGES: u64 = 16;

/// A kernel-half address that nothing ever maps (level-0 slot 256), for the deliberate fault.
pub const NEVER_MAPPED: u64 = 0xffff_8000_dead_b000;

const _: () = assert!(HHDM_BASE + HHDM_PHYS_LIMIT <= NEVER_MAPPED);
const _: () = assert!(NEVER_MAPPED < KERNEL_STACKS_BASE);
// The image has a level-0 slot of its own (the boot tables give it one level-1 and one level-2
// table, entry 0 of each), above the stack region's slot.
const _: () = assert!(
    KERNEL_IMAGE_BASE.is_multiple_of(512 << 30)
        && KERNEL_STACKS_BASE + (512 << 30) <= KERNEL_IMAGE_BASE
);
// The stack region fits in its level-0 slot.
const _: () = assert!(
    KERNEL_STACKS_BASE.is_multiple_of(512 << 30)
        && kernel_core::stack_region::MAX_SLOTS as u64 * KERNEL_STACK_SLOT_PAGES * 4096
            <= 512 << 30
);

/// The HHDM virtual address of physical address `pa`. Before `init_kernel_space` only meaningful
/// for `pa < BOOT_HHDM_SIZE`, afterwards for RAM and the mapped MMIO.
pub const fn phys_to_virt(pa: u64) -> u64 {
    HHDM_BASE + pa
}

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

/// Virtual bounds `[start, end)` of the kernel image: text, data, bss, page tables and the boot
/// and exception stacks.
pub fn kernel_image_virt() -> (u64, u64) {
    // Taking the address of a linker symbol reads nothing, so no unsafe is needed.
    let start = &raw const __kernel_start as u64;
    let end = &raw const __kernel_end as u64;
    (start, end)
}

/// The kernel image's three permission zones, page aligned by the linker script:
/// `[start, text_end)` text (read+execute), `[text_end, rodata_end)` read-only data (with the
/// exception table), `[rodata_end, end)` data and bss (read+write).
#[derive(Debug, Clone, Copy)]
pub struct ImageSections {
    /// First byte of the image (and of its text).
    pub start: u64,
    /// End of text, start of read-only data.
    pub text_end: u64,
    /// End of read-only data, start of data and bss.
    pub rodata_end: u64,
    /// End of the image.
    pub end: u64,
}

/// The kernel image's section boundaries (virtual addresses).
pub fn image_sections() -> ImageSections {
    let (start, end) = kernel_image_virt();
    ImageSections {
        start,
        text_end: &raw const __text_end as u64,
        rodata_end: &raw const __rodata_end as u64,
        end,
    }
}

/// Physical address of the image's first byte, as the entry code found it (0 until recorded).
static IMAGE_PHYS: AtomicU64 = AtomicU64::new(0);

/// Records the image's physical load address. Called once, by `entry::early_main`, first thing:
/// `entry.rs` has already checked that it is 2 MiB aligned and inside the boot window.
pub(crate) fn record_image_phys(pa: u64) {
    let previous = IMAGE_PHYS.swap(pa, Ordering::AcqRel);
    assert!(
        previous == 0,
        "the image's physical address was recorded twice"
    );
}

/// Physical address the loader put the image at (its first byte, the `Image` header).
pub fn image_phys_base() -> u64 {
    let pa = IMAGE_PHYS.load(Ordering::Acquire);
    assert!(
        pa != 0,
        "the image's physical address is read before it was recorded"
    );
    pa
}

/// The physical address of `va`, an address inside the kernel image: what the page tables map
/// it to, and what anything handed to firmware or hardware must use (a PSCI `CPU_ON` entry
/// point, for one). Panics for an address outside the image: a wrong physical address would
/// fail silently far from here.
pub fn image_virt_to_phys(va: u64) -> u64 {
    let (start, end) = kernel_image_virt();
    assert!(
        (start..end).contains(&va),
        "{va:#x} is not in the kernel image"
    );
    va - start + image_phys_base()
}

/// Physical bounds of the kernel image, from its recorded load address.
pub fn kernel_image_phys() -> kernel_core::boot_info::PhysRange {
    let (start, end) = kernel_image_virt();
    let base = image_phys_base();
    kernel_core::boot_info::PhysRange {
        start: base,
        end: base + (end - start),
    }
}

//! The x86_64 virtual memory layout, defined once.
//!
//! Owns the two offsets every other x86_64 module derives addresses from. The linker script
//! (`boot/linker/x86_64.ld`) repeats `KERNEL_OFFSET` because a linker script cannot import Rust;
//! `entry.rs` passes these constants into its assembly so the boot tables and the Rust code can
//! never disagree. Nothing else may hard-code either value.

/// Virtual address of physical address 0 in the kernel's direct map of RAM (HHDM): the start of
/// the higher half, PML4 slot 256.
pub const HHDM_OFFSET: u64 = 0xffff_8000_0000_0000;

/// How much physical memory the boot page tables direct-map (4 GiB of 2 MiB pages).
pub const BOOT_HHDM_LIMIT: u64 = 4 << 30;

/// End of the real-mode area and BIOS data (first MiB): kept out of the frame allocator and
/// always direct-mapped.
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// The kernel image is linked at `KERNEL_OFFSET + physical address` (top 2 GiB, PML4 slot 511,
/// as `code-model=kernel` requires).
pub const KERNEL_OFFSET: u64 = 0xffff_ffff_8000_0000;

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Virtual bounds `[start, end)` of the kernel image, bss and boot stacks included.
pub fn kernel_image_virt() -> (u64, u64) {
    // Taking the address of a linker symbol reads nothing.
    let start = &raw const __kernel_start as u64;
    let end = &raw const __kernel_end as u64;
    (start, end)
}

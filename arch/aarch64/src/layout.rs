//! The AArch64 virtual memory layout, defined once.
//!
//! Owns the HHDM base and the extent of the boot mapping; every other module derives addresses
//! from these constants. The linker script (`boot/linker/aarch64.ld`) repeats the HHDM base
//! because a linker script cannot import Rust; `entry.rs` checks at boot, before the MMU is on,
//! that the image really runs at `HHDM_BASE + load address`, so the two can never silently
//! disagree. Nothing else may hard-code these values.

/// Virtual address of physical address 0: the kernel reaches all of physical memory at
/// `HHDM_BASE + pa`, and the kernel image is linked at `HHDM_BASE + its load address`. It is the
/// lowest TTBR1 address with 48-bit virtual addresses (`TCR_EL1.T1SZ = 16`), so the whole upper
/// half is kernel space.
pub const HHDM_BASE: u64 = 0xffff_0000_0000_0000;

/// How much physical address space the boot tables map: 8 GiB of 1 GiB blocks.
pub const HHDM_SIZE: u64 = 8 << 30;

/// Physical addresses below this are the QEMU `virt` MMIO window (flash, GIC, UART, RTC, virtio)
/// and are mapped Device-nGnRnE; the rest of [`HHDM_SIZE`] is mapped Normal write-back memory.
/// A device register must lie below it, RAM the kernel reads through the HHDM above it.
pub const DEVICE_WINDOW_END: u64 = 1 << 30;

/// The HHDM virtual address of physical address `pa`. Only meaningful for `pa < HHDM_SIZE`.
pub const fn phys_to_virt(pa: u64) -> u64 {
    HHDM_BASE + pa
}

unsafe extern "C" {
    static __kernel_start: u8;
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

/// Physical bounds of the kernel image (the same range, seen through the HHDM).
pub fn kernel_image_phys() -> kernel_core::boot_info::PhysRange {
    let (start, end) = kernel_image_virt();
    kernel_core::boot_info::PhysRange {
        start: start - HHDM_BASE,
        end: end - HHDM_BASE,
    }
}

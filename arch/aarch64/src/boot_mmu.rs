//! The boot page tables and the switch that turns the MMU on.
//!
//! Owns the first translation setup, in `.bss`, built from the physical address the entry code
//! found the image at (never from a link-time one):
//!
//! - physical `0..BOOT_HHDM_SIZE` with 1 GiB blocks, the first GiB (the `virt` MMIO window)
//!   Device-nGnRnE and the rest Normal write-back inner-shareable memory. TTBR1 sees this as the
//!   HHDM at `HHDM_BASE` (level-0 slot 0 of the upper half), TTBR0 as an identity map, which the
//!   entry code needs only for the few instructions between `SCTLR_EL1.M = 1` and the branch to
//!   the higher half; `entry.rs` then stops TTBR0 walks;
//! - the kernel image at its link address `KERNEL_IMAGE_BASE` (level-0 slot 511): 4 MiB of 4 KiB
//!   pages from the load address, so that the guard page under each boot stack (`stacks.rs`) can
//!   stay unmapped.
//!
//! Both share one level-0 table, which TTBR0 and TTBR1 both point at. Everything is mapped RWX:
//! these tables live only until `kernel_space::init` switches to the kernel's own,
//! least-privilege tables, which use the same MAIR attribute indices (both come from
//! `arch_paging`), the same TCR and the same virtual addresses.
//!
//! This module runs with the MMU and caches off, from the physical load address: its assembly
//! may use only PC-relative addressing and must never touch the stack.

use crate::layout::{BOOT_HHDM_SIZE, KERNEL_IMAGE_BASE};
use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1};
use arch_paging::{MAIR_DEVICE_INDEX, MAIR_NORMAL_INDEX, MAIR_VALUE};
use core::arch::global_asm;

/// MAIR_EL1 index of Device-nGnRnE memory (MMIO): the one the final tables use.
const ATTR_DEVICE: u64 = MAIR_DEVICE_INDEX;
/// MAIR_EL1 index of Normal write-back, read/write-allocate memory (RAM).
const ATTR_NORMAL: u64 = MAIR_NORMAL_INDEX;

/// Memory attributes: the value the final tables' descriptors are encoded for.
const MAIR: u64 = MAIR_VALUE;
// Cross-check against an independent definition: index 0 device, index 1 normal cacheable.
const _: () = assert!(
    MAIR == MAIR_EL1::Attr0_Device::nonGathering_nonReordering_noEarlyWriteAck.value
        | MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
        | MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value
        && ATTR_DEVICE == 0
        && ATTR_NORMAL == 1
);

// Stage-1 descriptor bits (VMSAv8-64, 4 KiB granule).
const DESC_BLOCK: u64 = 0b01;
const DESC_TABLE: u64 = 0b11;
const DESC_ATTR_SHIFT: u64 = 2;
const DESC_INNER_SHAREABLE: u64 = 0b11 << 8;
const DESC_ACCESS_FLAG: u64 = 1 << 10;
const DESC_PXN: u64 = 1 << 53;
const DESC_UXN: u64 = 1 << 54;

/// A 1 GiB block of MMIO: EL1 read/write (AP = 00), never executable.
const DEVICE_BLOCK: u64 =
    DESC_BLOCK | (ATTR_DEVICE << DESC_ATTR_SHIFT) | DESC_ACCESS_FLAG | DESC_PXN | DESC_UXN;
/// A 1 GiB block of RAM: EL1 read/write/execute (the entry code runs from it through the
/// identity map), EL0 nothing.
const NORMAL_BLOCK: u64 = DESC_BLOCK
    | (ATTR_NORMAL << DESC_ATTR_SHIFT)
    | DESC_INNER_SHAREABLE
    | DESC_ACCESS_FLAG
    | DESC_UXN;

/// A 4 KiB page of RAM (level 3), with the attributes of [`NORMAL_BLOCK`].
const NORMAL_PAGE: u64 = NORMAL_BLOCK | DESC_TABLE;

/// Number of 1 GiB blocks in the HHDM (level-1 entries used).
const HHDM_BLOCKS: u64 = BOOT_HHDM_SIZE >> 30;
const _: () = assert!(HHDM_BLOCKS >= 2 && HHDM_BLOCKS <= 512);

/// Level-0 entry of the kernel image. The image starts its level-0 slot, so it uses entry 0 of
/// its level-1 table and entries 0 and 1 (two level-3 tables, 4 MiB) of its level-2 table. The
/// level-3 entries map 4 KiB pages, so any page-aligned physical address would do here; the
/// entry code insists on the 2 MiB the boot protocol promises anyway.
const IMAGE_L0_INDEX: u64 = (KERNEL_IMAGE_BASE >> 39) & 511;
/// Byte offset of that entry in the level-0 table.
const IMAGE_L0_OFFSET: u64 = IMAGE_L0_INDEX * 8;
const _: () = assert!(IMAGE_L0_INDEX != 0 && KERNEL_IMAGE_BASE.is_multiple_of(512 << 30));

/// TCR_EL1 without IPS (filled in at boot from ID_AA64MMFR0_EL1.PARange): 48-bit VAs in both
/// halves, 4 KiB granules, table walks cacheable and inner-shareable, ASIDs from TTBR0 (A1 = 0),
/// 8-bit ASIDs (`kernel_space` sets AS for 16 bits when the CPU has them).
const TCR: u64 = TCR_EL1::T0SZ.val(16).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::T1SZ.val(16).value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::SH1::Inner.value
    | TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value;

/// Largest IPS the boot tables use: 48 bits. A 52-bit PARange (`-cpu max`) needs FEAT_LPA2
/// descriptors, which these tables do not use, so it is clamped.
const MAX_IPS: u64 = 0b101;

/// TCR_EL1.EPD0: stop TTBR0 walks (set once the kernel runs in the higher half).
pub const TCR_EPD0: u64 = TCR_EL1::EPD0::DisableTTBR0Walks.value;

/// SCTLR_EL1 bits that are RES1 on Armv8.0 (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE): writing
/// them as 1 keeps later architecture versions in their v8.0-compatible behaviour.
const SCTLR_RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

/// SCTLR_EL1 before the MMU is on: little-endian, MMU and caches off, alignment checks off.
pub const SCTLR_MMU_OFF: u64 = SCTLR_RES1;

/// SCTLR_EL1 with the boot mapping live: MMU, data and instruction caches on, stack-pointer
/// alignment checks on (a misaligned SP is a bug worth a trap), general alignment checks off
/// (Rust code may do unaligned accesses to Normal memory).
const SCTLR_MMU_ON: u64 = SCTLR_RES1
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::I::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value;

// `strait_boot_mmu_on`: called with `bl` from the entry code at the physical address, with the
// MMU off and `.bss` zeroed; x0 = the image's physical address, which the entry code has checked
// is 2 MiB aligned and, with the whole image, inside the Normal part of the boot HHDM. Clobbers
// x0-x9, uses no stack, and returns (through the identity map) with the MMU and caches on. The
// linker script guarantees that the image spans at most 4 MiB, so two level-3 tables cover it.
global_asm!(
    r#"
    .section .text.boot, "ax"
    .global strait_boot_mmu_on
    .type strait_boot_mmu_on, %function
strait_boot_mmu_on:
    mov     x6, x0                      // the image's physical address
    adrp    x0, strait_boot_l0          // adrp is PC-relative: physical, as the tables need
    adrp    x1, strait_boot_l1
    orr     x2, x1, #{table}
    str     x2, [x0]                    // level 0, slot 0 -> HHDM / identity level 1
    // Level 1: GiB 0 is device memory, GiB 1.. normal memory.
    ldr     x2, ={device_block}
    str     x2, [x1]
    ldr     x2, ={normal_block}
    mov     x3, #1
1:  orr     x4, x2, x3, lsl #30
    str     x4, [x1, x3, lsl #3]
    add     x3, x3, #1
    cmp     x3, #{blocks}
    b.lo    1b

    // The image's slot: level 0 -> level 1 -> level 2 -> two consecutive level-3 tables.
    adrp    x1, strait_boot_image_l1
    orr     x2, x1, #{table}
    str     x2, [x0, #{image_l0_offset}]
    adrp    x2, strait_boot_image_l2
    orr     x3, x2, #{table}
    str     x3, [x1]
    adrp    x3, strait_boot_image_l3
    orr     x8, x3, #{table}
    str     x8, [x2]
    add     x8, x8, #4096
    str     x8, [x2, #8]
    // Level 3: 1024 pages of 4 KiB from the image's physical address, guard pages left invalid
    // (the guard symbols' adrp gives their physical address, in the same frame of reference).
    ldr     x4, ={normal_page}
    adrp    x7, strait_boot_stack_guard
    adrp    x9, strait_exception_stack_guard
    mov     x5, #0
3:  add     x8, x6, x5, lsl #12
    cmp     x8, x7
    b.eq    4f
    cmp     x8, x9
    b.eq    4f
    orr     x8, x8, x4
    str     x8, [x3, x5, lsl #3]
4:  add     x5, x5, #1
    cmp     x5, #1024
    b.lo    3b

    // The tables and the rest of .bss were written with the MMU off, i.e. as non-cacheable
    // device accesses straight to memory. Invalidate those lines to the point of coherency so
    // no stale line the loader left in a cache can shadow them once caches are on.
    dmb     sy
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4             // DminLine: log2 of the line size in words
    mov     x4, #4
    lsl     x4, x4, x3                  // line size in bytes
    sub     x5, x4, #1
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    bic     x0, x0, x5
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
5:  dc      ivac, x0
    add     x0, x0, x4
    cmp     x0, x1
    b.lo    5b
    dsb     sy

    ldr     x0, ={mair}
    msr     mair_el1, x0
    // IPS = min(PARange, 48 bits)
    mrs     x1, id_aa64mmfr0_el1
    and     x1, x1, #0xf
    mov     x2, #{max_ips}
    cmp     x1, x2
    csel    x1, x1, x2, ls
    ldr     x0, ={tcr}
    bfi     x0, x1, #32, #3
    msr     tcr_el1, x0
    adrp    x0, strait_boot_l0
    msr     ttbr0_el1, x0
    msr     ttbr1_el1, x0
    isb
    // Nothing the firmware or a previous boot cached may survive into the new regime.
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x0, ={sctlr_on}
    msr     sctlr_el1, x0
    isb
    ret
    .ltorg
    .size strait_boot_mmu_on, . - strait_boot_mmu_on

    .section .bss.strait_boot_tables, "aw", %nobits
    .balign 4096
strait_boot_l0:
    .space 4096
strait_boot_l1:
    .space 4096
strait_boot_image_l1:
    .space 4096
strait_boot_image_l2:
    .space 4096
strait_boot_image_l3:
    .space 8192
"#,
    image_l0_offset = const IMAGE_L0_OFFSET,
    table = const DESC_TABLE,
    device_block = const DEVICE_BLOCK,
    normal_block = const NORMAL_BLOCK,
    normal_page = const NORMAL_PAGE,
    blocks = const HHDM_BLOCKS,
    mair = const MAIR,
    max_ips = const MAX_IPS,
    tcr = const TCR,
    sctlr_on = const SCTLR_MMU_ON,
);

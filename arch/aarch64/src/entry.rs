//! From the loader's hand-off to the kernel's `main`.
//!
//! Owns the Linux arm64 `Image` header and the code that runs before Rust can. The loader
//! (QEMU's `-kernel`, U-Boot's `booti`) puts the flat image at a 2 MiB-aligned physical address
//! of its choosing (QEMU: RAM + 2 MiB; U-Boot: the start of RAM) and jumps to its first byte with
//! the MMU off, `x0` = physical address of the device tree, at EL2 (`virtualization=on`) or EL1.
//! The assembly drops to EL1h, finds its own physical address (`adr _start`) and checks that the
//! boot tables can map the image from there, zeroes `.bss`, has `boot_mmu` map the HHDM and the
//! image (at its link address, `KERNEL_IMAGE_BASE`, from the address it found) and turn the MMU
//! on, continues at the link address in the higher half, switches to the boot stack, stops
//! TTBR0 walks, installs the trap vectors and calls [`early_main`], which records the physical
//! address in `layout`, parses the device tree, brings up the console and calls the kernel's
//! `main` (`__strait_kernel_main`, defined by `entry_point!`).
//!
//! Until the branch to the higher half this code runs at the physical address: it must use only
//! PC-relative addressing (`adr`, `adrp`, `b`, `bl`, literal loads of constants) and must never
//! touch the stack, nor assume any physical address the linker could know. Secondary CPUs never
//! come here: under PSCI they stay off until the kernel asks. The exception level it was entered
//! at is read from `CurrentEL` first thing, kept in a register and printed once the console is
//! up (`[boot] aarch64: entered at EL...`), and so is the physical load address
//! (`[boot] aarch64: image loaded at physical 0x...`).

use crate::boot_mmu::{SCTLR_MMU_OFF, TCR_EPD0};
use crate::layout::{self, BOOT_HHDM_SIZE, DEVICE_WINDOW_END, IMAGE_ALIGN, KERNEL_IMAGE_BASE};
use crate::{dtb, serial};
use aarch64_cpu::registers::{CNTHCTL_EL2, HCR_EL2, ICC_SRE_EL2, SPSR_EL2};
use core::arch::global_asm;
use core::fmt::Write;
use kernel_core::boot_info::{BootInfo, ConsoleDevice};

/// Image header flags (arm64 `booting.rst`): bit 0 = 0, little-endian; bits 1-2 = 1, 4 KiB
/// pages; bit 3 = 0, "the 2 MiB-aligned base should be as close as possible to the base of
/// DRAM"; bits 4-63 reserved, 0. Bit 3 is 0, not 1 ("anywhere in physical memory"), because the
/// boot tables (`boot_mmu`) reach only physical `DEVICE_WINDOW_END..BOOT_HHDM_SIZE` (RAM from
/// 1 GiB to 8 GiB on QEMU `virt`): with bit 3 set a loader may put the image at the top of a large
/// RAM, out of their reach, and the entry code would have to stop. Unlike Linux, this kernel
/// still uses the RAM below the image (the HHDM maps all of it).
const IMAGE_FLAGS: u64 = 0b0010;
/// The header's text_offset: the image starts exactly at the 2 MiB-aligned base.
const TEXT_OFFSET: u64 = 0;
// Only "4 KiB pages" is set: little-endian, placement near the start of RAM, no reserved bit.
const _: () = assert!(IMAGE_FLAGS == 1 << 1 && TEXT_OFFSET.is_multiple_of(IMAGE_ALIGN));
// The wrong-placement message below names the boot window in numbers.
const _: () = assert!(DEVICE_WINDOW_END == 0x4000_0000 && BOOT_HHDM_SIZE == 0x2_0000_0000);
/// QEMU `virt`'s PL011, used only to report a fatal problem before the device tree is read.
const EARLY_UART_PHYS: u64 = 0x0900_0000;

/// HCR_EL2 for the kernel: EL1 is AArch64; nothing is routed or trapped to EL2.
const HCR_EL2_VALUE: u64 = HCR_EL2::RW::EL1IsAarch64.value;
/// CNTHCTL_EL2 bits that give EL1 (and so the kernel) the physical counter and timer.
const CNTHCTL_EL1_ACCESS: u64 = CNTHCTL_EL2::EL1PCTEN::SET.value | CNTHCTL_EL2::EL1PCEN::SET.value;
/// CNTHCTL_EL2 bits 12-16 (FEAT_ECV: ECV, EL1TVT, EL1TVCT, EL1NVPCT, EL1NVVCT) that would trap
/// EL1's use of the virtual timer and counter (the kernel's tick and clock) or offset the
/// physical counter: all cleared. (Without FEAT_ECV they are RES0, so clearing them is a no-op;
/// with HCR_EL2.E2H = 0 nothing else lets EL2 take the virtual timer from EL1.)
const CNTHCTL_ECV_TRAPS: u64 = 0b1_1111 << 12;
/// CPTR_EL2 traps to clear: TCPAC (CPACR_EL1 accesses), TAM (activity monitors), TTA (trace),
/// TFP (FP/SIMD). EL1's own CPACR_EL1 then decides.
const CPTR_EL2_TRAPS: u64 = (1 << 31) | (1 << 30) | (1 << 20) | (1 << 10);
/// ICC_SRE_EL2: EL2 uses the GICv3 system registers and lets EL1 use them too.
const ICC_SRE_EL2_SRE: u64 = ICC_SRE_EL2::SRE::SET.value;
const ICC_SRE_EL2_ENABLE: u64 = ICC_SRE_EL2::ENABLE::SET.value;
/// SPSR_EL2 for the `eret` to EL1: EL1h with debug, SError, IRQ and FIQ masked.
const SPSR_EL1H_MASKED: u64 = SPSR_EL2::D::Masked.value
    | SPSR_EL2::A::Masked.value
    | SPSR_EL2::I::Masked.value
    | SPSR_EL2::F::Masked.value
    | SPSR_EL2::M::EL1h.value;

global_asm!(
    r#"
    // ---- Linux arm64 Image header: must be the first 64 bytes of the image ----
    .section .text.boot.header, "ax"
    .global _start
    .type _start, %function
_start:
    b       strait_primary_entry        // code0
    .word   0                           // code1
    .quad   {text_offset}               // text_offset: load at a 2 MiB boundary + 0
    // image_size: all the image occupies from its load address, the file plus .bss, which holds
    // everything early boot needs beyond the file (boot page tables, boot and exception stacks,
    // the device tree copy): nothing is used outside [load address, + image_size).
    .quad   __kernel_image_size
    .quad   {image_flags}               // flags
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .ascii  "ARM\x64"                   // magic, at offset 0x38
    .word   0                           // res5: no PE/COFF header

strait_primary_entry:
    mov     x19, x0                     // device tree (physical); x19 survives until Rust
    mrs     x0, CurrentEL
    ubfx    x0, x0, #2, #2
    mov     x20, x0                     // the EL we were entered at; x20 survives until Rust too
    cmp     x0, #1
    b.eq    .Lat_el1
    cmp     x0, #2
    b.eq    .Lfrom_el2
    adr     x0, .Lmsg_bad_el
    mov     x2, xzr
    b       strait_early_fail

.Lfrom_el2:
    mov     x0, #{hcr}
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #{cnthctl}
    ldr     x1, ={cnthctl_ecv}
    bic     x0, x0, x1
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr            // virtual counter == physical counter
    mrs     x0, cptr_el2
    ldr     x1, ={cptr_traps}
    bic     x0, x0, x1
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, midr_el1                // EL1 reads the real CPU identity
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    // EL1 may use every PMU counter (benchmarks read PMCCNTR); no debug traps to EL2.
    mov     x0, xzr
    mrs     x1, id_aa64dfr0_el1
    ubfx    x1, x1, #8, #4              // PMUVer
    cbz     x1, 1f
    cmp     x1, #0xf                    // IMPLEMENTATION DEFINED PMU: leave it alone
    b.eq    1f
    mrs     x0, pmcr_el0
    ubfx    x0, x0, #11, #5             // PMCR_EL0.N -> MDCR_EL2.HPMN
1:  msr     mdcr_el2, x0
    // GICv3 CPU interface present: let EL1 use its system registers.
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4             // GIC
    cbz     x0, 2f
    mrs     x0, icc_sre_el2
    orr     x0, x0, #{sre}
    orr     x0, x0, #{sre_enable}
    msr     icc_sre_el2, x0
    isb
2:  ldr     x0, ={sctlr_off}
    msr     sctlr_el1, x0
    mov     x0, #{spsr}
    msr     spsr_el2, x0
    adr     x0, .Lat_el1
    msr     elr_el2, x0
    eret

.Lat_el1:
    ldr     x0, ={sctlr_off}
    msr     sctlr_el1, x0
    isb
    msr     cpacr_el1, xzr              // FP/SIMD traps: the kernel is soft-float
    // Where the loader put the image: PC-relative, so physical. x21 survives until Rust.
    adr     x21, _start
    // The scheme relies on three facts; each failure stops here, loudly, with the address.
    // 1. The image is linked at KERNEL_IMAGE_BASE (linker script and layout.rs agree), or the
    //    higher-half branch lands where boot_mmu mapped nothing.
    ldr     x1, =_start
    ldr     x2, ={image_base}
    cmp     x1, x2
    b.eq    1f
    adr     x0, .Lmsg_bad_link
    adr     x2, .Lmsg_bad_link_tail
    b       strait_early_fail
1:  // 2. It was loaded 2 MiB aligned, as the boot protocol promises for text_offset 0. The page
    //    tables would cope with 4 KiB, but a loader that breaks this promise misread the header
    //    or follows another protocol, and nothing else it set up can be trusted either.
    tst     x21, #{align_mask}
    b.eq    2f
    mov     x1, x21
    adr     x0, .Lmsg_bad_placement
    adr     x2, .Lmsg_bad_align_tail
    b       strait_early_fail
2:  // 3. All of it lies in the RAM part of what the boot tables map (identity and HHDM):
    //    [DEVICE_WINDOW_END, BOOT_HHDM_SIZE). Header flag bit 3 = 0 asks loaders for that.
    ldr     x0, ={window_start}
    cmp     x21, x0
    b.lo    3f
    adrp    x1, __kernel_end            // physical end of the image (page aligned)
    ldr     x0, ={window_end}
    cmp     x1, x0
    b.ls    4f
3:  mov     x1, x21
    adr     x0, .Lmsg_bad_placement
    adr     x2, .Lmsg_bad_window_tail
    b       strait_early_fail
4:  // Zero .bss (page tables and stacks included) through its physical address.
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
5:  cmp     x0, x1
    b.hs    6f
    stp     xzr, xzr, [x0], #16
    b       5b
6:  mov     x0, x21
    bl      strait_boot_mmu_on
    ldr     x0, =strait_high_entry      // absolute: the link address in the higher half
    br      x0

strait_high_entry:
    ldr     x0, =strait_boot_stack_top
    mov     sp, x0
    ldr     x0, =strait_exception_stack_top
    msr     sp_el0, x0                  // see traps.rs: SP_EL0 is the trap stack in the kernel
    // The identity map has done its job: from now on low addresses fault.
    mrs     x0, tcr_el1
    orr     x0, x0, #{epd0}
    msr     tcr_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    ldr     x0, =strait_vectors
    msr     vbar_el1, x0
    isb
    mov     x29, xzr                    // the backtrace ends here
    mov     x30, xzr
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    bl      {early_main}
7:  wfi
    b       7b
    .ltorg

    // strait_early_fail: x0 = NUL-terminated message; when x2 is not 0, then x1 in hex and the
    // NUL-terminated message at x2. Prints them on QEMU virt's PL011 (physical, MMU off, so a
    // device access) and exits with status 2. Runs at whatever EL it was called from, before
    // the device tree is known, without a stack; never returns.
    .section .text.boot, "ax"
strait_early_fail:
    mov     x9, x1
    mov     x10, x2
    ldr     x4, ={early_uart}
    bl      .Lfail_puts
    cbz     x10, 3f
    mov     x5, #60                     // 16 hex digits, most significant first
1:  lsr     x2, x9, x5
    and     x2, x2, #0xf
    add     x6, x2, #48                 // '0' + d
    add     x7, x2, #87                 // 'a' + d - 10
    cmp     x2, #10
    csel    x2, x6, x7, lo
2:  ldr     w3, [x4, #0x18]             // UARTFR
    tbnz    w3, #5, 2b                  // TXFF
    str     w2, [x4]                    // UARTDR
    subs    x5, x5, #4
    b.pl    1b
    mov     x0, x10
    bl      .Lfail_puts
3:  // Without -semihosting the hlt below is undefined: make that exception a quiet hang.
    adrp    x0, strait_dead_vectors
    add     x0, x0, :lo12:strait_dead_vectors
    mrs     x1, CurrentEL
    ubfx    x1, x1, #2, #2
    cmp     x1, #2
    b.ne    4f
    msr     vbar_el2, x0
    b       5f
4:  msr     vbar_el1, x0
5:  isb
    mov     w0, #0x20                   // SYS_EXIT_EXTENDED
    adr     x1, .Lexit_crashed
    hlt     #0xf000
6:  wfi
    b       6b

    // .Lfail_puts: prints the NUL-terminated string at x0 on the PL011 at x4. Clobbers x0, x2,
    // x3; returns through x30 (called with bl from strait_early_fail only: no nesting).
.Lfail_puts:
1:  ldrb    w2, [x0], #1
    cbz     w2, 3f
2:  ldr     w3, [x4, #0x18]             // UARTFR
    tbnz    w3, #5, 2b                  // TXFF
    str     w2, [x4]                    // UARTDR
    b       1b
3:  ret
    .ltorg
    .balign 8
.Lexit_crashed:
    .quad   0x20026                     // ADP_Stopped_ApplicationExit
    .quad   2                           // ExitStatus::Crashed
.Lmsg_bad_el:
    .asciz  "\r\n[boot] aarch64: entered at an exception level other than EL1 or EL2; stopping\r\n"
.Lmsg_bad_link:
    .asciz  "\r\n[boot] aarch64: _start is linked at 0x"
.Lmsg_bad_link_tail:
    .asciz  ", not at KERNEL_IMAGE_BASE (boot/linker/aarch64.ld and layout.rs disagree); stopping\r\n"
.Lmsg_bad_placement:
    .asciz  "\r\n[boot] aarch64: image loaded at physical 0x"
.Lmsg_bad_align_tail:
    .asciz  ", not 2 MiB aligned (the arm64 boot protocol requires it for text_offset 0); stopping\r\n"
.Lmsg_bad_window_tail:
    .asciz  ", not wholly inside the RAM the boot tables map (physical 0x40000000..0x200000000); stopping\r\n"
"#,
    text_offset = const TEXT_OFFSET,
    image_flags = const IMAGE_FLAGS,
    hcr = const HCR_EL2_VALUE,
    cnthctl = const CNTHCTL_EL1_ACCESS,
    cnthctl_ecv = const CNTHCTL_ECV_TRAPS,
    cptr_traps = const CPTR_EL2_TRAPS,
    sre = const ICC_SRE_EL2_SRE,
    sre_enable = const ICC_SRE_EL2_ENABLE,
    sctlr_off = const SCTLR_MMU_OFF,
    spsr = const SPSR_EL1H_MASKED,
    image_base = const KERNEL_IMAGE_BASE,
    align_mask = const IMAGE_ALIGN - 1,
    window_start = const DEVICE_WINDOW_END,
    window_end = const BOOT_HHDM_SIZE,
    epd0 = const TCR_EPD0,
    early_uart = const EARLY_UART_PHYS,
    early_main = sym early_main,
);

unsafe extern "C" {
    /// The kernel's `main`, defined by `entry_point!` in the kernel binary.
    fn __strait_kernel_main() -> !;
}

/// The machine description, parsed once from the device tree before the kernel's `main` runs.
static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// The boot information; set before `__strait_kernel_main` is called, so always present there.
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO
        .get()
        .expect("boot info is parsed before the kernel's main runs")
}

/// First Rust code: runs in the higher half on the boot stack with the early vectors installed.
/// `entry_el` is the exception level the loader entered the kernel at, as the entry code read it
/// from `CurrentEL` before anything else (1 or 2: the entry code stops on any other);
/// `image_phys` is the physical address the loader put the image at, as the entry code found it
/// (2 MiB aligned and inside the boot window: the entry code stops otherwise).
extern "C" fn early_main(dtb_phys: u64, entry_el: u64, image_phys: u64) -> ! {
    // First: the device tree parser reserves the image's frames from it.
    layout::record_image_phys(image_phys);
    let info = BOOT_INFO.call_once(|| dtb::parse(dtb_phys));
    if let Some(ConsoleDevice::Pl011 { base }) = info.console {
        serial::init(base);
    }
    // Which way the boot came matters (the EL2 set-up above runs only from EL2): say it, from
    // what the hardware said, for scenarios that must prove they took the EL2 path.
    serial::write(match entry_el {
        1 => b"[boot] aarch64: entered at EL1\n",
        2 => b"[boot] aarch64: entered at EL2, dropped to EL1\n",
        // Unreachable: the entry code stops at any other level.
        _ => b"[boot] aarch64: entered at an unknown exception level\n",
    });
    // Where the loader put the image (it differs between loaders; scenarios check it).
    let _ = writeln!(
        serial::Writer,
        "[boot] aarch64: image loaded at physical {:#x}",
        layout::image_phys_base()
    );
    if info.device_tree.is_none() {
        serial::write(b"[aarch64] no usable device tree: console on the QEMU virt PL011 only\n");
    }
    // SAFETY: `entry_point!` defines this symbol as a plain `extern "C" fn() -> !`; the machine
    // is in the state it expects (higher half, MMU on, stack, vectors, boot info, console), and
    // it is called exactly once.
    unsafe { __strait_kernel_main() }
}

/// The boot information when it has been parsed (the exit path may run before that).
pub fn boot_info_if_ready() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

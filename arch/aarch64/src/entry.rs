//! From the loader's hand-off to the kernel's `main`.
//!
//! Owns the Linux arm64 `Image` header and the code that runs before Rust can: QEMU loads the
//! flat image at RAM + 2 MiB and jumps to its first byte with the MMU off, `x0` = physical
//! address of the device tree, at EL2 (`virtualization=on`) or EL1. The assembly drops to EL1h,
//! zeroes `.bss`, has `boot_mmu` map the HHDM and turn the MMU on, continues at the link address
//! in the higher half, switches to the boot stack, stops TTBR0 walks, installs the trap vectors
//! and calls [`early_main`], which parses the device tree, brings up the console and calls the
//! kernel's `main` (`__strait_kernel_main`, defined by `entry_point!`).
//!
//! Until the branch to the higher half this code runs at the physical address: it must use only
//! PC-relative addressing (`adr`, `adrp`, `b`, `bl`, literal loads) and must never touch the
//! stack. Secondary CPUs never come here: under PSCI they stay off until the kernel asks. The
//! exception level it was entered at is read from `CurrentEL` first thing, kept in a register
//! and printed once the console is up (`[boot] aarch64: entered at EL...`).

use crate::boot_mmu::{SCTLR_MMU_OFF, TCR_EPD0};
use crate::layout::HHDM_BASE;
use crate::{dtb, serial};
use aarch64_cpu::registers::{CNTHCTL_EL2, HCR_EL2, ICC_SRE_EL2, SPSR_EL2};
use core::arch::global_asm;
use kernel_core::boot_info::{BootInfo, ConsoleDevice};

/// Image header flags: little-endian, 4 KiB pages, placed 2 MiB-aligned near the start of RAM.
const IMAGE_FLAGS: u64 = 0b0010;
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
    .quad   0                           // text_offset: load at a 2 MiB boundary + 0
    .quad   __kernel_image_size         // image_size, .bss and stacks included
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
    // The image must run at HHDM_BASE + load address, or the higher-half branch lands nowhere.
    adr     x0, _start
    ldr     x1, =_start
    sub     x1, x1, x0
    ldr     x2, ={hhdm}
    cmp     x1, x2
    b.eq    3f
    adr     x0, .Lmsg_bad_load
    b       strait_early_fail
3:  // Zero .bss (page tables and stacks included) through its physical address.
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
4:  cmp     x0, x1
    b.hs    5f
    stp     xzr, xzr, [x0], #16
    b       4b
5:  bl      strait_boot_mmu_on
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
    bl      {early_main}
6:  wfi
    b       6b
    .ltorg

    // strait_early_fail: x0 = NUL-terminated message. Prints it on QEMU virt's PL011 (physical,
    // MMU off, so a device access) and exits with status 2. Runs at whatever EL it was called
    // from, before the device tree is known; never returns.
    .section .text.boot, "ax"
strait_early_fail:
    ldr     x1, ={early_uart}
1:  ldrb    w2, [x0], #1
    cbz     w2, 3f
2:  ldr     w3, [x1, #0x18]             // UARTFR
    tbnz    w3, #5, 2b                  // TXFF
    str     w2, [x1]                    // UARTDR
    b       1b
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
    .ltorg
    .balign 8
.Lexit_crashed:
    .quad   0x20026                     // ADP_Stopped_ApplicationExit
    .quad   2                           // ExitStatus::Crashed
.Lmsg_bad_el:
    .asciz  "\r\n[boot] aarch64: entered at an exception level other than EL1 or EL2; stopping\r\n"
.Lmsg_bad_load:
    .asciz  "\r\n[boot] aarch64: image not running at HHDM_BASE + load address (linker script and layout.rs disagree, or the loader moved it); stopping\r\n"
"#,
    image_flags = const IMAGE_FLAGS,
    hcr = const HCR_EL2_VALUE,
    cnthctl = const CNTHCTL_EL1_ACCESS,
    cnthctl_ecv = const CNTHCTL_ECV_TRAPS,
    cptr_traps = const CPTR_EL2_TRAPS,
    sre = const ICC_SRE_EL2_SRE,
    sre_enable = const ICC_SRE_EL2_ENABLE,
    sctlr_off = const SCTLR_MMU_OFF,
    spsr = const SPSR_EL1H_MASKED,
    hhdm = const HHDM_BASE,
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
/// from `CurrentEL` before anything else (1 or 2: the entry code stops on any other).
extern "C" fn early_main(dtb_phys: u64, entry_el: u64) -> ! {
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

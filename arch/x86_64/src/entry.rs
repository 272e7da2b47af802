//! The PVH entry: from QEMU's 32-bit protected-mode handoff to Rust in the higher half.
//!
//! Owns the first instructions the CPU runs, the boot page tables and the boot stack. QEMU finds
//! the entry through the ELF note `XEN_ELFNOTE_PHYS32_ENTRY` and jumps there with paging off and
//! `ebx` pointing at `hvm_start_info`. The assembly enables PAE, long mode and paging with static
//! tables that map physical 0..4 GiB three times: identity (only for the jump), at the HHDM and
//! at the kernel's link address. Then it zeroes .bss, switches to the boot stack and calls
//! [`x86_64_rust_entry`]. This module must not grow policy: the real page tables are built later
//! in Rust, from the memory map.

use crate::layout::{HHDM_OFFSET, KERNEL_OFFSET};
use crate::{pvh, serial};

/// Size of the boot CPU's stack.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

core::arch::global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .p2align 2
    .long 4                      /* name size: "Xen\0" */
    .long 4                      /* descriptor size */
    .long 18                     /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .p2align 2
    .long pvh_start32 - {kernel_offset}

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi                         /* hvm_start_info, physical */

    mov %cr4, %eax
    or $0x20, %eax                         /* CR4.PAE */
    mov %eax, %cr4
    mov $(boot_pml4 - {kernel_offset}), %eax
    mov %eax, %cr3

    mov $0x80000001, %eax                  /* EFER.NXE only where the CPU has NX */
    cpuid
    mov $0x100, %edi                       /* EFER.LME */
    bt $20, %edx
    jnc 1f
    or $0x800, %edi
1:  mov $0xC0000080, %ecx
    rdmsr
    or %edi, %eax
    wrmsr

    mov %cr0, %eax
    or $0x80010001, %eax                   /* CR0.PG | CR0.WP | CR0.PE */
    mov %eax, %cr0

    lgdt (boot_gdt_pointer - {kernel_offset})
    ljmp $0x08, $(long_mode_start - {kernel_offset})

    .code64
long_mode_start:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $higher_half_start, %rax
    jmp *%rax

higher_half_start:
    mov %esi, %r12d                        /* zero-extends: start info survives rep stosb */
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp                         /* ends every backtrace */
    mov %r12, %rdi
    call {rust_entry}
    ud2

    .section .rodata.boot_gdt, "a"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff               /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff               /* 0x10: data */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt - {kernel_offset}

    .section .data.boot_page_tables, "aw"
    .p2align 12
boot_pml4:
    .quad boot_pdpt_low - {kernel_offset} + 3           /* identity, for the jump only */
    .fill 255, 8, 0
    .quad boot_pdpt_low - {kernel_offset} + 3           /* {hhdm_slot}: HHDM */
    .fill 254, 8, 0
    .quad boot_pdpt_high - {kernel_offset} + 3          /* 511: kernel image */
boot_pdpt_low:
    .quad boot_pd - {kernel_offset} + 3
    .quad boot_pd + 0x1000 - {kernel_offset} + 3
    .quad boot_pd + 0x2000 - {kernel_offset} + 3
    .quad boot_pd + 0x3000 - {kernel_offset} + 3
    .fill 508, 8, 0
boot_pdpt_high:
    .fill 510, 8, 0
    .quad boot_pd - {kernel_offset} + 3                 /* -2 GiB: physical 0..1 GiB */
    .quad boot_pd + 0x1000 - {kernel_offset} + 3        /* -1 GiB: physical 1..2 GiB */
boot_pd:
    .set boot_pd_index, 0
    .rept 2048
    .quad (boot_pd_index << 21) + 0x83                  /* present, writable, 2 MiB */
    .set boot_pd_index, boot_pd_index + 1
    .endr

    .section .bss.boot_stack, "aw", @nobits
    .p2align 12
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:
    "#,
    kernel_offset = const KERNEL_OFFSET,
    hhdm_slot = const (HHDM_OFFSET >> 39) & 0x1ff,
    stack_size = const BOOT_STACK_SIZE,
    rust_entry = sym x86_64_rust_entry,
    options(att_syntax)
);

// The boot PML4 above puts the HHDM in slot 256; fail the build if the layout says otherwise.
const _: () = assert!((HHDM_OFFSET >> 39) & 0x1ff == 256);

unsafe extern "C" {
    /// Defined by `boot` through `entry_point!`: the portable kernel main.
    fn __strait_kernel_main() -> !;
}

/// First Rust code: console, boot information, then the kernel proper.
extern "C" fn x86_64_rust_entry(start_info_phys: u64) -> ! {
    serial::init();
    pvh::parse_into_boot_info(start_info_phys);
    // SAFETY: `entry_point!` in the kernel binary defines this symbol as a safe `fn() -> !`;
    // the machine state it expects (higher half, stack, console, boot info) is established above.
    unsafe { __strait_kernel_main() }
}

//! CPU exceptions on x86_64: the IDT, the entry stubs and the fatal-trap report.
//!
//! Owns the IDT: exceptions (vectors 0-31) and the entry of device interrupts (32-255, handed to
//! `timer::on_interrupt`). Each vector has a 16-byte assembly stub that pushes a uniform frame
//! (a zero where the CPU pushes no error code, then the vector number) and jumps to a common path
//! that saves every general register and calls [`x86_64_trap_dispatch`]. A breakpoint returns
//! (it proves the path at boot); every other exception is fatal for now: it is reported in the
//! `kernel_core::trap_report` format with a backtrace and QEMU exits with `Crashed`. The handler
//! takes no lock and never allocates.

use crate::console::Console;
use crate::recovery::{self, Resume};
use crate::{exit, gdt, stacks, timer};
use arch_paging::X86_64Format;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel_core::hal::{ExitStatus, Platform};
use kernel_core::paging::PageTableFormat;
use kernel_core::{backtrace, trap_report};
use spin::Once;
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{Entry, EntryOptions, InterruptDescriptorTable};

/// Registers saved by the common stub, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub(crate) r15: u64,
    pub(crate) r14: u64,
    pub(crate) r13: u64,
    pub(crate) r12: u64,
    pub(crate) r11: u64,
    pub(crate) r10: u64,
    pub(crate) r9: u64,
    pub(crate) r8: u64,
    pub(crate) rbp: u64,
    pub(crate) rdi: u64,
    pub(crate) rsi: u64,
    pub(crate) rdx: u64,
    pub(crate) rcx: u64,
    pub(crate) rbx: u64,
    pub(crate) rax: u64,
    pub(crate) vector: u64,
    pub(crate) error_code: u64,
    pub(crate) rip: u64,
    pub(crate) cs: u64,
    pub(crate) rflags: u64,
    pub(crate) rsp: u64,
    pub(crate) ss: u64,
}

const STUB_SIZE: usize = 16;
/// Size of a [`TrapFrame`]; a multiple of 16, so a frame at the top of an aligned stack keeps
/// the stack aligned.
pub(crate) const FRAME_BYTES: u64 = 22 * 8;
const _: () = assert!(size_of::<TrapFrame>() as u64 == FRAME_BYTES);

core::arch::global_asm!(
    r#"
    .section .text.trap_stubs, "ax"
    .p2align 4
    .global x86_64_trap_stubs
x86_64_trap_stubs:
    .set trap_vector, 0
    .rept 256
    .p2align 4
    .if (trap_vector == 8) || (trap_vector == 10) || (trap_vector == 11) || (trap_vector == 12) || (trap_vector == 13) || (trap_vector == 14) || (trap_vector == 17) || (trap_vector == 21) || (trap_vector == 29) || (trap_vector == 30)
    .else
    push $0
    .endif
    push $trap_vector
    jmp x86_64_trap_common
    .set trap_vector, trap_vector + 1
    .endr

x86_64_trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    /* A trap from user mode (or from a user copy) may arrive with RFLAGS.AC set (`popf` sets it
       in ring 3): close user access, or the whole trap runs with SMAP off. `clac` faults on a
       CPU without SMAP, hence the flag; iretq restores the interrupted RFLAGS. */
    cmpb $0, {smap_on}(%rip)
    je 1f
    clac
1:
    mov %rsp, %rdi
    call {dispatch}
    /* rsp = a TrapFrame: restore it and iretq (also the return to user mode of `user.rs`). */
    .global x86_64_trap_return
x86_64_trap_return:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq
    "#,
    dispatch = sym x86_64_trap_dispatch,
    smap_on = sym crate::cpu::SMAP_ON,
    options(att_syntax)
);

unsafe extern "C" {
    static x86_64_trap_stubs: u8;
}

static IDT: Once<InterruptDescriptorTable> = Once::new();
static BREAKPOINTS: AtomicU64 = AtomicU64::new(0);
static REPORTING: AtomicBool = AtomicBool::new(false);

fn stub_address(vector: usize) -> VirtAddr {
    VirtAddr::new(&raw const x86_64_trap_stubs as u64 + (vector * STUB_SIZE) as u64)
}

/// Points `entry` at the stub of `vector`.
fn install<F>(entry: &mut Entry<F>, vector: usize) -> &mut EntryOptions {
    // SAFETY: the address is the stub for exactly this vector in `x86_64_trap_stubs`, which
    // builds the frame the CPU produces for it (a dummy error code only where the CPU pushes
    // none) and returns with `iretq`; the stubs live in the kernel text for good.
    unsafe { entry.set_handler_addr(stub_address(vector)) }
}

fn build_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    install(&mut idt.divide_error, 0);
    install(&mut idt.debug, 1);
    install(&mut idt.non_maskable_interrupt, 2);
    install(&mut idt.breakpoint, 3);
    install(&mut idt.overflow, 4);
    install(&mut idt.bound_range_exceeded, 5);
    install(&mut idt.invalid_opcode, 6);
    install(&mut idt.device_not_available, 7);
    let double_fault = install(&mut idt.double_fault, 8);
    // SAFETY: IST slot DOUBLE_FAULT_IST_INDEX is set up by `gdt::init` (which runs before this
    // IDT is loaded) with a stack used by nothing else, so a double fault always has a valid
    // stack, even when the kernel stack overflowed.
    unsafe { double_fault.set_stack_index(gdt::DOUBLE_FAULT_IST_INDEX) };
    install(&mut idt.invalid_tss, 10);
    install(&mut idt.segment_not_present, 11);
    install(&mut idt.stack_segment_fault, 12);
    install(&mut idt.general_protection_fault, 13);
    install(&mut idt.page_fault, 14);
    install(&mut idt.x87_floating_point, 16);
    install(&mut idt.alignment_check, 17);
    install(&mut idt.machine_check, 18);
    install(&mut idt.simd_floating_point, 19);
    install(&mut idt.virtualization, 20);
    install(&mut idt.cp_protection_exception, 21);
    install(&mut idt.vmm_communication_exception, 29);
    install(&mut idt.security_exception, 30);
    for vector in 32..=255u8 {
        install(&mut idt[vector], usize::from(vector));
    }
    idt
}

/// Loads the GDT/TSS and the IDT, then proves the path with `int3`.
pub fn init() -> Result<(), &'static str> {
    gdt::init();
    IDT.call_once(build_idt).load();
    let before = BREAKPOINTS.load(Ordering::SeqCst);
    x86_64::instructions::interrupts::int3();
    if BREAKPOINTS.load(Ordering::SeqCst) == before + 1 {
        Ok(())
    } else {
        Err("int3 did not come back through the breakpoint handler")
    }
}

pub(crate) fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug exception",
        2 => "non-maskable interrupt",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid tss",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point exception",
        17 => "alignment check",
        18 => "machine check",
        19 => "simd floating-point exception",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => "reserved exception",
    }
}

/// Decodes a page fault's error code into words (empty for other exceptions).
fn page_fault_cause(frame: &TrapFrame, address: Option<u64>) -> &'static str {
    const PRESENT: u64 = 1 << 0;
    const WRITE: u64 = 1 << 1;
    const USER_MODE: u64 = 1 << 2;
    const FETCH: u64 = 1 << 4;
    let (Some(address), 14) = (address, frame.vector) else {
        return "";
    };
    let code = frame.error_code;
    let user_address = address < X86_64Format::USER_END;
    match (code & PRESENT != 0, code & USER_MODE != 0) {
        (true, false) if user_address && code & FETCH != 0 => {
            ": kernel executed a user page (SMEP)"
        }
        (true, false) if user_address => ": kernel touched user memory outside user copies (SMAP)",
        (true, _) if code & FETCH != 0 => ": execute of a non-executable page",
        (true, _) if code & WRITE != 0 => ": write to a read-only page",
        (true, _) => ": protection violation",
        (false, _) if code & FETCH != 0 => ": execute of an unmapped address",
        (false, _) if code & WRITE != 0 => ": write to an unmapped address",
        (false, _) => ": read of an unmapped address",
    }
}

/// Called by the common stub with the saved frame.
extern "C" fn x86_64_trap_dispatch(frame: &mut TrapFrame) {
    if frame.vector < 32 && frame.cs & 3 == 3 {
        // An exception in user mode: the process's problem, never the kernel's.
        crate::user::user_exception(frame);
        return;
    }
    if frame.vector == 3 {
        BREAKPOINTS.fetch_add(1, Ordering::SeqCst);
        return;
    }
    if frame.vector >= 32 {
        // A device interrupt; it may switch threads and come back here much later.
        timer::on_interrupt(frame.vector as u8);
        return;
    }
    if matches!(frame.vector, 13 | 14) {
        match recovery::recover(frame.rip) {
            Some(Resume::At(fixup)) => {
                frame.rip = fixup;
                return;
            }
            Some(Resume::ReturnFromCall) => {
                // SAFETY: the execute probe reached the faulting address through `call`, so
                // the word at rsp is its return address, on the current (mapped) kernel stack.
                frame.rip = unsafe { core::ptr::read(frame.rsp as *const u64) };
                frame.rsp += 8;
                frame.rax = 1;
                return;
            }
            None => {}
        }
    }
    report_fatal(frame)
}

fn report_fatal(frame: &TrapFrame) -> ! {
    if REPORTING.swap(true, Ordering::SeqCst) {
        crate::Machine::console_write(b"\n[trap] another exception while reporting a trap\n");
        exit::exit(ExitStatus::Crashed);
    }
    let mut out = Console;
    if matches!(frame.vector, 8 | 14) {
        let cr2 = Cr2::read_raw();
        let hit = [cr2, frame.rsp]
            .into_iter()
            .find_map(|addr| stacks::overflow_owner(addr).map(|owner| (owner, addr)));
        if let Some((owner, addr)) = hit {
            let _ = trap_report::write_stack_overflow(&mut out, owner, frame.rip, addr);
            finish_report(frame, &mut out);
        }
    }
    let fault_address = (frame.vector == 14).then(Cr2::read_raw);
    let detail = format_args!(
        "vector {}, error {:#x}{}, rsp={:#x}, rflags={:#x}",
        frame.vector,
        frame.error_code,
        page_fault_cause(frame, fault_address),
        frame.rsp,
        frame.rflags
    );
    let report = trap_report::TrapReport {
        kind: exception_name(frame.vector),
        pc: frame.rip,
        fault_address,
        detail: &detail,
    };
    let _ = trap_report::write_trap(&mut out, &report);
    finish_report(frame, &mut out)
}

/// Prints the backtrace of `frame` and ends the boot.
fn finish_report(frame: &TrapFrame, out: &mut Console) -> ! {
    backtrace::walk(frame.rbp, crate::Machine::read_stack_word, |depth, ra| {
        let _ = trap_report::write_frame(out, depth, ra);
    });
    let _ = trap_report::write_backtrace_end(out);
    exit::exit(ExitStatus::Crashed)
}

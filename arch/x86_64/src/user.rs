//! User mode on x86_64: SYSCALL/SYSRET, the first entry into ring 3, user exceptions and the
//! FP/SIMD state of user threads.
//!
//! Owns the SYSCALL MSRs (EFER.SCE, STAR, LSTAR, FMASK), the syscall entry and both ways back to
//! ring 3, the decoding of user exceptions into `UserFault`s, and `fxsave`/`fxrstor` of user
//! FP/SIMD state. Every entry from ring 3 leaves the same [`TrapFrame`] at the top of the
//! thread's kernel stack (an interrupt or exception through the IDT stubs and TSS.RSP0, a
//! syscall through [`x86_64_syscall_entry`]), so the kernel reads and writes user registers in
//! one place whatever the way in. It must never run a handler with interrupts enabled (the kernel
//! is not preemptible: handlers are short or block through the scheduler) and never return to
//! ring 3 with SYSRET to an address SYSRET cannot safely load.
//!
//! The non-canonical RIP hazard: on Intel CPUs SYSRET with a non-canonical RCX raises #GP *in
//! ring 0*, on the user's stack pointer, and IRETQ to a non-canonical RIP faults in ring 0 as
//! well. A syscall whose return address is non-canonical (the instruction ends exactly at the
//! top of user space) is therefore never returned from: it becomes a user exception of the
//! process. Otherwise the return path uses SYSRET only when the saved RIP is below
//! [`SYSRET_LIMIT`] and the saved segments are the user ones; anything else (a frame built by
//! the kernel, the last page of user space) returns with IRETQ.
//!
//! One CPU: the user stack pointer is parked in a static during the first instructions of the
//! syscall entry. With SMP this becomes a per-CPU slot reached with `swapgs`.

use crate::gdt;
use crate::traps::{FRAME_BYTES, TrapFrame};
use abi::fault::{FaultKind, access};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::hal::{FpArea, UserFault, UserRegisters};
use spin::Once;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr2, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

/// `vector` of a frame saved by the syscall entry (IDT vectors stop at 255).
const SYSCALL_VECTOR: u64 = 0x100;
/// RFLAGS a new user thread starts with: interrupts enabled, reserved bit 1.
const USER_RFLAGS: u64 = 0x202;
/// The end of the canonical lower half: no user thread ever resumes at or above it.
const USER_END: u64 = 0x0000_8000_0000_0000;
/// SYSRET only returns to a RIP below this: the last page of the lower half is never used for
/// that, so even a syscall instruction at the very end of user space returns with IRETQ.
pub const SYSRET_LIMIT: u64 = 0x0000_7fff_ffff_f000;

/// The kernel stack top the next syscall lands on (the running thread's).
static SYSCALL_STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// The user stack pointer between `syscall` and the push into the frame.
static USER_RSP_SCRATCH: AtomicU64 = AtomicU64::new(0);

static SYSCALL_HANDLER: Once<fn(&mut TrapFrame)> = Once::new();
static FAULT_HANDLER: Once<fn(&mut TrapFrame, UserFault)> = Once::new();

core::arch::global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global x86_64_syscall_entry
x86_64_syscall_entry:
    /* IF, DF, TF and AC are clear (FMASK); rcx = user rip, r11 = user rflags. */
    mov %rsp, {scratch}(%rip)
    mov {stack_top}(%rip), %rsp
    push ${user_ss}
    push {scratch}(%rip)
    push %r11
    push ${user_cs}
    push %rcx
    push $0
    push ${vector}
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
    xor %ebp, %ebp
    mov %rsp, %rdi
    call {dispatch}
    /* al = 1: the frame can go back with SYSRET. */
    test %al, %al
    jz x86_64_trap_return
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
    mov 16(%rsp), %r11
    mov (%rsp), %rcx
    mov 24(%rsp), %rsp
    sysretq

    "#,
    scratch = sym USER_RSP_SCRATCH,
    stack_top = sym SYSCALL_STACK_TOP,
    user_ss = const gdt::USER_DATA_SELECTOR,
    user_cs = const gdt::USER_CODE_SELECTOR,
    vector = const SYSCALL_VECTOR,
    dispatch = sym syscall_dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    fn x86_64_syscall_entry();
    /// The common trap exit (`traps.rs`): restores a `TrapFrame` at rsp and `iretq`s.
    fn x86_64_trap_return() -> !;
}

/// Called by the syscall entry with the saved frame; returns whether SYSRET may return it.
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) -> bool {
    if let Some(handler) = SYSCALL_HANDLER.get() {
        handler(frame);
    }
    if frame.rip >= USER_END {
        // The thread would resume at a non-canonical address (a `syscall` in the last bytes of
        // user space): SYSRET would fault in ring 0 and IRETQ too. The process gets the fault
        // it would have taken on its next instruction, as a user exception.
        let fault = UserFault {
            kind: FaultKind::Other,
            address: 0,
            access: 0,
            pc: frame.rip,
            detail: 13,
        };
        if let Some(handler) = FAULT_HANDLER.get() {
            handler(frame, fault);
        }
    }
    frame.rip < SYSRET_LIMIT
        && frame.cs == u64::from(gdt::USER_CODE_SELECTOR)
        && frame.ss == u64::from(gdt::USER_DATA_SELECTOR)
}

/// Installs the syscall entry and turns on the FP/SIMD unit (SSE via FXSAVE; AVX stays off, so
/// user code that tries it gets #UD rather than state the kernel would not save).
pub fn init(
    syscall: fn(&mut TrapFrame),
    fault: fn(&mut TrapFrame, UserFault),
) -> Result<(), &'static str> {
    SYSCALL_HANDLER.call_once(|| syscall);
    FAULT_HANDLER.call_once(|| fault);
    let selectors = gdt::selectors();
    Star::write(
        selectors.user_code,
        selectors.user_data,
        selectors.code,
        selectors.data,
    )
    .map_err(|_| "the GDT order does not suit SYSCALL/SYSRET")?;
    LStar::write(x86_64::VirtAddr::new(
        x86_64_syscall_entry as *const () as u64,
    ));
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
    // SAFETY: enabling SYSCALL only makes the `syscall` instruction usable; LSTAR, STAR and
    // FMASK were written above, so it enters the kernel at our entry with interrupts masked.
    unsafe { Efer::update(|flags| *flags |= EferFlags::SYSTEM_CALL_EXTENSIONS) };
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR);
    // SAFETY: these bits only decide whether x87/SSE instructions trap; the kernel is built
    // soft-float and never executes them except in `save_fp`/`restore_fp`.
    unsafe { Cr0::write(cr0) };
    // SAFETY: OSFXSR and OSXMMEXCPT tell the CPU the OS saves SSE state with FXSAVE and handles
    // #XM; both are true from here on (`save_fp`, user exceptions).
    unsafe {
        Cr4::update(|flags| {
            flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        })
    };
    Ok(())
}

/// Sets the kernel stack the next entry from ring 3 lands on (syscall and TSS.RSP0).
pub fn set_entry_stack(top: u64) {
    SYSCALL_STACK_TOP.store(top, Ordering::Relaxed);
    gdt::set_rsp0(top);
}

/// The frame at the top of the kernel stack ending at `top`.
pub fn frame_at(top: u64) -> *mut TrapFrame {
    (top - FRAME_BYTES) as *mut TrapFrame
}

/// Enters ring 3 for the first time; see `UserMode::enter_user`.
pub fn enter(top: u64, entry: u64, sp: u64, arg: u64) -> ! {
    let frame = frame_at(top);
    let initial = TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: arg,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: SYSCALL_VECTOR,
        error_code: 0,
        rip: entry,
        cs: u64::from(gdt::USER_CODE_SELECTOR),
        rflags: USER_RFLAGS,
        rsp: sp,
        ss: u64::from(gdt::USER_DATA_SELECTOR),
    };
    set_entry_stack(top);
    x86_64::instructions::interrupts::disable();
    // SAFETY: `frame` is the top `FRAME_BYTES` of the current thread's kernel stack, reserved for
    // it (the kernel runs below); it is written, then becomes the stack that `x86_64_trap_return`
    // pops into ring 3. Nothing of the current Rust frame is used after the jump.
    unsafe { frame.write(initial) };
    // SAFETY: see above: the frame is written and becomes the stack the return path pops.
    unsafe {
        core::arch::asm!(
            "mov rsp, {frame}",
            "jmp {iret}",
            frame = in(reg) frame,
            iret = sym x86_64_trap_return,
            options(noreturn)
        )
    }
}

/// Decodes an exception taken in ring 3 and hands it to the kernel's fault handler.
pub fn user_exception(frame: &mut TrapFrame) {
    const PRESENT: u64 = 1 << 0;
    const WRITE: u64 = 1 << 1;
    const FETCH: u64 = 1 << 4;
    let fault = match frame.vector {
        14 => {
            let code = frame.error_code;
            let mut bits = 0;
            if code & WRITE != 0 {
                bits |= access::WRITE;
            }
            if code & FETCH != 0 {
                bits |= access::EXECUTE;
            }
            if code & PRESENT != 0 {
                bits |= access::PRESENT;
            }
            UserFault {
                kind: FaultKind::Page,
                address: Cr2::read_raw(),
                access: bits,
                pc: frame.rip,
                detail: 14,
            }
        }
        6 => UserFault {
            kind: FaultKind::UndefinedInstruction,
            address: 0,
            access: 0,
            pc: frame.rip,
            detail: 6,
        },
        vector => UserFault {
            kind: FaultKind::Other,
            address: 0,
            access: 0,
            pc: frame.rip,
            detail: vector,
        },
    };
    match FAULT_HANDLER.get() {
        Some(handler) => handler(frame, fault),
        None => panic!("user exception before user mode was set up: {fault:?}"),
    }
}

/// The FXSAVE image of a freshly initialised FPU: x87 control word 0x37f (all exceptions
/// masked, double extended precision), empty tag word, MXCSR 0x1f80 (all SSE exceptions masked).
pub fn init_fp(area: &mut FpArea) {
    area.0.fill(0);
    area.0[0..2].copy_from_slice(&0x037f_u16.to_le_bytes());
    area.0[24..28].copy_from_slice(&0x1f80_u32.to_le_bytes());
}

/// `fxsave64` into `area`.
pub fn save_fp(area: &mut FpArea) {
    // SAFETY: `area` is 16-byte aligned (`FpArea` is `align(16)`) and at least 512 bytes, which
    // is what FXSAVE writes; OSFXSR is set by `init`.
    unsafe {
        core::arch::asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// `fxrstor64` from `area`.
pub fn restore_fp(area: &FpArea) {
    // SAFETY: `area` is aligned and holds an image written by `save_fp` or `init_fp` (MXCSR
    // reserved bits clear, so FXRSTOR cannot #GP); it only loads FP/SIMD registers.
    unsafe {
        core::arch::asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags))
    };
}

impl UserRegisters for TrapFrame {
    fn syscall_number(&self) -> u64 {
        self.rax
    }

    fn slot(&self, index: usize) -> u64 {
        match index {
            0 => self.rdi,
            1 => self.rsi,
            2 => self.rdx,
            3 => self.r10,
            4 => self.r8,
            5 => self.r9,
            6 => self.r12,
            7 => self.r13,
            8 => self.r14,
            _ => 0,
        }
    }

    fn set_slot(&mut self, index: usize, value: u64) {
        let register = match index {
            0 => &mut self.rdi,
            1 => &mut self.rsi,
            2 => &mut self.rdx,
            3 => &mut self.r10,
            4 => &mut self.r8,
            5 => &mut self.r9,
            6 => &mut self.r12,
            7 => &mut self.r13,
            8 => &mut self.r14,
            _ => return,
        };
        *register = value;
    }

    fn set_result(&mut self, value: u64) {
        self.rax = value;
    }

    fn pc(&self) -> u64 {
        self.rip
    }

    fn user_sp(&self) -> u64 {
        self.rsp
    }
}

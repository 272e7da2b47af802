//! Kernel context switch on x86_64.
//!
//! Owns the layout of a switched-out kernel context: the callee-saved registers (rbx, rbp,
//! r12-r15) and RFLAGS pushed on the thread's own kernel stack, with the stack pointer saved in
//! one word. Everything else is caller-saved under the System V ABI, so `switch_context` is an
//! ordinary call for the compiler. A new thread's stack is prepared so that the first switch to
//! it "returns" into a trampoline that calls its entry function. This module must never touch
//! address spaces or scheduler state: the caller decides, this only swaps stacks.

use kernel_core::hal::KernelStack;

core::arch::global_asm!(
    r#"
    .section .text.context, "ax"
    /* rdi = where to save this context's stack pointer, rsi = the next context's. */
    .global x86_64_switch_context
x86_64_switch_context:
    pushfq
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdi)
    mov %rsi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    popfq
    ret

    /* First code of every thread: r12 = argument, r13 = entry (see `prepare_stack`). */
    .global x86_64_thread_trampoline
x86_64_thread_trampoline:
    mov %r12, %rdi
    xor %ebp, %ebp
    call *%r13
    ud2
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn x86_64_switch_context(save_sp: *mut u64, next_sp: u64);
    static x86_64_thread_trampoline: u8;
}

/// Words `prepare_stack` pushes: r15, r14, r13, r12, rbx, rbp, rflags, return address.
const INITIAL_FRAME_WORDS: usize = 8;
/// RFLAGS of a new thread: interrupts off (the scheduler enables them once the switch is
/// complete) and the reserved bit 1 set.
const INITIAL_RFLAGS: u64 = 0x2;

/// Writes the initial frame of a new thread on `stack` and returns its saved stack pointer:
/// the first `switch_context` to it calls `entry(arg)` on that stack with interrupts disabled.
pub fn prepare_stack(stack: &KernelStack, entry: extern "C" fn(u64) -> !, arg: u64) -> u64 {
    let trampoline = &raw const x86_64_thread_trampoline as u64;
    let frame: [u64; INITIAL_FRAME_WORDS] = [
        0,
        0,
        entry as *const () as u64,
        arg,
        0,
        0,
        INITIAL_RFLAGS,
        trampoline,
    ];
    // `stack.top` is 16-byte aligned, so after the eight pops rsp is too, and the trampoline's
    // `call` gives `entry` the ABI's rsp + 8 alignment.
    let sp = stack.top - INITIAL_FRAME_WORDS as u64 * 8;
    // SAFETY: `stack` is a mapped, unused kernel stack (the caller just allocated it) and the
    // frame lies between its bottom and top; nobody runs on it yet.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, INITIAL_FRAME_WORDS) };
    sp
}

/// Saves the current kernel context (its stack pointer into `*save_sp`) and resumes the one
/// whose saved stack pointer is `next_sp`.
///
/// # Safety
/// `next_sp` must come from `prepare_stack` or from an earlier `switch_context` of a context
/// that has not been resumed since, on a stack that is still mapped; `save_sp` must be valid
/// for a write; interrupts must be disabled (the scheduler's state is inconsistent mid-switch).
pub unsafe fn switch_context(save_sp: *mut u64, next_sp: u64) {
    // SAFETY: guaranteed by the caller, see above.
    unsafe { x86_64_switch_context(save_sp, next_sp) }
}

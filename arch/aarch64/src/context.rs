//! Kernel context switch on AArch64.
//!
//! Owns the layout of a switched-out kernel context: the callee-saved registers x19-x28, the
//! frame pointer x29, the link register x30 and the interrupt mask (DAIF), stored on the
//! thread's own kernel stack, with the stack pointer saved in one word. Everything else is
//! caller-saved under AAPCS64, so `switch_context` is an ordinary call for the compiler. The
//! kernel is soft-float (`aarch64-unknown-none-softfloat`, and CPACR_EL1 traps FP/SIMD), so a
//! kernel context has no FP/SIMD state; a user thread's FP state will be saved on entry from
//! EL0. A new thread's stack is prepared so that the first switch to it "returns" into a
//! trampoline that calls its entry function. This module must never touch address spaces or
//! scheduler state: the caller decides, this only swaps stacks.
//!
//! A switch may happen inside the IRQ handler: the interrupted thread's IRQ frame lies on its
//! own kernel stack below the handler's frames (`traps.rs`), so switching back to it returns
//! through the handler and `eret`s to where it was interrupted.
//!
//! Saved frame, from the saved stack pointer up (112 bytes, keeps SP 16-byte aligned):
//!
//! ```text
//! +0   x19 x20     +16 x21 x22     +32 x23 x24     +48 x25 x26     +64 x27 x28
//! +80  x29 x30     (a frame record: a debugger can walk a switched-out thread from here)
//! +96  DAIF, padding
//! ```

use kernel_core::hal::KernelStack;

/// Words in a saved context (see the module docs).
const FRAME_WORDS: usize = 14;
/// DAIF of a new thread: D, A, I and F masked, as the kernel runs when it is not taking IRQs
/// (the scheduler unmasks IRQs once the switch is complete).
const INITIAL_DAIF: u64 = 0b1111 << 6;

core::arch::global_asm!(
    r#"
    .section .text.context, "ax"
    // x0 = where to save this context's stack pointer, x1 = the next context's.
    .global aarch64_switch_context
    .type aarch64_switch_context, %function
aarch64_switch_context:
    mrs     x9, daif
    sub     sp, sp, #{frame}
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    str     x9, [sp, #96]
    mov     x10, sp
    str     x10, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldr     x9, [sp, #96]
    add     sp, sp, #{frame}
    msr     daif, x9
    ret
    .size aarch64_switch_context, . - aarch64_switch_context

    // First code of every thread: x19 = entry, x20 = argument, x29 = 0 (see `prepare_stack`).
    .type aarch64_thread_trampoline, %function
aarch64_thread_trampoline:
    mov     x0, x20
    blr     x19
    udf     #0                          // entry returned, which `-> !` forbids
    .size aarch64_thread_trampoline, . - aarch64_thread_trampoline
    "#,
    frame = const FRAME_WORDS * 8,
);

unsafe extern "C" {
    fn aarch64_switch_context(save_sp: *mut u64, next_sp: u64);
    static aarch64_thread_trampoline: u8;
}

/// Writes the initial frame of a new thread on `stack` and returns its saved stack pointer:
/// the first `switch_context` to it calls `entry(arg)` on that stack with IRQs masked and
/// x29 = 0, so backtraces end there.
pub fn prepare_stack(stack: &KernelStack, entry: extern "C" fn(u64) -> !, arg: u64) -> u64 {
    let trampoline = &raw const aarch64_thread_trampoline as u64;
    let mut frame = [0u64; FRAME_WORDS];
    frame[0] = entry as *const () as u64; // x19
    frame[1] = arg; // x20
    frame[10] = 0; // x29: the frame-record chain ends here
    frame[11] = trampoline; // x30: where `switch_context` returns to
    frame[12] = INITIAL_DAIF;
    // `stack.top` is 16-byte aligned and the frame is a multiple of 16 bytes, so SP stays
    // aligned, as the CPU requires (SCTLR_EL1.SA).
    let sp = stack.top - FRAME_WORDS as u64 * 8;
    assert!(
        stack.top.is_multiple_of(16) && sp >= stack.bottom,
        "prepare_stack: {stack:x?} is not a usable kernel stack"
    );
    // SAFETY: `stack` is a mapped, unused kernel stack (the caller just allocated it) and the
    // frame lies between its bottom and top (checked above); nobody runs on it yet.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, FRAME_WORDS) };
    sp
}

/// Saves the current kernel context (its stack pointer into `*save_sp`) and resumes the one
/// whose saved stack pointer is `next_sp`. Returns when something switches back to the saved
/// context, with its DAIF as it was.
///
/// # Safety
/// `next_sp` must come from `prepare_stack` or from an earlier `switch_context` of a context
/// that has not been resumed since, on a stack that is still mapped; `save_sp` must be valid
/// for a write; IRQs must be masked (the scheduler's state is inconsistent mid-switch).
pub unsafe fn switch_context(save_sp: *mut u64, next_sp: u64) {
    // SAFETY: guaranteed by the caller, see above.
    unsafe { aarch64_switch_context(save_sp, next_sp) }
}

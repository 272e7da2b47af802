//! Threads in the caller's own address space.
//!
//! Owns [`spawn_local`] and [`ReusableStack`]: a stack (fresh frames mapped at an address the
//! caller reserves, reused thread after thread), the start-up trampoline `rt_thread_start`
//! (per-architecture assembly, like `_start`), and the tear-down after the thread has ended
//! ([`LocalThread::join`]). A local thread shares the
//! caller's capability table, so it can be handed a handle directly in its argument.
//!
//! It must never unmap a stack while its thread may still run (only after a successful join or a
//! kill that the join confirmed), and never write anything but the start block into a new stack
//! before the thread starts.

use crate::syscall::{
    StepError, cap_delete, frame_alloc, map, step, thread_create, thread_join, thread_start, unmap,
};
use abi::{CapHandle, Error, Rights, Timeout};
use core::mem::ManuallyDrop;

/// What the trampoline finds at the top of the new stack (its argument points here).
#[repr(C)]
struct StartBlock {
    main: fn(u64) -> i64,
    arg: u64,
}

const START_BLOCK_BYTES: u64 = 16;
const _: () = assert!(core::mem::size_of::<StartBlock>() as u64 == START_BLOCK_BYTES);

// Entered by a new local thread with slot a0 = pointer to its StartBlock and sp just below it;
// like `_start`: end the frame chains, align the stack, call Rust.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".section .text.rt_thread_start,\"ax\",@progbits",
    ".global rt_thread_start",
    ".type rt_thread_start,@function",
    "rt_thread_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {entry}",
    "    ud2",
    ".size rt_thread_start, . - rt_thread_start",
    entry = sym rt_thread_entry,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text.rt_thread_start,\"ax\",%progbits",
    ".global rt_thread_start",
    ".type rt_thread_start,%function",
    "rt_thread_start:",
    "    mov x29, #0",
    "    mov x30, #0",
    "    mov x9, sp",
    "    and x9, x9, #~15",
    "    mov sp, x9",
    "    bl {entry}",
    "    udf #0",
    ".size rt_thread_start, . - rt_thread_start",
    entry = sym rt_thread_entry,
);

unsafe extern "C" {
    /// The assembly trampoline above.
    fn rt_thread_start();
}

/// Runs the thread's main from its start block and ends the thread with the result.
extern "C" fn rt_thread_entry(block: *const StartBlock) -> ! {
    // SAFETY: `ReusableStack::start` wrote a valid StartBlock at this address, at the top of
    // this thread's own stack, before starting the thread; nothing else writes there.
    let StartBlock { main, arg } = unsafe { block.read() };
    crate::syscall::thread_exit(main(arg))
}

/// A thread running in the caller's own address space, made by [`spawn_local`].
#[derive(Debug)]
pub struct LocalThread {
    /// The thread (every thread right).
    pub thread: CapHandle,
    /// Its stack: freed by [`join`](Self::join) once the thread has ended, never by a drop (the
    /// thread may still run on it).
    stack: ManuallyDrop<ReusableStack>,
}

/// Starts `main(arg)` on a new thread in the caller's address space `own_space` (`MAP`,
/// `CONTROL`), with a stack of `stack_pages` fresh pages mapped read-write at `stack_va`
/// (page-aligned; the range must be unused: the kernel refuses with `Busy` otherwise). The thread
/// ends with `main`'s return value as its exit code.
///
/// Safe: the stack is memory nothing else can be using (the mapping is new), the entry point is
/// rt's trampoline, and `main` is a safe function (whatever it shares with other threads is
/// `Sync`). Leave the page below `stack_va` unmapped as a guard.
pub fn spawn_local(
    own_space: CapHandle,
    stack_va: u64,
    stack_pages: usize,
    main: fn(u64) -> i64,
    arg: u64,
) -> Result<LocalThread, StepError> {
    // On failure the stack drops, unmapped: no thread ever ran on it.
    let stack = ReusableStack::new(own_space, stack_va, stack_pages)?;
    let thread = stack.start(main, arg)?;
    Ok(LocalThread {
        thread,
        stack: ManuallyDrop::new(stack),
    })
}

impl LocalThread {
    /// Waits (at most `timeout`) for the thread to end and returns its exit code
    /// (`Err(Killed)` if it was killed). Once it has ended either way, its stack is unmapped and
    /// its handles deleted; after a timeout or other error nothing is freed.
    pub fn join(self, timeout: Timeout) -> Result<u32, StepError> {
        let result = thread_join(self.thread, timeout);
        if matches!(result, Ok(_) | Err(Error::Killed)) {
            let _ = cap_delete(self.thread);
            // The thread has ended: nothing runs on the stack any more.
            drop(ManuallyDrop::into_inner(self.stack));
        }
        result.map_err(step("thread_join (local thread)"))
    }
}

/// A stack in the caller's own address space that threads run on one after another: mapped
/// once, reused by each thread once the previous one has been joined ([`spawn_local`] uses one
/// for its one thread; the `thread_create_join` benchmark runs thousands on one). Unmapped when
/// dropped, unless a thread started on it was never joined.
#[derive(Debug)]
pub struct ReusableStack {
    own_space: CapHandle,
    frames: CapHandle,
    stack_va: u64,
    /// 0 once a thread started on it may still run (its join failed): never reused or unmapped.
    stack_pages: usize,
}

impl ReusableStack {
    /// Maps `stack_pages` fresh pages read-write at `stack_va` in `own_space` (`MAP`, `CONTROL`).
    pub fn new(own_space: CapHandle, stack_va: u64, stack_pages: usize) -> Result<Self, StepError> {
        let stack_bytes = (stack_pages as u64).saturating_mul(crate::process::PAGE_SIZE);
        if stack_bytes < START_BLOCK_BYTES * 2 {
            return Err(StepError {
                step: "thread stack size",
                error: Error::InvalidArgument,
            });
        }
        let frames = frame_alloc(stack_pages).map_err(step("frame_alloc (thread stack)"))?;
        if let Err(error) = map(own_space, frames, stack_va, Rights::READ | Rights::WRITE) {
            let _ = cap_delete(frames);
            return Err(StepError {
                step: "map (thread stack)",
                error,
            });
        }
        Ok(Self {
            own_space,
            frames,
            stack_va,
            stack_pages,
        })
    }

    /// Starts `main(arg)` on this stack; returns the thread's handle. The caller starts no other
    /// thread on it until this one has been joined.
    fn start(&self, main: fn(u64) -> i64, arg: u64) -> Result<CapHandle, StepError> {
        if self.stack_pages == 0 {
            // An earlier thread was never joined: it may still be running on the stack.
            return Err(StepError {
                step: "thread stack (an earlier thread may still run on it)",
                error: Error::Busy,
            });
        }
        let top = self.stack_va + self.stack_pages as u64 * crate::process::PAGE_SIZE;
        let block_va = top - START_BLOCK_BYTES;
        // SAFETY: the stack is mapped read-write (by `new`) and no thread runs on it (the
        // caller's promise); block_va is 16-byte aligned inside it.
        unsafe { (block_va as *mut StartBlock).write(StartBlock { main, arg }) };
        // SAFETY: the entry is rt's trampoline, which reads the StartBlock written above and
        // runs a safe fn; the stack below block_va is this stack, used by no other thread.
        let thread = unsafe {
            thread_create(
                self.own_space,
                rt_thread_start as *const () as u64,
                block_va,
                block_va,
            )
        }
        .map_err(step("thread_create (local thread)"))?;
        if let Err(error) = thread_start(thread) {
            let _ = cap_delete(thread);
            return Err(StepError {
                step: "thread_start (local thread)",
                error,
            });
        }
        Ok(thread)
    }

    /// Starts `main(arg)` on this stack and waits (at most `timeout`) for it to end; returns its
    /// exit code. The thread's handle is deleted once it has ended. `&mut self`: one thread at a
    /// time. If the join fails the thread may still run on the stack, so the stack is leaked
    /// rather than unmapped (the error says so).
    pub fn run(
        &mut self,
        main: fn(u64) -> i64,
        arg: u64,
        timeout: Timeout,
    ) -> Result<u32, StepError> {
        let thread = self.start(main, arg)?;
        let joined = thread_join(thread, timeout);
        if matches!(joined, Ok(_) | Err(Error::Killed)) {
            let _ = cap_delete(thread);
        } else {
            // Still running: never reuse or unmap the stack under it.
            self.stack_pages = 0;
        }
        joined.map_err(step("thread_join (local thread)"))
    }
}

impl Drop for ReusableStack {
    fn drop(&mut self) {
        if self.stack_pages == 0 {
            return;
        }
        // SAFETY: every thread started on this stack was joined (`run` zeroes `stack_pages`
        // when one was not; `LocalThread` never drops its stack before a join), so nothing runs
        // on it any more.
        let _ = unsafe { unmap(self.own_space, self.stack_va, self.stack_pages) };
        let _ = cap_delete(self.frames);
    }
}

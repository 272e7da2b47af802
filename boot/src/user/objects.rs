//! The kernel objects user space names through capabilities, as this kernel holds them.
//!
//! kernel-core's [`ObjectTable`] keeps the objects and decides when each one goes (its reference
//! counting is host-tested there); this module gives it the kernel's side: the process payload
//! (an address space, torn down when its last holder drops it), the frame allocator that takes
//! freed ranges back, and [`bury`], which does after the lock what the table left pending
//! (dropping retired processes, detaching threads nobody names). It also keeps the completion
//! marks of blocking operations in each thread's control block.
//!
//! Everything here lives under [`KERNEL`], taken only with interrupts masked (system calls and
//! user faults run masked; boot code uses `lock_irqsave`), so it is never held by code an
//! interrupt or a system call could preempt. The lock is never held across a context switch:
//! the system-call layer drops it before it blocks or switches. Lock order: `KERNEL`, then
//! `FRAMES` or `ASIDS`.

use crate::ktrace::{KLock, KernelLockHal};
use crate::memory::{FRAMES, UserSpace};
use crate::tcb::tcb;
use abi::Error;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::cap::AddressSpaceId;
use kernel_core::lock::SpinGuard;
use kernel_core::memory_map::FRAME_SIZE;
use kernel_core::object::{FrameRange, ObjectHost, ObjectTable};
use kernel_core::thread::ThreadId;

pub use kernel_core::object::Evicted;

/// A process's address space, shared by its threads (each holds one strong count, so the
/// tables outlive every thread that may still run on them). Torn down on drop.
#[derive(Debug)]
pub struct Process {
    /// Present until the drop tears it down.
    pub space: Option<UserSpace>,
    /// Its name in the process table.
    pub id: AddressSpaceId,
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(space) = self.space.take() else {
            return;
        };
        // Every mapped frame's reference goes with the tables.
        let mut leaves = Vec::new();
        {
            let mut frames = FRAMES.lock_irqsave();
            if let Some(frames) = frames.as_mut() {
                space.destroy(frames, |phys| leaves.push(phys));
            }
        }
        let mut kernel = kernel();
        for phys in leaves {
            kernel.release_frame_page(phys);
        }
    }
}

/// This kernel's side of the object table.
#[derive(Debug)]
pub struct KernelObjects;

impl ObjectHost for KernelObjects {
    type Process = Arc<Process>;

    fn free_frames(range: FrameRange) {
        let mut frames = FRAMES.lock_irqsave();
        if let Some(frames) = frames.as_mut() {
            for i in 0..range.frames {
                let _ = frames.free(range.start + i * FRAME_SIZE);
            }
        }
    }

    fn pending_added() {
        PENDING.store(true, Ordering::Release);
    }
}

/// Every kernel object, under one lock.
pub type Kernel = ObjectTable<KernelObjects>;

/// The kernel objects. Interrupts masked only (see the module docs). Built at compile time: the
/// tables are far too large for a stack.
pub static KERNEL: KLock<Kernel> = KLock::new_quiet("kernel objects", Kernel::new());
/// Set while the table holds pending work, so that `bury` costs one load otherwise.
static PENDING: AtomicBool = AtomicBool::new(false);

/// Locks the kernel objects (interrupts masked for as long as the guard lives).
#[track_caller]
#[inline(always)]
pub fn kernel() -> SpinGuard<'static, Kernel, KernelLockHal> {
    KERNEL.lock_irqsave()
}

/// Marks `thread`'s operation done (its registers hold the results). Atomic, so the woken thread
/// can see it without taking the lock (the fast path after a hand-off).
pub fn complete(thread: ThreadId) {
    tcb(thread).completed.store(true, Ordering::Release);
}

/// `thread` starts an operation that someone else may complete.
pub fn clear_completion(thread: ThreadId) {
    tcb(thread).completed.store(false, Ordering::Relaxed);
}

/// Whether `thread`'s operation was completed (clearing the mark).
pub fn take_completion(thread: ThreadId) -> bool {
    tcb(thread).completed.swap(false, Ordering::Acquire)
}

/// Drops the processes retired while the lock was held and detaches the threads nobody names
/// any more. Call without holding the lock.
pub fn bury() {
    // Dropping a process releases its mapped pages, which may retire more: until none is left.
    while PENDING.swap(false, Ordering::Acquire) {
        let pending = kernel().take_pending();
        drop(pending.retired);
        for thread in pending.detached {
            // A thread whose last capability went before anyone started it can never be started
            // (`ThreadStart` needs a capability): it would sit in no queue forever, holding its
            // slot, kernel stack and process. End it now (a kill starts it just to end it), so
            // that a create-and-delete loop cannot exhaust the thread table.
            if super::ipc::never_started(thread) {
                super::ipc::kill_thread(thread);
            }
            crate::sched::detach_user_thread(thread);
        }
    }
}

/// Registers a new process around `space` named `name`; on failure the space is destroyed.
pub fn add_process(
    kernel: &mut Kernel,
    space: UserSpace,
    name: &str,
) -> Result<AddressSpaceId, Error> {
    let mut space = Some(space);
    let added = kernel.add_process(name, |id| {
        Arc::new(Process {
            space: space.take(),
            id,
        })
    });
    if let Some(space) = space {
        let mut frames = FRAMES.lock_irqsave();
        if let Some(frames) = frames.as_mut() {
            space.destroy(frames, |_| {});
        }
    }
    added
}

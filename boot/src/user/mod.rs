//! User mode: processes, system calls, user faults and the first user programs.
//!
//! Owns the kernel's side of everything above it: the object tables (`objects`), the system-call
//! layer (`syscall`, with IPC and the ends of threads and processes in `ipc`, user buffers in
//! `copy`), what happens when a user thread faults (`fault`), the `user` stage's probe and
//! loading `init` from the initrd (`loader`). Policy that can be
//! host-tested lives in kernel-core (`cap`, `ipc`); this module is the glue that applies it to
//! real threads and registers, and it must never panic because of what user space did: every
//! argument is checked, every failure is an error code or, for a faulting process, a kill with a
//! one-line report.
//!
//! The kernel is not preemptible: system calls and user faults run with interrupts masked, on
//! the thread's own kernel stack, and block or switch only through `sched`.

mod copy;
pub mod fault;
mod ipc;
pub mod loader;
pub mod objects;
mod syscall;

use crate::platform::Machine;
use crate::sched;
use crate::tlb_tags::TLB_TAGS;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::hal::UserMode;
use kernel_core::thread::ThreadId;
use objects::Process;

/// The saved user registers on this machine.
pub type UserFrame = <Machine as UserMode>::UserFrame;

/// Set by the first entry into user mode (the `user` stage checks it).
static ENTERED_USER: AtomicBool = AtomicBool::new(false);

/// Registers what the scheduler needs from user mode and installs the system-call and user-fault
/// entries.
pub fn init() -> Result<(), &'static str> {
    objects::kernel()
        .reserve()
        .map_err(|_| "the kernel heap cannot hold the object tables")?;
    sched::register_user_hooks(sched::UserHooks {
        activate_process,
        release_process: release_process_ref,
        exit_killed,
        first_entry: note_first_entry,
    });
    Machine::init_user_mode(syscall::on_syscall, fault::on_user_fault)
}

/// Called by a user thread just before its first instruction in user mode.
pub fn note_first_entry() {
    ENTERED_USER.store(true, Ordering::Release);
}

/// Whether any thread has entered user mode yet.
pub fn entered_user() -> bool {
    ENTERED_USER.load(Ordering::Acquire)
}

/// Activates the address space of `process` (a pointer from `Arc::into_raw`) on this CPU.
/// Interrupts masked (the scheduler's switch path).
pub fn activate_process(process: u64) {
    // SAFETY: the pointer comes from `Arc::into_raw` and is owned by a thread about to run, so
    // the process (and its tables) stays alive at least until that thread has ended.
    let process = unsafe { &*(process as *const Process) };
    if let Some(space) = &process.space {
        TLB_TAGS.switch_to(space);
    }
}

/// Gives back one strong count of a process pointer made by `Arc::into_raw` (thread context:
/// the last count tears the address space down).
pub fn release_process_ref(process: u64) {
    // SAFETY: every caller passes a pointer from `Arc::into_raw` whose count it owns and never
    // uses again.
    drop(unsafe { Arc::from_raw(process as *const Process) });
}

/// A new strong count of `process`, as a raw pointer for a thread slot.
fn process_ref(process: &Arc<Process>) -> u64 {
    Arc::into_raw(Arc::clone(process)) as u64
}

/// The process of user thread `id`, if it is one.
fn process_of(id: ThreadId) -> Option<&'static Process> {
    let raw = sched::process_of(id);
    // SAFETY: a user thread's slot holds one strong count of its process until the thread has
    // ended (then the word is 0), and `id` has not: the caller holds it blocked or running.
    (raw != 0).then(|| unsafe { &*(raw as *const Process) })
}

/// The saved user registers of user thread `id`, which is not running (blocked or ready).
///
/// # Safety
/// `id` must be a user thread that is not the caller and not running, and no other reference
/// to its frame may exist while the result lives (the kernel objects' lock is held).
unsafe fn frame_of(id: ThreadId) -> &'static mut UserFrame {
    let top = sched::user_top_of(id);
    // SAFETY: guaranteed by the caller; the frame lies at the top of the thread's kernel stack,
    // mapped while the thread exists.
    unsafe { &mut *Machine::user_frame(top) }
}

/// Ends the current user thread as killed (it was killed while it ran or waited to run).
pub fn exit_killed() -> ! {
    ipc::exit_current(sched::KILLED_EXIT_CODE)
}

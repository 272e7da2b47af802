//! User faults: a page fault or other exception in user mode becomes a call to the process's
//! pager or exception handler, or the end of the process.
//!
//! Owns the kernel's half of the fault protocol (`abi::fault`): the message, the forwarding rule
//! (page faults to the pager; other faults to the exception handler, else the pager), the wait
//! for the reply, and the kill with its one-line report when nobody receives the fault, the
//! receiver fails or it answers anything but `RESUME`; the page faults of system calls' user
//! copies ([`syscall_fault`]: the pager's answer decides only whether the copy is retried); and
//! the record of each thread's last fault (the words of the fault message, kept in its control
//! block), which `ThreadState` reports for a thread whose fault is with its pager or that its
//! fault killed. It must never let a user fault reach the kernel's fatal trap path: whatever user
//! space does, the kernel carries on.

use super::ipc;
use super::objects::kernel;
use super::{UserFrame, process_of};
use crate::sched;
use crate::tcb::tcb;
use abi::fault::{FAULT_LABEL, FaultKind, RESUME, access};
use abi::{Badge, MessageInfo};
use core::sync::atomic::Ordering;
use kernel_core::cap::EndpointId;
use kernel_core::hal::UserFault;
use kernel_core::ipc::Message;
use kernel_core::thread::ThreadId;

/// The fault as the words of the fault message.
fn message_words(fault: &UserFault) -> [u64; 4] {
    // Whether a kernel address is mapped is the kernel's layout: never told to user space (a
    // pager or a `ThreadState` caller could otherwise probe the kernel half page by page).
    let access = if fault.address >= abi::init::USER_END {
        fault.access & !abi::fault::access::PRESENT
    } else {
        fault.access
    };
    [fault.kind as u64, fault.address, fault.pc, access]
}

/// The fault `thread` is stopped on (the words of the fault message it sent its pager). Only
/// meaningful while the kernel objects say `thread` is in a fault call (`Kernel::in_fault`), read
/// under the same lock: the thread wrote the words before it took that lock to make the call.
pub fn pending_fault_of(thread: ThreadId) -> [u64; 4] {
    tcb(thread)
        .fault_words
        .each_ref()
        .map(|word| word.load(Ordering::Relaxed))
}

/// The fault that killed `thread`, if one did. Only meaningful while the thread table says
/// `thread` is `Terminated` (the record was completed before that, see `kill_process`).
pub fn fatal_fault_of(thread: ThreadId) -> Option<[u64; 4]> {
    // Acquire: pairs with the release in `kill_process`, after the words were written.
    (tcb(thread).fatal_to.load(Ordering::Acquire) == thread.as_u64())
        .then(|| pending_fault_of(thread))
}

/// Records `fault` as the calling thread's last fault (the words `ThreadState` reports).
fn record(me: ThreadId, fault: &UserFault) {
    // Release: see `ThreadState`'s read of an ended thread's records (`describe_thread`).
    for (cell, word) in tcb(me).fault_words.iter().zip(message_words(fault)) {
        cell.store(word, Ordering::Release);
    }
}

/// Makes the fault call for `fault` on `endpoint` (with the badge of the capability it was set
/// with) on the calling thread's behalf: the reply's label, `None` if no reply came. Called
/// without any lock held.
fn call_about(fault: &UserFault, (endpoint, badge): (EndpointId, Badge)) -> Option<u32> {
    let info = MessageInfo::new(FAULT_LABEL, 4, false).expect("a valid fault info");
    ipc::fault_call(
        endpoint,
        badge,
        Message::new(info, message_words(fault), None),
    )
}

/// A system call's copy of a user buffer stopped at `address` (a user address, checked by the
/// caller) while reading it, at the system-call instruction `pc`. Asks the calling process's pager as for a page fault of the thread; true when it answered
/// `RESUME` (the copy is then retried). Nobody is killed either way: the system call fails.
/// Called without any lock held.
pub fn syscall_fault(address: u64, pc: u64) -> bool {
    let me = sched::current();
    let Some(process) = process_of(me) else {
        return false;
    };
    // A read: no system call writes user memory yet.
    let mut bits = 0;
    if process
        .space
        .as_ref()
        .is_some_and(|space| space.translate(address).is_some())
    {
        bits |= access::PRESENT;
    }
    let fault = UserFault {
        kind: FaultKind::Page,
        address,
        access: bits,
        pc,
        detail: 0,
    };
    // The objects' lock is held for this statement only: never across the call below.
    let pager = kernel().process(process.id).ok().and_then(|e| e.pager);
    let Some(pager) = pager else {
        return false;
    };
    record(me, &fault);
    call_about(&fault, pager) == Some(RESUME)
}

/// The user-fault entry (registered with the arch crate).
pub fn on_user_fault(_frame: &mut UserFrame, fault: UserFault) {
    let me = sched::current();
    let Some(process) = process_of(me) else {
        panic!("a user fault on kernel thread {me}: {fault:?}");
    };
    record(me, &fault);
    // The forwarding rule of `abi::fault`. The objects' lock is held for this block only.
    let receiver = {
        let kernel = kernel();
        let entry = kernel.process(process.id).ok();
        let pager = entry.and_then(|e| e.pager);
        match fault.kind {
            FaultKind::Page => pager.map(|pager| (pager, "pager")),
            _ => match entry.and_then(|e| e.exception_handler) {
                Some(handler) => Some((handler, "exception handler")),
                None => pager.map(|pager| (pager, "pager")),
            },
        }
    };
    let verdict = match receiver {
        None if fault.kind == FaultKind::Page => Err("no pager"),
        None => Err("no exception handler or pager"),
        Some((endpoint, who)) => match call_about(&fault, endpoint) {
            Some(RESUME) => Ok(()),
            Some(_) if who == "pager" => Err("the pager refused the fault"),
            Some(_) => Err("the exception handler refused the fault"),
            None if who == "pager" => Err("the pager did not answer"),
            None => Err("the exception handler did not answer"),
        },
    };
    if sched::kill_requested() {
        ipc::exit_current(sched::KILLED_EXIT_CODE);
    }
    if let Err(why) = verdict {
        kill_process(me, &fault, why);
    }
}

/// Prints the report, kills every other thread of the faulting process, then ends this one.
fn kill_process(me: ThreadId, fault: &UserFault, why: &str) -> ! {
    // Everything allocated for the report lives in this block: the thread never returns from
    // `exit_current` below, so a value still in scope there would never be dropped (a heap leak
    // per fatal fault, found by the end-of-boot heap census).
    {
        let name = {
            let kernel = kernel();
            match process_of(me).and_then(|p| kernel.process(p.id).ok()) {
                Some(entry) => entry.name.clone(),
                None => alloc::string::String::from("?"),
            }
        };
        let space = process_of(me).map_or(0, |p| p.id.as_u64());
        let what = describe(fault);
        let at = if fault.kind == FaultKind::Page {
            alloc::format!(" at {:#x}", fault.address)
        } else {
            alloc::string::String::new()
        };
        crate::kprintln!(
            "[fault] process {name} (space {space:#x}) thread {me}: {what}{at}, pc {:#x} \
             ({why}; detail {:#x}); process killed",
            fault.pc,
            fault.detail
        );
        if let Some(process) = process_of(me) {
            ipc::kill_space(process.id, me);
        }
    }
    // The words (written on entry, by this thread) are the fault that kills it; released before
    // the thread ends, so whoever sees it ended sees them.
    tcb(me).fatal_to.store(me.as_u64(), Ordering::Release);
    ipc::exit_current(sched::KILLED_EXIT_CODE)
}

fn describe(fault: &UserFault) -> &'static str {
    match fault.kind {
        FaultKind::Page => {
            let present = fault.access & access::PRESENT != 0;
            match (
                fault.access & access::EXECUTE != 0,
                fault.access & access::WRITE != 0,
                present,
            ) {
                (true, _, false) => "page fault: execute of an unmapped address",
                (true, _, true) => "page fault: execute not allowed",
                (false, true, false) => "page fault: write to an unmapped address",
                (false, true, true) => "page fault: write not allowed",
                (false, false, false) => "page fault: read of an unmapped address",
                (false, false, true) => "page fault: read not allowed",
            }
        }
        FaultKind::UndefinedInstruction => "undefined instruction",
        FaultKind::Other => "exception",
    }
}

//! System calls on demand-paged memory: the kernel's copies of user buffers, with the pager
//! asked about a page the copy cannot access.
//!
//! Owns the rule of `abi::fault` ("Faults of system calls"): a buffer that does not lie wholly
//! in user space is `BadAddress` at once; otherwise the arch user-copy path copies as far as it
//! can, and where it stops (the first byte it could not access) the calling process's pager gets
//! the fault message of a page fault made at the system-call instruction, on the calling
//! thread's behalf (`fault::syscall_fault`). On `RESUME` the copy goes on from that byte; no pager,
//! any other answer, or [`SYSCALL_FAULT_ATTEMPTS`] answers about one page end the call with
//! `BadAddress`. It must never hold a lock while the pager is asked (the objects' lock is taken
//! and dropped inside the fault call), never kill the process (the system call fails, nothing
//! else), and never let an address outside user space reach a pager.

use super::{UserFrame, fault};
use crate::platform::Machine;
use abi::Error;
use abi::fault::SYSCALL_FAULT_ATTEMPTS;
use abi::init::{USER_END, USER_START};
use kernel_core::hal::{Platform, UserAccessError, UserMode, UserRegisters};
use kernel_core::memory_map::FRAME_SIZE;

/// Where a system call's copy runs on behalf of: the pc of its system-call instruction (the
/// fault message's word 2). Made only by the calls that copy user memory, not on every call.
#[derive(Debug, Clone, Copy)]
pub struct SyscallSite {
    /// The pc of the `syscall` / `svc #0` instruction.
    pub pc: u64,
}

impl SyscallSite {
    /// The site of the system call whose saved registers are `frame`.
    pub fn of(frame: &UserFrame) -> Self {
        Self {
            pc: frame
                .pc()
                .wrapping_sub(<Machine as UserMode>::SYSCALL_INSTRUCTION_BYTES),
        }
    }
}

/// Fills `buffer` from user address `ptr`, asking the pager about pages that are not mapped yet.
/// `BadAddress` if the buffer is not user memory, or cannot be made readable (see the module
/// docs). The caller's buffer lives on its kernel stack: nothing of the kernel heap is held
/// while the pager is asked (a thread may wait on a pager for ever).
pub fn copy_in(site: SyscallSite, ptr: u64, buffer: &mut [u8]) -> Result<(), Error> {
    let len = buffer.len();
    // Copies bytes `offset..` from user address `address` (= `ptr + offset`), reporting where it
    // stopped.
    let mut copy =
        |offset: usize, address: u64| Machine::copy_from_user(&mut buffer[offset..], address);
    if len == 0 {
        // Nothing is read or written: only the arch path's range check, as always.
        return copy(0, ptr).map_err(|_| Error::BadAddress);
    }
    let end = ptr.checked_add(len as u64).ok_or(Error::BadAddress)?;
    if ptr < USER_START || end > USER_END {
        // A kernel, non-canonical or wrapping range: never a pager's business.
        return Err(Error::BadAddress);
    }
    let mut offset = 0usize;
    // The page the pager was last asked about, and how many times in a row.
    let mut asked: Option<(u64, u32)> = None;
    loop {
        let address = ptr + offset as u64;
        let stopped = match copy(offset, address) {
            Ok(()) => return Ok(()),
            Err(UserAccessError::Fault { addr }) => addr,
            Err(_) => return Err(Error::BadAddress),
        };
        // The arch path reports the first byte it did not copy: everything before it is done.
        // Anything outside what is left of the buffer would be an arch bug: refuse it.
        if stopped < address || stopped >= end {
            return Err(Error::BadAddress);
        }
        offset = (stopped - ptr) as usize;
        let page = stopped & !(FRAME_SIZE - 1);
        let attempts = match asked {
            Some((last, n)) if last == page => n + 1,
            _ => 1,
        };
        if attempts > SYSCALL_FAULT_ATTEMPTS {
            return Err(Error::BadAddress);
        }
        asked = Some((page, attempts));
        if !fault::syscall_fault(stopped, site.pc) {
            return Err(Error::BadAddress);
        }
    }
}

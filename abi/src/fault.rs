//! The fault protocol: how the kernel tells a pager (or an exception handler) that a thread
//! faulted, and how it answers.
//!
//! Owns the layout of the fault message, the rule that decides who receives it, and the meaning
//! of the reply. When a user thread takes a page fault or any other exception, the kernel makes a
//! [`Call`](crate::Syscall::Call) on an endpoint of the faulting address space *on the thread's
//! behalf*: the receiver gets an ordinary message with a reply token, and the faulting thread
//! stays blocked (it reads [`Faulted`](crate::syscall::ThreadStatus::Faulted)) until the reply.
//! It must never describe anything the kernel does not send: every value here is produced by the
//! kernel's fault path.
//!
//! | slot | content |
//! |------|---------|
//! | info | label [`FAULT_LABEL`], length 4, no capability |
//! | word 0 | [`FaultKind`] |
//! | word 1 | the faulting data address ([`FaultKind::Page`]), else 0 |
//! | word 2 | the instruction pointer of the faulting instruction |
//! | word 3 | [`access`] bits ([`FaultKind::Page`]), else 0 |
//! | badge | the badge of the endpoint capability given to `SetPager` or `SetExceptionHandler` (tells processes apart) |
//!
//! # Who receives it (the forwarding rule)
//!
//! - A [`FaultKind::Page`] fault goes to the space's **pager**
//!   ([`SetPager`](crate::Syscall::SetPager)).
//! - Any other fault ([`FaultKind::UndefinedInstruction`], [`FaultKind::Other`]: general
//!   protection, alignment, a breakpoint, a privileged instruction) goes to the space's
//!   **exception handler** ([`SetExceptionHandler`](crate::Syscall::SetExceptionHandler)) if it
//!   has one, else to its pager. The same message either way: one server may be both.
//! - With nobody to receive it, the process is killed with the kernel's one-line fault report
//!   (`[fault] process NAME ...`), and its threads read
//!   [`Killed`](crate::syscall::ThreadStatus::Killed) with the words of the fault that killed it.
//!
//! # The reply
//!
//! The reply's label decides: [`RESUME`] (0) resumes the thread at the faulting instruction
//! (which runs again, so the receiver must have fixed the cause, or the thread faults again and
//! the receiver hears of it again); any other label kills the process with the one-line report.
//! A receiving endpoint that is gone, or a receiver that dies before replying, kills it the same
//! way. A capability attached to the reply is destroyed.
//!
//! # Faults of system calls
//!
//! A system call whose user buffer lies in memory nobody mapped yet (the pointer arguments of
//! [`crate::syscall`]) uses the same protocol with the pager: kind [`FaultKind::Page`], the first
//! address the kernel could not access, the pc of the system-call instruction (`syscall` /
//! `svc #0`) and [`access::WRITE`] for a buffer the kernel writes into (0 for one it reads).
//! `RESUME` makes the kernel retry its copy from that address. Anything else (no pager, another
//! label, the pager gone, or [`SYSCALL_FAULT_ATTEMPTS`] answers about the same page) fails the
//! system call with [`BadAddress`](crate::Error::BadAddress) and kills nobody: the faulting
//! access was the kernel's, made for the call, not an instruction of the thread. A buffer that
//! does not lie wholly in user space (below [`USER_START`](crate::init::USER_START), at or above
//! [`USER_END`](crate::init::USER_END), or wrapping) is `BadAddress` at once: the pager never
//! sees a kernel or non-canonical address from a system call.

/// The label of a fault message.
pub const FAULT_LABEL: u32 = 0xFA17;

/// The reply label that resumes the faulting thread.
pub const RESUME: u32 = 0;

/// How many times one system call asks the pager about the same page before it gives up with
/// [`BadAddress`](crate::Error::BadAddress) (a pager that answers `RESUME` without mapping the
/// page cannot keep a thread in the kernel). Each page of a buffer gets its own attempts.
pub const SYSCALL_FAULT_ATTEMPTS: u32 = 3;

/// What went wrong, in word 0 of a fault message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum FaultKind {
    /// A memory access the page tables refused (not mapped, or not allowed).
    Page = 1,
    /// An instruction the CPU does not define (`ud2`, `udf`, an unknown opcode).
    UndefinedInstruction = 2,
    /// Any other exception: general protection, alignment, a breakpoint, arithmetic.
    Other = 3,
}

impl FaultKind {
    /// Decodes word 0; `None` for a value the kernel never sends.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            1 => Some(Self::Page),
            2 => Some(Self::UndefinedInstruction),
            3 => Some(Self::Other),
            _ => None,
        }
    }

    /// A short lower-case name, for reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Page => "page fault",
            Self::UndefinedInstruction => "undefined instruction",
            Self::Other => "exception",
        }
    }
}

/// The bits of word 3 of a [`FaultKind::Page`] message.
pub mod access {
    /// The access was a write (else a read or an instruction fetch).
    pub const WRITE: u64 = 1 << 0;
    /// The access was an instruction fetch.
    pub const EXECUTE: u64 = 1 << 1;
    /// A page was mapped there, but not with the access needed (a protection fault rather than
    /// a missing page). Never set for an address outside user space (at or above
    /// [`USER_END`](crate::init::USER_END)): whether the kernel maps something there is not
    /// user space's to learn.
    pub const PRESENT: u64 = 1 << 2;
}

//! The Strait system-call ABI: the contract between the kernel and every program above it.
//!
//! This crate is what a third party programs against. It owns the meaning of every value that
//! crosses the user/kernel boundary:
//!
//! - [`syscall`]: the system-call numbers ([`Syscall`]) and what each one takes and returns;
//! - [`regs`]: which register carries what, per architecture (`syscall` on x86_64, `svc #0` on
//!   AArch64);
//! - [`message`]: the IPC message descriptor ([`MessageInfo`]), reply tokens, timeouts, badges and
//!   the notification word;
//! - [`rights`]: what a capability allows ([`Rights`]);
//! - [`object`]: the kinds of kernel object a capability can name ([`ObjectType`]);
//! - [`handle`]: how a capability handle is encoded in one word ([`CapHandle`]);
//! - [`error`]: the error codes ([`Error`]) and how a result travels in the result register;
//! - [`fault`]: the message a pager receives when a thread faults, and the reply that resumes it;
//! - [`init`]: what the initial process finds when it starts (the info page, fixed addresses).
//!
//! It must never depend on the kernel (`kernel-core` depends on it, and user programs must see
//! the kernel only through this contract), never contain `unsafe` code (the inline assembly that
//! issues a system call belongs to the user runtime, `servers/rt`), and never change a value
//! once published: every number here is pinned by a test, and new syscalls, error codes, rights
//! and object types are only ever *appended*.
//!
//! # Conventions shared by every item
//!
//! - A *word* is 64 bits: both supported architectures (x86_64, AArch64) are 64-bit, and every
//!   register-sized value here is a `u64` (or `usize`, which is the same size on them).
//! - The raw value 0 never names anything: there is no syscall 0, no capability handle 0, no reply
//!   token 0 and no object type 0. A register that was never set (and is therefore usually 0)
//!   fails loudly instead of silently naming slot 0.
//! - Every decoding function accepts any raw value and rejects what it does not understand with
//!   [`Error::InvalidArgument`] (or `None`): decoding never panics, whatever user space passes.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod fault;
pub mod handle;
pub mod init;
pub mod message;
pub mod object;
pub mod regs;
pub mod rights;
pub mod syscall;

#[cfg(test)]
mod tests;

pub use error::{Error, Result, result_from_raw, result_into_raw};
pub use handle::CapHandle;
pub use message::{
    Badge, MSG_WORDS, MessageInfo, NOTIFICATION_BITS, ReplyToken, Timeout, UNBADGED,
};
pub use object::ObjectType;
pub use rights::Rights;
pub use syscall::Syscall;

// Every encoding in this crate packs values into 64-bit registers; a 32-bit target would silently
// truncate them.
const _: () = assert!(
    usize::BITS == 64,
    "the Strait ABI is defined for 64-bit targets only"
);

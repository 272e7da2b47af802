//! The register convention: which register carries the syscall number, each argument and each
//! result, on each architecture.
//!
//! Owns the mapping from the architecture-neutral *argument slots* `a0..a8` (what every
//! [`Syscall`](crate::Syscall) is documented in) to machine registers, and the fixed slots of the
//! IPC calls ([`ipc`]). It must never change a mapping (compiled programs depend on it) and holds
//! no code that issues a system call: the user runtime's inline assembly does, naming the registers
//! given here.
//!
//! # Rules common to both architectures
//!
//! - The syscall number goes in the *number register*, arguments in slots `a0..a8`. A syscall
//!   ignores the slots it does not document.
//! - On return the *result register* holds the result, encoded as described in
//!   [`crate::error`]: a success value (0 when there is nothing to return) or an error code.
//! - Slots a syscall documents as outputs hold its outputs on return, on success only. Every
//!   other register is preserved: the remaining general-purpose registers, the stack pointer, the
//!   FP/SIMD registers and their control/status registers. The only exceptions are the result
//!   register, and on x86_64 `rcx` and `r11`, which the `syscall` instruction itself destroys.
//! - The kernel never reads or writes user memory except through the pointer arguments a syscall
//!   documents; the user stack is never touched.
//! - A second result, where a syscall has one, is in slot `a1`.
//!
//! # x86_64 ([`X86_64`])
//!
//! `syscall`, number in `rax`, result in `rax`; slots `a0..a8` are `rdi, rsi, rdx, r10, r8, r9,
//! r12, r13, r14`. This is the System V/Linux order for the first six (`r10` stands in for
//! `rcx`, which `syscall` overwrites with the return address); the extra slots are `r12..r14`
//! because `rbx` is reserved by LLVM (inline assembly cannot name it as an operand) and `rbp` is
//! the frame pointer.
//!
//! # AArch64 ([`AARCH64`])
//!
//! `svc #0` (other immediates are reserved: the call fails with
//! [`Error::NoSuchSyscall`](crate::Error::NoSuchSyscall)), number in `x8`, result in `x0`; slots
//! `a0..a7` are `x0..x7` and `a8` is `x9`. Because `x0` is both `a0` and the result register, `a0`
//! is never preserved on AArch64. `x18` (platform register), `x29` (frame pointer) and `x30` (link
//! register) are never used.
//!
//! # IPC
//!
//! All IPC calls share one slot assignment ([`ipc`]), so that a message arrives in the very
//! registers it was sent from and the kernel's fast path copies registers without shuffling them:
//!
//! | slot | in                                                     | out (`Recv`, `ReplyRecv`; `Call` writes `a1..a6` only) |
//! |------|--------------------------------------------------------|--------------------------------------------------|
//! | `a0` | endpoint handle                                        | (not preserved on AArch64)                       |
//! | `a1` | [`MessageInfo`](crate::MessageInfo)                    | [`MessageInfo`](crate::MessageInfo)              |
//! | `a2..a5` | data words 0..3                                    | data words 0..3                                  |
//! | `a6` | handle of the capability to transfer (if the info's flag is set) | handle of the received capability, or [`CapHandle::NULL`](crate::CapHandle::NULL) |
//! | `a7` | [`Timeout`](crate::Timeout)                            | [`Badge`](crate::Badge) of the sender's capability |
//! | `a8` | [`ReplyToken`](crate::ReplyToken) (`Reply`, `ReplyRecv`) | [`ReplyToken`](crate::ReplyToken) of the received call (`NONE` for a `Send`) |

/// Number of argument slots (`a0..a8`).
pub const ARG_SLOTS: usize = 9;

/// One architecture's register convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Convention {
    /// The instruction that enters the kernel.
    pub instruction: &'static str,
    /// The register holding the syscall number.
    pub number: &'static str,
    /// The registers of argument slots `a0..a8`, in slot order.
    pub args: [&'static str; ARG_SLOTS],
    /// The register holding the result on return.
    pub result: &'static str,
    /// Registers the entry instruction itself destroys (never preserved, never arguments).
    pub clobbered: &'static [&'static str],
}

/// The x86_64 convention.
pub const X86_64: Convention = Convention {
    instruction: "syscall",
    number: "rax",
    args: ["rdi", "rsi", "rdx", "r10", "r8", "r9", "r12", "r13", "r14"],
    result: "rax",
    clobbered: &["rcx", "r11"],
};

/// The AArch64 convention.
pub const AARCH64: Convention = Convention {
    instruction: "svc #0",
    number: "x8",
    args: ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x9"],
    result: "x0",
    clobbered: &[],
};

/// The argument slots shared by every IPC call (see the table in the module documentation).
pub mod ipc {
    use crate::MSG_WORDS;

    /// In: the endpoint (or, for `Signal`/`Wait`/`Poll`, notification) handle.
    pub const ENDPOINT: usize = 0;
    /// In and out: the [`MessageInfo`](crate::MessageInfo).
    pub const INFO: usize = 1;
    /// In and out: data words 0..3.
    pub const WORDS: [usize; MSG_WORDS] = [2, 3, 4, 5];
    /// In: the capability to transfer; out: the received capability (or
    /// [`CapHandle::NULL`](crate::CapHandle::NULL)).
    pub const CAP: usize = 6;
    /// In: the [`Timeout`](crate::Timeout).
    pub const TIMEOUT: usize = 7;
    /// Out: the sender's [`Badge`](crate::Badge).
    pub const BADGE: usize = 7;
    /// In (`Reply`, `ReplyRecv`) and out (`Recv`, `ReplyRecv`): the
    /// [`ReplyToken`](crate::ReplyToken).
    pub const REPLY: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    fn check(convention: &Convention) {
        let mut all = std::vec::Vec::from(convention.args);
        all.push(convention.number);
        all.extend_from_slice(convention.clobbered);
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "a register has two roles: {convention:?}");
        assert!(!convention.clobbered.contains(&convention.result));
    }

    #[test]
    fn registers_have_one_role_each() {
        check(&X86_64);
        check(&AARCH64);
        // On AArch64 the result register is slot a0; on x86_64 it is the number register.
        assert_eq!(AARCH64.result, AARCH64.args[0]);
        assert_eq!(X86_64.result, X86_64.number);
    }

    #[test]
    fn ipc_slots_cover_a_whole_message() {
        let mut inputs = std::vec![ipc::ENDPOINT, ipc::INFO, ipc::CAP, ipc::TIMEOUT, ipc::REPLY];
        inputs.extend_from_slice(&ipc::WORDS);
        inputs.sort_unstable();
        assert_eq!(inputs, (0..ARG_SLOTS).collect::<std::vec::Vec<_>>());
        // At least four data words travel in registers on both architectures.
        assert!(ipc::WORDS.len() >= 4);
        assert!(ipc::WORDS.iter().all(|&slot| slot < ARG_SLOTS));
    }
}

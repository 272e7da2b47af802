//! The ABI pins: every number and layout a compiled program depends on, written out literally.
//!
//! If one of these tests fails, a change broke binary compatibility with every program built
//! against the old value. Do not "fix" the expected value: append a new number instead.

use crate::regs::{AARCH64, X86_64, ipc};
use crate::*;

#[test]
fn syscall_numbers_are_pinned() {
    let pinned: [(Syscall, usize); 32] = [
        (Syscall::Null, 1),
        (Syscall::DebugWrite, 2),
        (Syscall::Yield, 3),
        (Syscall::ThreadExit, 4),
        (Syscall::Send, 5),
        (Syscall::Recv, 6),
        (Syscall::Call, 7),
        (Syscall::Reply, 8),
        (Syscall::ReplyRecv, 9),
        (Syscall::Signal, 10),
        (Syscall::Wait, 11),
        (Syscall::Poll, 12),
        (Syscall::CapCopy, 13),
        (Syscall::CapDelete, 14),
        (Syscall::CapIdentify, 15),
        (Syscall::CapGrant, 16),
        (Syscall::EndpointCreate, 17),
        (Syscall::NotificationCreate, 18),
        (Syscall::AddressSpaceCreate, 19),
        (Syscall::FrameAlloc, 20),
        (Syscall::Map, 21),
        (Syscall::Unmap, 22),
        (Syscall::ThreadCreate, 23),
        (Syscall::ThreadStart, 24),
        (Syscall::ThreadKill, 25),
        (Syscall::ThreadJoin, 26),
        (Syscall::SetPager, 27),
        (Syscall::TestReport, 28),
        (Syscall::ClockNanos, 29),
        (Syscall::ThreadState, 30),
        (Syscall::SetExceptionHandler, 31),
        (Syscall::SpaceKill, 32),
    ];
    assert_eq!(pinned.len(), Syscall::ALL.len(), "pin every new syscall");
    for (syscall, number) in pinned {
        assert_eq!(syscall as usize, number, "{syscall:?}");
        assert_eq!(Syscall::from_raw(number), Some(syscall));
    }
    assert_eq!(Syscall::from_raw(0), None);
}

#[test]
fn error_codes_are_pinned() {
    let pinned: [(Error, isize); 15] = [
        (Error::InvalidCapability, -1),
        (Error::StaleCapability, -2),
        (Error::WrongType, -3),
        (Error::InsufficientRights, -4),
        (Error::InvalidArgument, -5),
        (Error::BadAddress, -6),
        (Error::OutOfMemory, -7),
        (Error::Timeout, -8),
        (Error::WouldBlock, -9),
        (Error::Killed, -10),
        (Error::NoSuchSyscall, -11),
        (Error::TableFull, -12),
        (Error::Busy, -13),
        (Error::InvalidReply, -14),
        (Error::Unknown, -4095),
    ];
    assert_eq!(
        pinned.len(),
        Error::ALL.len() + 1,
        "pin every new error code"
    );
    for (error, code) in pinned {
        assert_eq!(error as isize, code, "{error:?}");
        assert_eq!(Error::from_raw(code), Some(error));
        assert_eq!(result_from_raw(code as usize), Err(error));
    }
    assert_eq!(error::ERROR_MIN, -4095);
}

#[test]
fn rights_bits_are_pinned() {
    let pinned = [
        (Rights::READ, 1 << 0),
        (Rights::WRITE, 1 << 1),
        (Rights::EXECUTE, 1 << 2),
        (Rights::MAP, 1 << 3),
        (Rights::GRANT, 1 << 4),
        (Rights::SEND, 1 << 5),
        (Rights::CALL, 1 << 6),
        (Rights::RECEIVE, 1 << 7),
        (Rights::CONTROL, 1 << 8),
    ];
    assert_eq!(
        pinned.len(),
        Rights::all().iter().count(),
        "pin every new right"
    );
    for (right, bit) in pinned {
        assert_eq!(right.bits(), bit, "{right:?}");
    }
}

#[test]
fn object_types_and_their_rights_are_pinned() {
    let pinned = [
        (ObjectType::Endpoint, 1, 0b0_1111_0000),
        (ObjectType::Notification, 2, 0b0_1011_0000),
        (ObjectType::AddressSpace, 3, 0b1_0001_1000),
        (ObjectType::Thread, 4, 0b1_0001_0000),
        (ObjectType::FrameRange, 5, 0b0_0001_1111),
        (ObjectType::Irq, 6, 0b1_0001_0000),
    ];
    assert_eq!(pinned.len(), ObjectType::ALL.len(), "pin every new type");
    for (ty, value, rights) in pinned {
        assert_eq!(ty as u8, value, "{ty:?}");
        assert_eq!(ty.rights().bits(), rights, "{ty:?}");
    }
}

#[test]
fn layouts_are_pinned() {
    assert_eq!(MSG_WORDS, 4);
    assert_eq!(
        MessageInfo::new(0x0102_0304, 4, true).unwrap().into_raw(),
        0x0102_0304_0000_000c
    );
    assert_eq!(
        CapHandle::new(0x0a0b, 0x0c0d).into_raw(),
        0x0000_0c0d_0000_0a0b
    );
    assert_eq!(CapHandle::NULL.into_raw(), 0);
    assert_eq!(ReplyToken::NONE.into_raw(), 0);
    assert_eq!(Timeout::POLL.into_raw(), 0);
    assert_eq!(Timeout::FOREVER.into_raw(), u64::MAX);
    assert_eq!(UNBADGED, 0);
    assert_eq!(NOTIFICATION_BITS, 0x7fff_ffff_ffff_ffff);
    assert_eq!(syscall::DEBUG_WRITE_MAX, 4096);
}

#[test]
fn register_conventions_are_pinned() {
    assert_eq!(X86_64.instruction, "syscall");
    assert_eq!(X86_64.number, "rax");
    assert_eq!(
        X86_64.args,
        ["rdi", "rsi", "rdx", "r10", "r8", "r9", "r12", "r13", "r14"]
    );
    assert_eq!(X86_64.result, "rax");
    assert_eq!(X86_64.clobbered, ["rcx", "r11"]);

    assert_eq!(AARCH64.instruction, "svc #0");
    assert_eq!(AARCH64.number, "x8");
    assert_eq!(
        AARCH64.args,
        ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x9"]
    );
    assert_eq!(AARCH64.result, "x0");
    assert!(AARCH64.clobbered.is_empty());

    assert_eq!(
        (ipc::ENDPOINT, ipc::INFO, ipc::WORDS, ipc::CAP),
        (0, 1, [2, 3, 4, 5], 6)
    );
    assert_eq!((ipc::TIMEOUT, ipc::BADGE, ipc::REPLY), (7, 7, 8));
}

//! `syscall_bad_args`: the kernel refuses malformed arguments with the documented error.
//!
//! Owns the checks of every pointer-taking call (`DebugWrite`; `TestReport`'s name and reason)
//! against null, kernel, unmapped and wrapping pointers (`BadAddress`) and over-long lengths
//! (`InvalidArgument`); of `Map` against unaligned, kernel and beyond-the-end addresses
//! (`BadAddress`), W+X and unknown access bits (`InvalidArgument`); of `Unmap` against an
//! unaligned address (`BadAddress`); of `FrameAlloc(0)`; of unknown syscall numbers
//! (`NoSuchSyscall`); of message descriptors with a length above 4 or reserved bits and rights
//! with unknown bits (`InvalidArgument`).
//!
//! It must never pass an argument that could harm init if the kernel wrongly accepted it:
//! pointers are only read by these calls, mappings go into a fresh address space that nothing
//! runs in, and IPC uses `POLL` so nothing blocks.

use super::{TestResult, expect_err, owned};
use crate::Env;
use abi::init::USER_END;
use abi::syscall::DEBUG_WRITE_MAX;
use abi::{Error, Rights, Syscall};
use rt::syscall::{SLOTS, address_space_create, endpoint_create, frame_alloc, raw_syscall_result};

/// The first kernel address on x86_64 (and far outside user space on AArch64).
const KERNEL_PTR: u64 = 0xffff_8000_0000_0000;
/// A user address nothing maps in init.
const UNMAPPED_PTR: u64 = 0x0000_5555_0000_0000;
/// A pointer whose range (with [`WRAP_LEN`]) wraps around the end of the address space.
const WRAP_PTR: u64 = u64::MAX - 15;
/// Length used with [`WRAP_PTR`].
const WRAP_LEN: u64 = 64;
/// The bad pointers every pointer argument is tried with, and their names.
const BAD_POINTERS: [(&str, u64, u64); 4] = [
    ("null", 0, 8),
    ("kernel", KERNEL_PTR, 8),
    ("unmapped", UNMAPPED_PTR, 8),
    ("wrapping", WRAP_PTR, WRAP_LEN),
];

/// Readable bytes longer than every length limit.
static LONG: [u8; DEBUG_WRITE_MAX + 1] = [b'a'; DEBUG_WRITE_MAX + 1];
/// The name used when a call would report if the kernel wrongly accepted it.
const PROBE_NAME: &str = "bad_args_probe";

/// Makes a raw system call.
fn raw(nr: usize, args: [u64; SLOTS]) -> abi::Result<usize> {
    // Every call made here is harmless to init even if the kernel wrongly accepted it:
    // DebugWrite and TestReport only read the pointers given; Map and Unmap target a fresh address
    // space that runs nothing; FrameAlloc, CapCopy, CapGrant and Send (with POLL) create or move
    // nothing init uses; unknown numbers get only zero arguments.
    // SAFETY: none of these calls can change init's memory (see above).
    unsafe { raw_syscall_result(nr, args) }
}

fn args(values: &[u64]) -> [u64; SLOTS] {
    let mut args = [0; SLOTS];
    args[..values.len()].copy_from_slice(values);
    args
}

/// Runs the test.
pub fn run(_env: &Env) -> TestResult {
    let bad_address = Error::BadAddress;
    let bad_arg = Error::InvalidArgument;
    let long = LONG.as_ptr() as u64;
    let probe = PROBE_NAME.as_ptr() as u64;
    let probe_len = PROBE_NAME.len() as u64;

    // DebugWrite.
    let debug_write = Syscall::DebugWrite.into_raw();
    for (name, ptr, len) in BAD_POINTERS {
        expect_err(
            format_args!("debug_write with a {name} pointer"),
            raw(debug_write, args(&[ptr, len])),
            bad_address,
        )?;
    }
    expect_err(
        "debug_write of DEBUG_WRITE_MAX + 1 bytes",
        raw(debug_write, args(&[long, DEBUG_WRITE_MAX as u64 + 1])),
        bad_arg,
    )?;

    // TestReport: the name, then the reason of a failed report.
    let report = Syscall::TestReport.into_raw();
    for (name, ptr, len) in BAD_POINTERS {
        expect_err(
            format_args!("test_report with a {name} name pointer"),
            raw(report, args(&[ptr, len, 0, 0, 0])),
            bad_address,
        )?;
        expect_err(
            format_args!("test_report (failed) with a {name} reason pointer"),
            raw(report, args(&[probe, probe_len, 1, ptr, len])),
            bad_address,
        )?;
    }
    expect_err(
        "test_report with a 65-byte name",
        raw(report, args(&[long, 65, 0, 0, 0])),
        bad_arg,
    )?;
    expect_err(
        "test_report with an empty name",
        raw(report, args(&[probe, 0, 0, 0, 0])),
        bad_arg,
    )?;
    let bad_name = "Bad-Name";
    expect_err(
        "test_report with a name outside [a-z0-9_]",
        raw(
            report,
            args(&[bad_name.as_ptr() as u64, bad_name.len() as u64, 0, 0, 0]),
        ),
        bad_arg,
    )?;
    expect_err(
        "test_report (failed) with a 201-byte reason",
        raw(report, args(&[probe, probe_len, 1, long, 201])),
        bad_arg,
    )?;

    // Map and Unmap, into a fresh address space.
    let space = owned("address_space_create", address_space_create())?;
    let frame = owned("frame_alloc(1)", frame_alloc(1))?;
    let frames2 = owned("frame_alloc(2)", frame_alloc(2))?;
    let map = Syscall::Map.into_raw();
    let (s, f) = (space.get().into_raw(), frame.get().into_raw());
    let read = Rights::READ.into_raw();
    expect_err(
        "map at an unaligned address",
        raw(map, args(&[s, f, 0x1000_0001, read])),
        bad_address,
    )?;
    expect_err(
        "map at a kernel address",
        raw(map, args(&[s, f, KERNEL_PTR, read])),
        bad_address,
    )?;
    expect_err(
        "map at USER_END",
        raw(map, args(&[s, f, USER_END, read])),
        bad_address,
    )?;
    expect_err(
        "map of 2 pages at USER_END - 1 page",
        raw(
            map,
            args(&[s, frames2.get().into_raw(), USER_END - 4096, read]),
        ),
        bad_address,
    )?;
    expect_err(
        "map WRITE|EXECUTE",
        raw(
            map,
            args(&[
                s,
                f,
                0x1000_0000,
                (Rights::WRITE | Rights::EXECUTE).into_raw(),
            ]),
        ),
        bad_arg,
    )?;
    expect_err(
        "map with unknown access bits",
        raw(map, args(&[s, f, 0x1000_0000, read | (1 << 20)])),
        bad_arg,
    )?;
    expect_err(
        "unmap at an unaligned address",
        raw(Syscall::Unmap.into_raw(), args(&[s, 0x1000_0001, 1])),
        bad_address,
    )?;

    // Threads may only start inside user space (a non-canonical pc or stack would make the
    // kernel's return to user mode fault on x86_64).
    let thread_create = Syscall::ThreadCreate.into_raw();
    for (what, entry, sp) in [
        ("a non-canonical entry", 0x0000_8000_0000_0000, 0x1_0000),
        ("a kernel entry", KERNEL_PTR, 0x1_0000),
        ("a non-canonical stack", 0x40_0000, 0x0000_9000_0000_0000),
    ] {
        expect_err(
            format_args!("thread_create with {what}"),
            raw(thread_create, args(&[s, entry, sp, 0])),
            bad_address,
        )?;
    }

    expect_err(
        "frame_alloc(0)",
        raw(Syscall::FrameAlloc.into_raw(), args(&[0])),
        bad_arg,
    )?;

    for nr in [0, Syscall::ALL.len() + 1, 9999, usize::MAX] {
        expect_err(
            format_args!("syscall number {nr:#x}"),
            raw(nr, [0; SLOTS]),
            Error::NoSuchSyscall,
        )?;
    }

    // Message descriptors and rights.
    let ep = owned("endpoint_create", endpoint_create())?;
    let e = ep.get().into_raw();
    for (what, info) in [
        ("length 5", 5u64),
        ("length 7", 7),
        ("reserved bit 4", 1 << 4),
    ] {
        expect_err(
            format_args!("send (POLL) with info {what}"),
            raw(Syscall::Send.into_raw(), args(&[e, info, 0, 0, 0, 0, 0, 0])),
            bad_arg,
        )?;
    }
    let cap_copy = Syscall::CapCopy.into_raw();
    expect_err(
        "cap_copy with rights bit 9",
        raw(cap_copy, args(&[e, 1 << 9, 0])),
        bad_arg,
    )?;
    expect_err(
        "cap_copy with rights bit 32",
        raw(cap_copy, args(&[e, 1 << 32, 0])),
        bad_arg,
    )?;
    expect_err(
        "cap_grant with rights bit 9",
        raw(Syscall::CapGrant.into_raw(), args(&[e, s, 1 << 9])),
        bad_arg,
    )
}

//! `syscall_bad_args`: the kernel refuses malformed arguments with the documented error.
//!
//! Owns the checks of every pointer-taking call (`DebugWrite`; `TestReport`'s name and reason)
//! against null, kernel, unmapped and wrapping pointers (`BadAddress`) and over-long lengths
//! (`InvalidArgument`); of `Map` against unaligned, kernel and beyond-the-end addresses
//! (`BadAddress`), W+X and unknown access bits (`InvalidArgument`); of `Unmap` against an
//! unaligned address (`BadAddress`); of `FrameAlloc(0)`; of unknown syscall numbers
//! (`NoSuchSyscall`); of message descriptors with a length above 4 or reserved bits and rights
//! with unknown bits (`InvalidArgument`). Also that `TestReport` is init's alone, for its own
//! tests: a well-formed report for a name that is not an init test of the catalog, or with a
//! status that is no `TestStatus`, is `InvalidArgument`, and one from another process (a `utest`
//! helper) is `InsufficientRights`.
//!
//! It must never pass an argument that could harm init if the kernel wrongly accepted it:
//! pointers are only read by these calls, mappings go into a fresh address space that nothing
//! runs in, and IPC uses `POLL` so nothing blocks. It must never make a report the kernel could
//! rightly accept for another test (each test reports once: that would take its report), and a
//! report that must be refused says "failed", so that a kernel that wrongly takes it fails the
//! boot rather than passing a test.

use super::{TestResult, WAIT, expect_err, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::init::USER_END;
use abi::syscall::DEBUG_WRITE_MAX;
use abi::syscall::TestStatus;
use abi::{Error, Rights, Syscall};
use rt::roles::{REPORT_PROBE, REPORT_PROBE_ACCEPTED, REPORT_PROBE_TEST};
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

/// The names of [`report_refusals`]: a kernel test, an after-init check, and no test at all.
const NOT_INIT_TESTS: [&str; 3] = ["heap_alloc", "user_resources", "no_such_test"];
/// The reason of the reports that must be refused (printed only if the kernel wrongly took one).
const REFUSED_REASON: &str = "syscall_bad_args: this report must have been refused";
/// This test's own name: selected and not yet reported while it runs, so that only the status
/// can make a report under it wrong.
const OWN_NAME: &str = "syscall_bad_args";

/// `ThreadState` refuses anything but a live thread capability with `CONTROL`, in the documented
/// order: null and never-issued handles (`InvalidCapability`), an endpoint (`WrongType`), a copy
/// without `CONTROL` (`InsufficientRights`), a deleted copy and a thread already joined
/// (`StaleCapability`). The thread lives in a fresh address space and never runs user code (it
/// is killed before it was started).
fn thread_state_bad_args() -> TestResult {
    use super::Context;
    use abi::CapHandle;
    use rt::syscall::{
        ThreadState, cap_copy, cap_delete, thread_create, thread_join, thread_kill, thread_state,
    };
    for (what, handle) in [
        ("NULL", CapHandle::NULL),
        (
            "a never-issued handle",
            CapHandle::from_raw(0x0000_0fff_0000_0fff),
        ),
    ] {
        expect_err(
            format_args!("thread_state({what})"),
            thread_state(handle),
            Error::InvalidCapability,
        )?;
    }
    let ep = owned("endpoint_create", endpoint_create())?;
    expect_err(
        "thread_state(endpoint)",
        thread_state(ep.get()),
        Error::WrongType,
    )?;
    let space = owned("address_space_create", address_space_create())?;
    let entry = abi::init::USER_START;
    // SAFETY: the thread belongs to another address space (it cannot touch init's memory), and
    // it is killed before it is ever started.
    let thread = unsafe { thread_create(space.get(), entry, entry + 4096, 0) };
    let thread = owned("thread_create (never started)", thread)?;
    let while_unstarted = || -> TestResult {
        match thread_state(thread.get()) {
            Ok(ThreadState::NotStarted) => {}
            other => {
                fail!("thread_state of a thread never started: {other:?}, expected NotStarted")
            }
        }
        let weak = owned(
            "cap_copy of the thread without CONTROL",
            cap_copy(thread.get(), Rights::GRANT, 0),
        )?;
        expect_err(
            "thread_state without CONTROL",
            thread_state(weak.get()),
            Error::InsufficientRights,
        )?;
        let deleted = owned(
            "cap_copy of the thread",
            cap_copy(thread.get(), Rights::CONTROL, 0),
        )?;
        cap_delete(deleted.get()).context("cap_delete of the copy")?;
        expect_err(
            "thread_state(deleted handle)",
            thread_state(deleted.get()),
            Error::StaleCapability,
        )
    };
    let checked = while_unstarted();
    // Killed and joined whatever the checks found, so the joined-thread checks below have a
    // joined thread to look at (deleting the handle would also end it: `thread_slot_dos`).
    thread_kill(thread.get()).context("thread_kill (never started)")?;
    expect_err(
        "thread_join (killed before start)",
        thread_join(thread.get(), WAIT),
        Error::Killed,
    )?;
    checked?;
    expect_err(
        "thread_state(joined thread)",
        thread_state(thread.get()),
        Error::StaleCapability,
    )
}

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
pub fn run(env: &Env) -> TestResult {
    thread_state_bad_args()?;
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
    report_refusals(env, report)?;

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

/// `TestReport` is for init's own selected tests: other names, an unknown status and other
/// processes are refused. A refused report prints nothing: a `[test]` line for any of these
/// names would show in the harness's verdict (an unknown test, a test reported twice).
fn report_refusals(env: &Env, report: usize) -> TestResult {
    let reason = (REFUSED_REASON.as_ptr() as u64, REFUSED_REASON.len() as u64);
    for name in NOT_INIT_TESTS {
        expect_err(
            format_args!("test_report for {name}, which is not an init test"),
            raw(
                report,
                args(&[
                    name.as_ptr() as u64,
                    name.len() as u64,
                    TestStatus::Failed as u64,
                    reason.0,
                    reason.1,
                ]),
            ),
            Error::InvalidArgument,
        )?;
    }
    expect_err(
        "test_report with status 3",
        raw(
            report,
            args(&[
                OWN_NAME.as_ptr() as u64,
                OWN_NAME.len() as u64,
                3,
                reason.0,
                reason.1,
            ]),
        ),
        Error::InvalidArgument,
    )?;
    // A helper process reports this test (as failed) and exits with the error it got.
    let mut prober = spawn_utest(env, REPORT_PROBE, 0, &[])?;
    prober.start()?;
    let want = Error::InsufficientRights.into_raw() as i64 as u32;
    match prober.join(WAIT) {
        Ok(code) if code == want => Ok(()),
        Ok(code) if i64::from(code) == REPORT_PROBE_ACCEPTED => {
            fail!("a utest helper's TestReport for {REPORT_PROBE_TEST} was accepted")
        }
        Ok(code) => fail!(
            "a utest helper's TestReport: exit code {code:#x} ({}), expected {want:#x} \
             (insufficient rights)",
            abi::Error::from_raw(code as i32 as isize).map_or("not an error code", Error::name)
        ),
        Err(error) => fail!("join the report prober: {error}"),
    }
}

//! `usercopy_demand_fault`: a system call whose buffer lies in memory nobody mapped yet asks
//! the process's pager, as a page fault of the calling thread would, and completes once the
//! pager mapped it.
//!
//! Owns the check of `abi::fault` "Faults of system calls", end to end, with init as the pager
//! of a helper ([`rt::roles::USERCOPY_CLIENT`]) that makes the `DebugWrite`s of
//! [`USERCOPY_CASES`] one at a time, reporting each raw result. Pager and reports share one
//! endpoint, told apart by badge, so every message arrives in the order the kernel sent it and a
//! report where a fault was due (or the other way round) fails at once. Each fault must be a call
//! with label `FAULT_LABEL`, kind `Page`, the first address the kernel could not read, the pc of
//! the helper's `syscall` / `svc #0` (announced in its plan) and access 0 (a read), and the
//! kernel must report the helper `Faulted` on exactly it meanwhile. Case by case:
//!
//! 0. a buffer across two unmapped pages: a fault at its start, then (once the pager mapped the
//!    first page, holding the first bytes of the text) at the start of the second; then the call
//!    returns the full length, and the kernel prints the text whole (the `boot_all` scenario's
//!    `log_must_contain`);
//! 1. a page the pager answers `RESUME` about without mapping it: exactly
//!    `SYSCALL_FAULT_ATTEMPTS` faults, then `BadAddress`;
//! 2. a page the pager refuses: one fault, then `BadAddress`, and the helper lives on;
//! 3. and 4. a kernel address, and a range past the end of user space: `BadAddress` with no fault;
//! 5. with no pager at all: `BadAddress`, no fault, the helper lives on;
//! 6. case 0 again: no fault, the full length.
//!
//! The helper then exits 0. It must never leave the helper blocked in a fault (the `Spawned`
//! guard kills it on any failure).

use super::{Context, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::fault::{FAULT_LABEL, FaultKind, RESUME, SYSCALL_FAULT_ATTEMPTS};
use abi::{CapHandle, Error, MSG_WORDS, ReplyToken, Rights, Timeout, result_from_raw};
use rt::process::PAGE_SIZE;
use rt::roles::{
    USERCOPY_CASES, USERCOPY_CLIENT, USERCOPY_PLAN, USERCOPY_RESULT, USERCOPY_SPLIT, USERCOPY_TEXT,
    USERCOPY_WINDOW_VA,
};
use rt::syscall::{
    FaultWords, Message, Received, ThreadState, cap_copy, endpoint_create, frame_alloc, map, recv,
    reply, set_pager, thread_state, unmap,
};

/// The badge of the pager capability.
const PAGER_BADGE: u64 = 0xFA;
/// The badge of the helper's report capability.
const REPORT_BADGE: u64 = 0x4E;
/// Reply label that refuses a fault.
const REFUSE: u32 = 0xDEAD;
/// Where init fills a page before mapping it into the helper.
const SCRATCH_VA: u64 = crate::va::USERCOPY_SCRATCH;

/// What the pager does with one fault of a case.
#[derive(Clone, Copy)]
enum Serve {
    /// Maps window page `n` (holding its part of the text) and answers `RESUME`.
    MapPage(u64),
    /// Answers `RESUME` without mapping anything.
    ResumeOnly,
    /// Answers with a label that is not `RESUME`.
    Refuse,
}

/// What one case of [`USERCOPY_CASES`] must do: the faults, in order (address, and what the
/// pager does), and the result.
struct Case {
    faults: &'static [(u64, Serve)],
    result: abi::Result<usize>,
}

const W: u64 = USERCOPY_WINDOW_VA;
const TEXT_LEN: usize = USERCOPY_TEXT.len();

/// Case 1's address: every attempt faults there.
const NEVER_MAPPED: u64 = USERCOPY_CASES[1].0;

/// The expectations, by case (see the module docs).
const CASES: [Case; USERCOPY_CASES.len()] = [
    Case {
        faults: &[
            (W + PAGE_SIZE - USERCOPY_SPLIT, Serve::MapPage(0)),
            (W + PAGE_SIZE, Serve::MapPage(1)),
        ],
        result: Ok(TEXT_LEN),
    },
    Case {
        faults: &[(NEVER_MAPPED, Serve::ResumeOnly); SYSCALL_FAULT_ATTEMPTS as usize],
        result: Err(Error::BadAddress),
    },
    Case {
        faults: &[(USERCOPY_CASES[2].0, Serve::Refuse)],
        result: Err(Error::BadAddress),
    },
    Case {
        faults: &[],
        result: Err(Error::BadAddress),
    },
    Case {
        faults: &[],
        result: Err(Error::BadAddress),
    },
    Case {
        faults: &[],
        result: Err(Error::BadAddress),
    },
    Case {
        faults: &[],
        result: Ok(TEXT_LEN),
    },
];

/// The case before which init takes the helper's pager away.
const NO_PAGER_CASE: usize = 5;

const _: () = {
    assert!(USERCOPY_CASES[0].0 == W + PAGE_SIZE - USERCOPY_SPLIT);
    assert!(USERCOPY_SPLIT < TEXT_LEN as u64 && TEXT_LEN as u64 - USERCOPY_SPLIT < PAGE_SIZE);
};

/// Maps window page `page` into the helper, holding its part of the text: the first
/// [`USERCOPY_SPLIT`] bytes at the end of page 0, the rest at the start of page 1.
fn map_text_page(env: &Env, space: CapHandle, page: u64) -> TestResult {
    let frame = owned("frame_alloc(1) for a fault", frame_alloc(1))?;
    map(
        env.own_space,
        frame.get(),
        SCRATCH_VA,
        Rights::READ | Rights::WRITE,
    )
    .context("map a text page into init")?;
    let split = USERCOPY_SPLIT as usize;
    let (offset, bytes) = if page == 0 {
        (PAGE_SIZE as usize - split, &USERCOPY_TEXT[..split])
    } else {
        (0, &USERCOPY_TEXT[split..])
    };
    // SAFETY: the page was just mapped read-write at SCRATCH_VA in init's own space and nothing
    // else uses that window; `offset + bytes.len()` stays inside it (checked at compile time
    // above); it is unmapped right after.
    unsafe {
        core::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (SCRATCH_VA as usize + offset) as *mut u8,
            bytes.len(),
        )
    };
    // SAFETY: the window holds only the page mapped above, and no reference into it survives.
    unsafe { unmap(env.own_space, SCRATCH_VA, 1) }.context("unmap the scratch page")?;
    map(space, frame.get(), W + page * PAGE_SIZE, Rights::READ)
        .context(format_args!("map window page {page} into the helper"))
}

/// Checks that `got` is fault `n` of case `case`, at `address`, made at `pc`, and that the
/// kernel reports the helper `Faulted` on exactly it.
fn check_fault(
    case: usize,
    n: usize,
    got: &Received,
    address: u64,
    pc: u64,
    thread: CapHandle,
) -> TestResult {
    let what = format_args!("case {case} fault #{n}");
    if got.badge != PAGER_BADGE {
        fail!(
            "{what}: a message with badge {:#x} label {:#x} words {:x?}, expected a fault",
            got.badge,
            got.msg.label(),
            got.msg.words
        );
    }
    let info = got.msg.info;
    if info.label() != FAULT_LABEL || info.length() != MSG_WORDS || info.has_cap() {
        fail!("{what}: info {info:?}, expected label {FAULT_LABEL:#x}, length 4, no capability");
    }
    if got.reply.is_none() {
        fail!("{what}: no reply token (the kernel must make a call)");
    }
    let want = [FaultKind::Page as u64, address, pc, 0];
    expect_eq(format_args!("{what}: words"), got.msg.words, want)?;
    let state = thread_state(thread).context(format_args!("thread_state during {what}"))?;
    let faulted = FaultWords::from_words(want).map(ThreadState::Faulted);
    if Some(state) != faulted {
        fail!("{what}: the kernel reports the helper {state:?}, expected {faulted:?}");
    }
    Ok(())
}

/// Receives the helper's report of case `case` and checks its result; the token to answer.
fn check_report(
    case: usize,
    got: &Received,
    want: abi::Result<usize>,
) -> Result<ReplyToken, Reason> {
    if got.badge != REPORT_BADGE || got.msg.label() != USERCOPY_RESULT {
        fail!(
            "case {case}: a message with badge {:#x} label {:#x} words {:x?}, expected its report",
            got.badge,
            got.msg.label(),
            got.msg.words
        );
    }
    let [index, raw, _, _] = got.msg.words;
    expect_eq("report's case index", index, case as u64)?;
    let result = result_from_raw(raw as usize);
    if result != want {
        fail!("case {case}: DebugWrite gave {result:?}, expected {want:?}");
    }
    Ok(got.reply)
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let pager = owned(
        "cap_copy SEND|CALL with the pager badge",
        cap_copy(endpoint.get(), Rights::SEND | Rights::CALL, PAGER_BADGE),
    )?;
    let report = owned(
        "cap_copy CALL with the report badge",
        cap_copy(endpoint.get(), Rights::CALL | Rights::GRANT, REPORT_BADGE),
    )?;
    let mut client = spawn_utest(env, USERCOPY_CLIENT, 0, &[(report.get(), Rights::CALL)])?;
    set_pager(client.child.space, pager.get()).context("set_pager")?;
    client.start()?;
    let plan = recv(endpoint.get(), WAIT).context("recv the helper's plan")?;
    if plan.badge != REPORT_BADGE || plan.msg.label() != USERCOPY_PLAN {
        fail!(
            "first message: badge {:#x} label {:#x}, expected the helper's plan",
            plan.badge,
            plan.msg.label()
        );
    }
    let pc = plan.msg.words[0];
    let thread = client.child.thread;
    let mut token = plan.reply;
    for (case, expected) in CASES.iter().enumerate() {
        if case == NO_PAGER_CASE {
            set_pager(client.child.space, CapHandle::NULL).context("set_pager(NULL)")?;
        }
        reply(&Message::label_only(0), token)
            .context(format_args!("reply to the helper before case {case}"))?;
        for (n, &(address, serve)) in expected.faults.iter().enumerate() {
            let got =
                recv(endpoint.get(), WAIT).context(format_args!("recv case {case} fault #{n}"))?;
            let served = check_fault(case, n, &got, address, pc, thread).and_then(|()| {
                let label = match serve {
                    Serve::MapPage(page) => {
                        map_text_page(env, client.child.space, page)?;
                        RESUME
                    }
                    Serve::ResumeOnly => RESUME,
                    Serve::Refuse => REFUSE,
                };
                reply(&Message::label_only(label), got.reply)
                    .context(format_args!("reply to case {case} fault #{n}"))
            });
            if let Err(reason) = served {
                if !got.reply.is_none() {
                    let _ = reply(&Message::label_only(REFUSE), got.reply);
                }
                return Err(reason);
            }
        }
        let got =
            recv(endpoint.get(), WAIT).context(format_args!("recv the report of case {case}"))?;
        token = check_report(case, &got, expected.result)?;
    }
    reply(&Message::label_only(0), token).context("reply to the last report")?;
    client.expect_clean_exit(WAIT)?;
    expect_err(
        "recv POLL after the helper exited (no extra message)",
        recv(endpoint.get(), Timeout::POLL),
        Error::WouldBlock,
    )
}

//! `user_fault_pager`: page faults of another process served by init as its pager.
//!
//! Owns the check of the fault protocol ([`abi::fault`]) end to end: `SetPager` routes the
//! child's faults to init's endpoint as calls carrying label `FAULT_LABEL`, length 4, kind
//! `Page`, and the pager capability's badge; each message describes exactly the access the child
//! made, which the child announced beforehand (its `PAGER_PLAN` message: the pcs of the load and
//! the store it first touches pages with): the address (word 0 of the page), the faulting pc,
//! and the access bits (a read on even pages, a write on odd ones, an instruction fetch on the
//! code page, never `PRESENT` for a page nobody mapped); the faults come once per page, in page
//! order; while init holds a fault the kernel reports the client `Faulted` on exactly that fault
//! (`ThreadState`). Mapping the page (data read-write; the code page readable and executable,
//! holding a return instruction) and replying `RESUME` re-runs the access; the child then checks
//! its data and exits 0. It must never leave a faulting child waiting (any failure replies with a
//! killing label or kills the child).

use super::{Context, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::await_state;
use crate::child::spawn_utest;
use abi::fault::{FAULT_LABEL, FaultKind, RESUME, access};
use abi::{CapHandle, Error, MSG_WORDS, Rights, Timeout, UNBADGED};
use rt::process::PAGE_SIZE;
use rt::roles::{
    PAGER_CLIENT, PAGER_CODE_PAGE, PAGER_PLAN, PAGER_WINDOW_PAGES, PAGER_WINDOW_VA,
    RETURN_INSTRUCTION,
};
use rt::syscall::{
    FaultWords, Message, Received, ThreadState, cap_copy, endpoint_create, frame_alloc, map, recv,
    reply, set_pager, thread_state, unmap,
};

/// The badge of the pager capability (comes back with every fault message).
const PAGER_BADGE: u64 = 0xFA;
/// Reply label that kills the faulting process (anything but RESUME).
const KILL: u32 = 0xDEAD;
/// Where init writes the code page before mapping it into the child.
const SCRATCH_VA: u64 = crate::va::FAULT_PAGER_SCRATCH;

/// The pcs of the client's first-touch load and store (its `PAGER_PLAN` message).
struct Plan {
    load_pc: u64,
    store_pc: u64,
}

/// Checks fault message `n`, which must be about window page `n` (the client touches the pages
/// in order, each faulting once), and returns the page.
fn check_fault(n: u64, fault: &Received, plan: &Plan) -> Result<u64, Reason> {
    let msg = &fault.msg;
    if msg.label() != FAULT_LABEL || msg.info.length() != MSG_WORDS || msg.info.has_cap() {
        fail!(
            "fault #{n}: info {:?}, expected label {FAULT_LABEL:#x}, length 4, no capability",
            msg.info
        );
    }
    if fault.reply.is_none() {
        fail!("fault #{n}: no reply token (the kernel must make a call)");
    }
    if fault.badge != PAGER_BADGE {
        fail!(
            "fault #{n}: badge {:#x}, expected {PAGER_BADGE:#x}",
            fault.badge
        );
    }
    let [kind, address, pc, bits] = msg.words;
    if FaultKind::from_raw(kind) != Some(FaultKind::Page) {
        fail!("fault #{n}: kind {kind} at pc {pc:#x}, expected 1 (page fault)");
    }
    let page = n;
    let base = PAGER_WINDOW_VA + page * PAGE_SIZE;
    let (what, want_pc, want_bits) = if page == PAGER_CODE_PAGE {
        ("instruction fetch", base, access::EXECUTE)
    } else if page.is_multiple_of(2) {
        ("read", plan.load_pc, 0)
    } else {
        ("write", plan.store_pc, access::WRITE)
    };
    if address != base || pc != want_pc || bits != want_bits {
        fail!(
            "fault #{n}: address {address:#x} pc {pc:#x} access {bits:#x}, expected the {what} \
             of page {page}: address {base:#x} pc {want_pc:#x} access {want_bits:#x}"
        );
    }
    Ok(page)
}

/// While init holds fault `n`, the kernel must report the client `Faulted` on exactly the fault
/// the message describes. Returns the page again.
fn check_faulted(n: u64, thread: CapHandle, fault: &Received) -> Result<u64, Reason> {
    let state = thread_state(thread).context(format_args!("thread_state during fault #{n}"))?;
    let expected = FaultWords::from_words(fault.msg.words).map(ThreadState::Faulted);
    if Some(state) != expected {
        fail!("fault #{n}: the kernel reports the client {state:?}, expected {expected:?}");
    }
    Ok(n)
}

/// Maps window page `page` of `space`: a fresh read-write page, or for the code page a
/// read-execute page starting with a return instruction (written through init's scratch window
/// first: a mapping is never writable and executable).
fn map_page(env: &Env, space: CapHandle, page: u64) -> TestResult {
    let frame = owned("frame_alloc(1) for a fault", frame_alloc(1))?;
    let va = PAGER_WINDOW_VA + page * PAGE_SIZE;
    if page != PAGER_CODE_PAGE {
        return map(space, frame.get(), va, Rights::READ | Rights::WRITE)
            .context(format_args!("map window page {page} into the child"));
    }
    map(
        env.own_space,
        frame.get(),
        SCRATCH_VA,
        Rights::READ | Rights::WRITE,
    )
    .context("map the code page into init")?;
    // SAFETY: the page was just mapped read-write at SCRATCH_VA in init's own space and nothing
    // else uses that window; the instruction is a few bytes at its start; it is unmapped right
    // after.
    unsafe {
        core::ptr::copy_nonoverlapping(
            RETURN_INSTRUCTION.as_ptr(),
            SCRATCH_VA as *mut u8,
            RETURN_INSTRUCTION.len(),
        )
    };
    // SAFETY: the window holds only the page mapped above, and no reference into it survives.
    unsafe { unmap(env.own_space, SCRATCH_VA, 1) }.context("unmap the scratch page")?;
    map(space, frame.get(), va, Rights::READ | Rights::EXECUTE)
        .context("map the code page into the child")
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let pager = owned(
        "cap_copy SEND|CALL with badge",
        cap_copy(endpoint.get(), Rights::SEND | Rights::CALL, PAGER_BADGE),
    )?;
    let mut client = spawn_utest(env, PAGER_CLIENT, 0, &[(endpoint.get(), Rights::SEND)])?;
    set_pager(client.child.space, pager.get()).context("set_pager")?;
    client.start()?;
    // Nobody receives yet: the kernel must report the client queued in its send.
    await_state(
        "client sending its plan",
        client.child.thread,
        ThreadState::Sending,
    )?;
    let announced = recv(endpoint.get(), WAIT).context("recv the client's plan")?;
    expect_eq("label of the plan", announced.msg.label(), PAGER_PLAN)?;
    expect_eq("badge of the plan", announced.badge, UNBADGED)?;
    let plan = Plan {
        load_pc: announced.msg.words[0],
        store_pc: announced.msg.words[1],
    };
    for n in 0..PAGER_WINDOW_PAGES {
        let fault = recv(endpoint.get(), WAIT).context(format_args!("recv fault #{n}"))?;
        let served = check_fault(n, &fault, &plan)
            .and_then(|_| check_faulted(n, client.child.thread, &fault))
            .and_then(|page| map_page(env, client.child.space, page));
        match served {
            Ok(()) => {
                reply(&Message::label_only(RESUME), fault.reply)
                    .context(format_args!("reply RESUME to fault #{n}"))?;
            }
            Err(reason) => {
                if !fault.reply.is_none() {
                    let _ = reply(&Message::label_only(KILL), fault.reply);
                }
                return Err(reason);
            }
        }
    }
    client.expect_clean_exit(WAIT)?;
    expect_err(
        "recv POLL after the client exited (no extra fault)",
        recv(endpoint.get(), Timeout::POLL),
        Error::WouldBlock,
    )
}

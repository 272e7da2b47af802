//! `user_fault_pager`: page faults of another process served by init as its pager.
//!
//! Owns the check of the fault protocol ([`abi::fault`]) end to end: `SetPager` routes the
//! child's faults to init's endpoint as calls carrying label `FAULT_LABEL`, length 4, kind
//! `Page`, the address, and the pager capability's badge; mapping the page and replying `RESUME`
//! re-runs the access; sixteen distinct pages fault once each; the child then checks its data
//! and exits 0. It must never leave a faulting child waiting (any failure replies with a killing
//! label or kills the child).

use super::{Context, Reason, TestResult, WAIT, expect_err, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::fault::{FAULT_LABEL, FaultKind, RESUME, access};
use abi::{CapHandle, Error, MSG_WORDS, Rights, Timeout};
use rt::process::PAGE_SIZE;
use rt::roles::{PAGER_CLIENT, PAGER_WINDOW_PAGES, PAGER_WINDOW_VA};
use rt::syscall::{
    Message, Received, cap_copy, cap_delete, endpoint_create, frame_alloc, map, recv, reply,
    set_pager,
};

/// The badge of the pager capability (comes back with every fault message).
const PAGER_BADGE: u64 = 0xFA;
/// Reply label that kills the faulting process (anything but RESUME).
const KILL: u32 = 0xDEAD;

/// Checks one fault message and returns the index of the faulting page in the window.
fn check_fault(n: u64, fault: &Received, seen: u64) -> Result<u64, Reason> {
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
    let [kind, address, ip, bits] = msg.words;
    if FaultKind::from_raw(kind) != Some(FaultKind::Page) {
        fail!("fault #{n}: kind {kind} at ip {ip:#x}, expected 1 (page fault)");
    }
    let window_end = PAGER_WINDOW_VA + PAGER_WINDOW_PAGES * PAGE_SIZE;
    if !(PAGER_WINDOW_VA..window_end).contains(&address) {
        fail!(
            "fault #{n}: address {address:#x} (ip {ip:#x}) outside the window {PAGER_WINDOW_VA:#x}..{window_end:#x}"
        );
    }
    if bits & access::PRESENT != 0 {
        fail!("fault #{n}: access bits {bits:#x} say PRESENT for a page nobody mapped");
    }
    let page = (address - PAGER_WINDOW_VA) / PAGE_SIZE;
    if seen & (1 << page) != 0 {
        fail!("fault #{n}: page {page} ({address:#x}) faulted again after it was mapped");
    }
    Ok(page)
}

/// Maps a fresh read-write page at window page `page` of `space`.
fn map_page(space: CapHandle, page: u64) -> TestResult {
    let frame = frame_alloc(1).context("frame_alloc(1) for a fault")?;
    let mapped = map(
        space,
        frame,
        PAGER_WINDOW_VA + page * PAGE_SIZE,
        Rights::READ | Rights::WRITE,
    )
    .context(format_args!("map window page {page} into the child"));
    let _ = cap_delete(frame);
    mapped
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let pager = owned(
        "cap_copy SEND|CALL with badge",
        cap_copy(endpoint.get(), Rights::SEND | Rights::CALL, PAGER_BADGE),
    )?;
    let mut client = spawn_utest(env, PAGER_CLIENT, 0, &[])?;
    set_pager(client.child.space, pager.get()).context("set_pager")?;
    client.start()?;
    let mut seen = 0u64;
    for n in 0..PAGER_WINDOW_PAGES {
        let fault = recv(endpoint.get(), WAIT).context(format_args!("recv fault #{n}"))?;
        let served = check_fault(n, &fault, seen)
            .and_then(|page| map_page(client.child.space, page).map(|()| page));
        match served {
            Ok(page) => {
                seen |= 1 << page;
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

//! `exception_forwarding`: faults other than page faults go to the space's exception handler
//! (`SetExceptionHandler`), page faults to its pager, per the forwarding rule of `abi::fault`.
//!
//! Owns the checks, each with a `FAULT_*` helper that announces the pc of its faulting
//! instruction first (its `FAULT_PLAN`), with init serving the endpoints:
//!
//! - an undefined instruction, with both a handler and a pager: the handler gets a call with
//!   label `FAULT_LABEL`, its capability's badge, kind `UndefinedInstruction` at that pc (address
//!   and access 0), and the pager nothing; while init holds it the kernel reports the helper
//!   `Faulted` on it; a killing answer ends the helper, which then reads `Killed` by exactly that
//!   fault, and the join says `Killed`;
//! - a breakpoint (`int3`, a protection fault in ring 3; `brk`): kind `Other` at its pc;
//!   answered `RESUME`, the helper executes it again and the handler gets the same fault again;
//! - a page fault with both: the pager gets it, the handler nothing;
//! - an undefined instruction with only a pager: the pager gets it (the fallback);
//! - a page fault with only a handler, and an undefined instruction after the handler was
//!   cleared (`NULL`): nobody is asked, the kernel kills the helper by that fault;
//! - `SetExceptionHandler`'s argument checks (rights, types), which change nothing.
//!
//! It must never leave a faulting helper waiting (a failure answers with a killing label, and
//! the `Spawned` guard kills the helper).

use super::{Context, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::{Spawned, poll_state, spawn_utest};
use abi::fault::{FAULT_LABEL, FaultKind, RESUME};
use abi::{CapHandle, Error, MSG_WORDS, Rights, Timeout};
use rt::roles::{self, FAULT_BREAKPOINT, FAULT_NULL, FAULT_PLAN, FAULT_UNDEFINED};
use rt::syscall::{
    FaultWords, Message, Received, ThreadState, cap_copy, endpoint_create, notification_create,
    recv, reply, set_exception_handler, set_pager, thread_state,
};

/// The badge of the exception handler's capability.
const HANDLER_BADGE: u64 = 0xE8;
/// The badge of the pager's capability.
const PAGER_BADGE: u64 = 0xFA;
/// Reply label that kills the faulting process (anything but RESUME).
const KILL: u32 = 0xDEAD;

/// Init's endpoints: the handler's and the pager's (init receives on both), the capabilities
/// given to the kernel (badged, `SEND | CALL`), and the one the helpers send their plans to.
struct Endpoints {
    handler: super::Owned,
    handler_cap: super::Owned,
    pager: super::Owned,
    pager_cap: super::Owned,
    plans: super::Owned,
}

/// Where a helper's faults may go.
struct Routing {
    handler: bool,
    pager: bool,
}

/// Spawns `role` with `routing`, starts it and returns it with the pc it announced.
fn start_helper(
    env: &Env,
    eps: &Endpoints,
    role: u16,
    routing: Routing,
) -> Result<(Spawned, u64), Reason> {
    let name = roles::role_name(role);
    let mut helper = spawn_utest(env, role, 0, &[(eps.plans.get(), Rights::SEND)])?;
    if routing.handler {
        set_exception_handler(helper.child.space, eps.handler_cap.get())
            .context(format_args!("set_exception_handler for {name}"))?;
    }
    if routing.pager {
        set_pager(helper.child.space, eps.pager_cap.get())
            .context(format_args!("set_pager for {name}"))?;
    }
    helper.start()?;
    let plan = recv(eps.plans.get(), WAIT).context(format_args!("recv the plan of {name}"))?;
    expect_eq(
        format_args!("label of {name}'s plan"),
        plan.msg.label(),
        FAULT_PLAN,
    )?;
    Ok((helper, plan.msg.words[0]))
}

/// The fault words a helper's fault of `kind` at `pc` must produce (address 0 and access 0:
/// the helpers' page fault reads address 0).
fn words(kind: FaultKind, pc: u64) -> [u64; 4] {
    [kind as u64, 0, pc, 0]
}

/// Receives the next fault on `endpoint` and checks it is `want` with `badge`, and that the
/// kernel reports the helper `Faulted` on it meanwhile.
fn expect_fault(
    what: &str,
    endpoint: CapHandle,
    badge: u64,
    helper: &Spawned,
    want: [u64; 4],
) -> Result<Received, Reason> {
    let got = recv(endpoint, WAIT).context(format_args!("{what}: recv the fault"))?;
    let checked = (|| {
        let info = got.msg.info;
        if info.label() != FAULT_LABEL || info.length() != MSG_WORDS || info.has_cap() {
            fail!(
                "{what}: info {info:?}, expected label {FAULT_LABEL:#x}, length 4, no capability"
            );
        }
        if got.reply.is_none() {
            fail!("{what}: no reply token (the kernel must make a call)");
        }
        expect_eq(format_args!("{what}: badge"), got.badge, badge)?;
        expect_eq(format_args!("{what}: words"), got.msg.words, want)?;
        let state =
            thread_state(helper.child.thread).context(format_args!("{what}: thread_state"))?;
        let faulted = FaultWords::from_words(want).map(ThreadState::Faulted);
        if Some(state) != faulted {
            fail!("{what}: the kernel reports the helper {state:?}, expected {faulted:?}");
        }
        Ok(())
    })();
    if let Err(reason) = checked {
        if !got.reply.is_none() {
            let _ = reply(&Message::label_only(KILL), got.reply);
        }
        return Err(reason);
    }
    Ok(got)
}

/// Checks that nothing waits on `endpoint` (the fault went elsewhere, or nowhere).
fn expect_nothing(what: &str, endpoint: CapHandle) -> TestResult {
    match recv(endpoint, Timeout::POLL) {
        Err(Error::WouldBlock) => Ok(()),
        Ok(got) => {
            if !got.reply.is_none() {
                let _ = reply(&Message::label_only(KILL), got.reply);
            }
            fail!(
                "{what}: got label {:#x} badge {:#x} words {:x?}, expected nothing",
                got.msg.label(),
                got.badge,
                got.msg.words
            )
        }
        Err(error) => fail!("{what}: recv POLL: {error}, expected WouldBlock"),
    }
}

/// Waits until the helper is reported killed by a fault with `want`, then joins it (`Killed`).
fn expect_killed_by(what: &str, helper: &Spawned, want: [u64; 4]) -> TestResult {
    let state = poll_state(what, helper.child.thread, "killed by its fault", |state| {
        matches!(state, ThreadState::Killed(_) | ThreadState::Exited(_))
    })?;
    let killed = FaultWords::from_words(want).map(|words| ThreadState::Killed(Some(words)));
    if Some(state) != killed {
        fail!("{what}: the kernel reports {state:?}, expected {killed:?}");
    }
    helper.expect_killed(what, WAIT)
}

/// Answers `got` with a killing label, then checks the helper died of `want`.
fn kill_and_check(what: &str, helper: &Spawned, got: &Received, want: [u64; 4]) -> TestResult {
    reply(&Message::label_only(KILL), got.reply).context(format_args!("{what}: reply KILL"))?;
    expect_killed_by(what, helper, want)
}

/// The argument checks: each refused call changes nothing (the checks after it still see the
/// handler unset).
fn bad_args(eps: &Endpoints, space: CapHandle) -> TestResult {
    let weak_space = owned("cap_copy space MAP only", cap_copy(space, Rights::MAP, 0))?;
    expect_err(
        "set_exception_handler without CONTROL on the space",
        set_exception_handler(weak_space.get(), eps.handler_cap.get()),
        Error::InsufficientRights,
    )?;
    let send_only = owned(
        "cap_copy endpoint SEND only",
        cap_copy(eps.handler.get(), Rights::SEND, 0),
    )?;
    expect_err(
        "set_exception_handler with an endpoint without CALL",
        set_exception_handler(space, send_only.get()),
        Error::InsufficientRights,
    )?;
    let notification = owned("notification_create", notification_create())?;
    expect_err(
        "set_exception_handler with a notification",
        set_exception_handler(space, notification.get()),
        Error::WrongType,
    )?;
    expect_err(
        "set_exception_handler on an endpoint instead of a space",
        set_exception_handler(eps.handler.get(), eps.handler_cap.get()),
        Error::WrongType,
    )
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let handler = owned("endpoint_create (handler)", endpoint_create())?;
    let handler_cap = owned(
        "cap_copy handler SEND|CALL with badge",
        cap_copy(handler.get(), Rights::SEND | Rights::CALL, HANDLER_BADGE),
    )?;
    let pager = owned("endpoint_create (pager)", endpoint_create())?;
    let pager_cap = owned(
        "cap_copy pager SEND|CALL with badge",
        cap_copy(pager.get(), Rights::SEND | Rights::CALL, PAGER_BADGE),
    )?;
    let plans = owned("endpoint_create (plans)", endpoint_create())?;
    let eps = Endpoints {
        handler,
        handler_cap,
        pager,
        pager_cap,
        plans,
    };
    let (h, p) = (eps.handler.get(), eps.pager.get());
    let both = || Routing {
        handler: true,
        pager: true,
    };

    // An undefined instruction goes to the handler, not the pager.
    let what = "undefined instruction, handler and pager";
    let (helper, pc) = start_helper(env, &eps, FAULT_UNDEFINED, both())?;
    let want = words(FaultKind::UndefinedInstruction, pc);
    let got = expect_fault(what, h, HANDLER_BADGE, &helper, want)?;
    expect_nothing("the pager, during an undefined instruction", p)?;
    kill_and_check(what, &helper, &got, want)?;
    drop(helper);

    // A breakpoint: RESUME runs it again, and it comes back.
    let what = "breakpoint, handler only";
    let routing = Routing {
        handler: true,
        pager: false,
    };
    let (helper, pc) = start_helper(env, &eps, FAULT_BREAKPOINT, routing)?;
    let want = words(FaultKind::Other, pc);
    let got = expect_fault(what, h, HANDLER_BADGE, &helper, want)?;
    reply(&Message::label_only(RESUME), got.reply).context("breakpoint: reply RESUME")?;
    let again = expect_fault("breakpoint, resumed", h, HANDLER_BADGE, &helper, want)?;
    kill_and_check(what, &helper, &again, want)?;
    drop(helper);

    // A page fault goes to the pager, not the handler.
    let what = "page fault, handler and pager";
    let (helper, pc) = start_helper(env, &eps, FAULT_NULL, both())?;
    let want = words(FaultKind::Page, pc);
    let got = expect_fault(what, p, PAGER_BADGE, &helper, want)?;
    expect_nothing("the handler, during a page fault", h)?;
    kill_and_check(what, &helper, &got, want)?;
    drop(helper);

    // Without a handler, the pager gets every fault.
    let what = "undefined instruction, pager only";
    let routing = Routing {
        handler: false,
        pager: true,
    };
    let (helper, pc) = start_helper(env, &eps, FAULT_UNDEFINED, routing)?;
    let want = words(FaultKind::UndefinedInstruction, pc);
    let got = expect_fault(what, p, PAGER_BADGE, &helper, want)?;
    kill_and_check(what, &helper, &got, want)?;
    drop(helper);

    // A page fault with only a handler: nobody is asked, the helper dies of it.
    let what = "page fault, handler only";
    let routing = Routing {
        handler: true,
        pager: false,
    };
    let (helper, pc) = start_helper(env, &eps, FAULT_NULL, routing)?;
    expect_killed_by(what, &helper, words(FaultKind::Page, pc))?;
    expect_nothing("the handler, after a page fault", h)?;
    drop(helper);

    // A handler set and cleared again, and a space given bad arguments: nobody is asked.
    let what = "undefined instruction, handler cleared";
    let mut helper = spawn_utest(env, FAULT_UNDEFINED, 0, &[(eps.plans.get(), Rights::SEND)])?;
    let space = helper.child.space;
    set_exception_handler(space, eps.handler_cap.get()).context("set_exception_handler")?;
    set_exception_handler(space, CapHandle::NULL).context("set_exception_handler(NULL)")?;
    bad_args(&eps, space)?;
    helper.start()?;
    let plan = recv(eps.plans.get(), WAIT).context("recv the plan (handler cleared)")?;
    let want = words(FaultKind::UndefinedInstruction, plan.msg.words[0]);
    expect_killed_by(what, &helper, want)?;
    expect_nothing("the handler, after it was cleared", h)?;
    expect_nothing("the pager, never set", p)
}

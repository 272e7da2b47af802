//! `user_fault_kill`: a process that faults without a pager is killed by that very fault, and
//! the system carries on.
//!
//! Owns the check that each kind of fault (null read, write to read-only text, read of kernel
//! memory, undefined instruction, privileged instruction, and a system call in the last bytes of
//! user space, whose return address is the first non-canonical one: the SYSRET hazard on x86_64)
//! ends the faulting process, and that what killed it is that fault: before the join, the
//! kernel's `ThreadState` must report the thread killed by a fault of the expected kind, at the
//! instruction the helper announced beforehand (its `FAULT_PLAN` message), with the expected data
//! address and access bits; then the join must say `Killed`, and a fresh process can still do
//! IPC with init. It must never accept an exit code or a kill for another reason as success: a
//! helper that survives its fault exits, and that is a failure.

use super::{Context, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::poll_state;
use crate::child::spawn_utest;
use abi::fault::{FaultKind, access};
use abi::{CapHandle, Error, Rights, Timeout};
use rt::roles::{
    self, ECHO_SERVER, FAULT_KERNEL, FAULT_NULL, FAULT_PLAN, FAULT_PRIVILEGED, FAULT_UNDEFINED,
    FAULT_WRITE_RO, SHUTDOWN,
};
use rt::syscall::{
    FaultWords, Message, ThreadState, address_space_create, call, endpoint_create, frame_alloc,
    map, recv, send, thread_create, thread_join, thread_start, unmap,
};

/// What the fault that kills a helper must look like.
struct Expected {
    kind: FaultKind,
    address: u64,
    pc: u64,
    access: u64,
}

/// Waits until the kernel reports `thread` ended, and checks that a fault as `expected` killed it.
fn expect_killed_by(what: &str, thread: CapHandle, expected: &Expected) -> TestResult {
    let state = poll_state(what, thread, "killed by a fault", |state| {
        matches!(state, ThreadState::Killed(_) | ThreadState::Exited(_))
    })?;
    let fault = match state {
        ThreadState::Killed(Some(fault)) => fault,
        other => fail!("{what}: the kernel reports {other:?}, expected killed by a fault"),
    };
    let FaultWords {
        kind,
        address,
        pc,
        access: bits,
    } = fault;
    if kind != expected.kind
        || address != expected.address
        || pc != expected.pc
        || bits != expected.access
    {
        fail!(
            "{what}: killed by {} at {address:#x} pc {pc:#x} access {bits:#x}, expected {} at \
             {:#x} pc {:#x} access {:#x}",
            kind.name(),
            expected.kind.name(),
            expected.address,
            expected.pc,
            expected.access
        );
    }
    Ok(())
}

/// What the fault of `role` must look like, from the pc and data address it announced.
fn expected_fault(role: u16, pc: u64, address: u64) -> Expected {
    let page = |address, access| Expected {
        kind: FaultKind::Page,
        address,
        pc,
        access,
    };
    let other = |kind| Expected {
        kind,
        address: 0,
        pc,
        access: 0,
    };
    match role {
        // A read of a page nobody mapped.
        FAULT_NULL => page(0, 0),
        // A write to a page mapped read and execute.
        FAULT_WRITE_RO => page(address, access::WRITE | access::PRESENT),
        // A read of kernel memory: reported as a plain read, never saying whether the kernel
        // maps the page (`access::PRESENT` is withheld for addresses outside user space).
        FAULT_KERNEL => page(roles::KERNEL_PROBE_VA, 0),
        FAULT_UNDEFINED => other(FaultKind::UndefinedInstruction),
        // General protection (x86_64) or a trapped system-register access (AArch64).
        _ => other(FaultKind::Other),
    }
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let plans = owned("endpoint_create (plans)", endpoint_create())?;
    for role in [
        FAULT_NULL,
        FAULT_WRITE_RO,
        FAULT_KERNEL,
        FAULT_UNDEFINED,
        FAULT_PRIVILEGED,
    ] {
        let name = roles::role_name(role);
        let mut victim = spawn_utest(env, role, 0, &[(plans.get(), Rights::SEND)])?;
        victim.start()?;
        let plan = recv(plans.get(), WAIT).context(format_args!("recv the plan of {name}"))?;
        expect_eq(
            format_args!("label of {name}'s plan"),
            plan.msg.label(),
            FAULT_PLAN,
        )?;
        let [pc, address, _, _] = plan.msg.words;
        expect_killed_by(
            name,
            victim.child.thread,
            &expected_fault(role, pc, address),
        )?;
        victim.expect_killed(name, WAIT)?;
    }
    syscall_at_the_end_of_user_space(env)?;
    // Life goes on: a fresh server answers.
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let mut server = spawn_utest(env, ECHO_SERVER, 0, &[(endpoint.get(), Rights::RECEIVE)])?;
    server.start()?;
    for i in 0..10u64 {
        let answer = call(endpoint.get(), &Message::new(7, [i, i, i, i]), WAIT)
            .context(format_args!("call #{i} after the faults"))?;
        expect_eq(
            format_args!("reply #{i} after the faults"),
            answer.words,
            [i + 1; 4],
        )?;
    }
    send(endpoint.get(), &Message::label_only(SHUTDOWN), WAIT).context("send shutdown")?;
    server.expect_clean_exit(WAIT)
}

/// The last page of user space (its end is `abi::init::USER_END`).
const LAST_PAGE: u64 = USER_END - 4096;
const USER_END: u64 = abi::init::USER_END;
/// Where init writes that page before mapping it into the victim.
const SCRATCH_VA: u64 = crate::va::FAULT_KILL_SCRATCH;

/// `Null`, as the last instruction(s) of user space: after the system call, the return address is
/// `USER_END`, which is not canonical on x86_64 (SYSRET there would fault in the kernel).
#[cfg(target_arch = "x86_64")]
const TAIL_CODE: &[u8] = &[0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05]; // mov eax, 1; syscall
#[cfg(target_arch = "aarch64")]
const TAIL_CODE: &[u8] = &[0x28, 0x00, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4]; // mov x8, #1; svc #0

/// A process whose only code ends exactly at the end of user space: it makes a system call and
/// must be killed when it "returns" past the end, with the kernel carrying on.
fn syscall_at_the_end_of_user_space(env: &Env) -> TestResult {
    let space = owned("address_space_create", address_space_create())?;
    let frames = owned("frame_alloc", frame_alloc(1))?;
    map(
        env.own_space,
        frames.get(),
        SCRATCH_VA,
        Rights::READ | Rights::WRITE,
    )
    .context("map the code page into init")?;
    let offset = 4096 - TAIL_CODE.len();
    let target = (SCRATCH_VA as usize + offset) as *mut u8;
    // SAFETY: the page was just mapped read-write at SCRATCH_VA in init's own space and nothing
    // else uses that window; `target` and the code's length stay inside it; it is unmapped right
    // after.
    unsafe { core::ptr::copy_nonoverlapping(TAIL_CODE.as_ptr(), target, TAIL_CODE.len()) };
    // SAFETY: the window holds only the page mapped above, and no reference into it survives.
    unsafe { unmap(env.own_space, SCRATCH_VA, 1) }.context("unmap the scratch page")?;
    map(
        space.get(),
        frames.get(),
        LAST_PAGE,
        Rights::READ | Rights::EXECUTE,
    )
    .context("map the last page of user space")?;
    let entry = LAST_PAGE + offset as u64;
    // SAFETY: the thread runs in another address space; it cannot touch init's memory.
    let thread = unsafe { thread_create(space.get(), entry, 0, 0) }.context("thread_create")?;
    let thread = owned("thread_create", Ok(thread))?;
    thread_start(thread.get()).context("thread_start")?;
    // The return address is USER_END itself: on x86_64 the kernel refuses to return there and
    // reports the general-protection fault the thread would take; on AArch64 the return happens
    // and fetching there faults (nothing is mapped at USER_END).
    let expected = if cfg!(target_arch = "x86_64") {
        Expected {
            kind: FaultKind::Other,
            address: 0,
            pc: USER_END,
            access: 0,
        }
    } else {
        Expected {
            kind: FaultKind::Page,
            address: USER_END,
            pc: USER_END,
            access: access::EXECUTE,
        }
    };
    expect_killed_by("syscall at the end of user space", thread.get(), &expected)?;
    expect_err(
        "thread_join (syscall at the end of user space)",
        thread_join(thread.get(), Timeout::from_nanos(5_000_000_000)),
        Error::Killed,
    )
}

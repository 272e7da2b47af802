//! `user_fault_kill`: a process that faults without a pager is killed, and the system carries on.
//!
//! Owns the check that each kind of fault (null read, write to read-only text, read of kernel
//! memory, undefined instruction, and a system call in the last bytes of user space, whose return
//! address is the first non-canonical one: the SYSRET hazard on x86_64) ends the faulting process
//! with `Killed` as its join result, and that a fresh process can still do IPC with init
//! afterwards. It must never accept an exit
//! code as success: a helper that survives its fault exits, and that is a failure.

use super::{Context, TestResult, WAIT, expect_eq, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{Error, Rights, Timeout};
use rt::roles::{
    self, ECHO_SERVER, FAULT_KERNEL, FAULT_NULL, FAULT_UNDEFINED, FAULT_WRITE_RO, SHUTDOWN,
};
use rt::syscall::{
    Message, address_space_create, call, cap_delete, endpoint_create, frame_alloc, map, send,
    thread_create, thread_join, thread_start, unmap,
};

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    for role in [FAULT_NULL, FAULT_WRITE_RO, FAULT_KERNEL, FAULT_UNDEFINED] {
        let name = roles::role_name(role);
        let mut victim = spawn_utest(env, role, 0, &[])?;
        victim.start()?;
        match victim.join(WAIT) {
            Err(Error::Killed) => {}
            Ok(code) => fail!("{name}: exited with code {code}, expected to be killed"),
            Err(error) => fail!("thread_join {name}: {error}, expected killed"),
        }
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
const LAST_PAGE: u64 = abi::init::USER_END - 4096;
/// Where init writes that page before mapping it into the victim.
const SCRATCH_VA: u64 = 0x0000_6200_0000_0000;

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
    thread_start(thread).context("thread_start")?;
    let joined = thread_join(thread, Timeout::from_nanos(5_000_000_000));
    let _ = cap_delete(thread);
    match joined {
        Err(Error::Killed) => Ok(()),
        Ok(code) => fail!("syscall at the end of user space: exited with {code}, expected killed"),
        Err(error) => fail!("thread_join (syscall at the end of user space): {error}"),
    }
}

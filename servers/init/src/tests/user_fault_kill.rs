//! `user_fault_kill`: a process that faults without a pager is killed, and the system carries on.
//!
//! Owns the check that each kind of fault (null read, write to read-only text, read of kernel
//! memory, undefined instruction) ends the faulting process with `Killed` as its join result,
//! and that a fresh process can still do IPC with init afterwards. It must never accept an exit
//! code as success: a helper that survives its fault exits, and that is a failure.

use super::{Context, TestResult, WAIT, expect_eq, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{Error, Rights};
use rt::roles::{
    self, ECHO_SERVER, FAULT_KERNEL, FAULT_NULL, FAULT_UNDEFINED, FAULT_WRITE_RO, SHUTDOWN,
};
use rt::syscall::{Message, call, endpoint_create, send};

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

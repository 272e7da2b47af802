//! `fp_state`: every thread keeps its own FP/SIMD registers across context switches.
//!
//! Owns the check that two helpers in different address spaces and init itself, all running
//! [`rt::fpu::torture`] with different seeds and yielding to each other with live vector
//! registers, each see exactly their own values. It must never run the helpers with the same
//! seed (identical values would hide a mix-up).

use super::{TestResult, WAIT, fail};
use crate::Env;
use crate::child::spawn_utest;
use rt::roles::{FP_ITERATIONS, FP_WORKER};

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let mut first = spawn_utest(env, FP_WORKER, 0x1111, &[])?;
    let mut second = spawn_utest(env, FP_WORKER, 0x2222, &[])?;
    first.start()?;
    second.start()?;
    if let Err(mismatch) = rt::fpu::torture(0x3333, FP_ITERATIONS) {
        fail!("init's own registers: {mismatch}");
    }
    first.expect_clean_exit(WAIT)?;
    second.expect_clean_exit(WAIT)
}

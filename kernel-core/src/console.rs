//! The machine-readable console protocol that boot stages and tests speak.
//!
//! Owns the exact text of the lines the test harness (`cargo xtask test`) parses:
//!
//! ```text
//! [stage] NAME ok
//! [stage] NAME FAILED reason
//! [test] NAME ok
//! [test] NAME FAILED reason
//! [test] NAME skipped reason
//! [done] N passed, N failed, N skipped
//! ```
//!
//! A test is `skipped` only when this machine cannot provide what it tests (no ASID/PCID tags,
//! one CPU); the harness accepts a skip only where the scenario allows it.
//!
//! Everything else a boot prints is free-form and ignored by the harness. This module formats
//! into any `fmt::Write`; it must never know which device the text goes to.

use core::fmt::{self, Write};

/// Prints `[stage] NAME ok` or `[stage] NAME FAILED reason`.
pub fn stage(
    out: &mut dyn Write,
    name: &str,
    result: Result<(), &dyn fmt::Display>,
) -> fmt::Result {
    match result {
        Ok(()) => writeln!(out, "[stage] {name} ok"),
        Err(reason) => writeln!(out, "[stage] {name} FAILED {reason}"),
    }
}

/// Prints `[test] NAME ok` or `[test] NAME FAILED reason`.
pub fn test(out: &mut dyn Write, name: &str, result: Result<(), &dyn fmt::Display>) -> fmt::Result {
    match result {
        Ok(()) => writeln!(out, "[test] {name} ok"),
        Err(reason) => writeln!(out, "[test] {name} FAILED {reason}"),
    }
}

/// Prints `[test] NAME skipped reason`: the test could not run on this machine.
pub fn skipped(out: &mut dyn Write, name: &str, reason: &dyn fmt::Display) -> fmt::Result {
    writeln!(out, "[test] {name} skipped {reason}")
}

/// Prints the closing `[done] N passed, N failed, N skipped` line of a test boot.
pub fn done(out: &mut dyn Write, passed: usize, failed: usize, skipped: usize) -> fmt::Result {
    writeln!(
        out,
        "[done] {passed} passed, {failed} failed, {skipped} skipped"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn lines_have_the_exact_protocol_form() {
        let mut out = String::new();
        stage(&mut out, "serial", Ok(())).unwrap();
        stage(&mut out, "frames", Err(&"no usable memory")).unwrap();
        test(&mut out, "heap_alloc", Ok(())).unwrap();
        test(&mut out, "x", Err(&format_args!("got {}", 3))).unwrap();
        skipped(&mut out, "mm_asid_rollover", &"no PCID").unwrap();
        done(&mut out, 2, 1, 1).unwrap();
        assert_eq!(
            out,
            "[stage] serial ok\n[stage] frames FAILED no usable memory\n[test] heap_alloc ok\n\
             [test] x FAILED got 3\n[test] mm_asid_rollover skipped no PCID\n\
             [done] 2 passed, 1 failed, 1 skipped\n"
        );
    }
}

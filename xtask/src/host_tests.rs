//! The host unit tests of the portable kernel, run as one item of `cargo xtask test`.
//!
//! Owns the command (`cargo test` in the workspace root, which tests the default members: every
//! host-buildable crate) and what of its
//! output is shown: nothing when it passes, all of it when it fails.

use crate::workspace;
use std::process::Command;
use std::time::Instant;

/// The label of this item in the test output.
pub const LABEL: &str = "host/unit-tests";

/// Runs the host tests; returns whether they passed and the text to print.
pub fn run() -> (bool, String) {
    eprintln!("running host tests: cargo test (kernel-core, arch/paging, xtask)");
    let start = Instant::now();
    let output = Command::new(workspace::cargo())
        .current_dir(workspace::root())
        .arg("test")
        .output();
    let secs = start.elapsed().as_secs_f64();
    match output {
        Err(e) => (false, format!("FAIL {LABEL}: cannot start cargo: {e}\n")),
        Ok(out) if out.status.success() => {
            let passed = unit_tests_passed(&String::from_utf8_lossy(&out.stdout));
            (
                true,
                format!("PASS {LABEL}: {passed} unit tests ({secs:.1}s)\n"),
            )
        }
        Ok(out) => {
            let mut text = format!("FAIL {LABEL}: cargo test failed ({})\n", out.status);
            for stream in [&out.stdout, &out.stderr] {
                let s = String::from_utf8_lossy(stream);
                for line in s.lines() {
                    text.push_str("  | ");
                    text.push_str(line);
                    text.push('\n');
                }
            }
            (false, text)
        }
    }
}

/// Sums the `N passed` counts of every `test result:` line cargo prints.
fn unit_tests_passed(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_suite() {
        let out = "test result: ok. 58 passed; 0 failed; 0 ignored\n\
                   noise\ntest result: ok. 3 passed; 0 failed;\n";
        assert_eq!(unit_tests_passed(out), 61);
    }
}

//! The host test suites, each run as one item of `cargo xtask test`.
//!
//! Owns the commands (`cargo test` in the workspace root, which tests the default members: every
//! host-buildable crate; then the loom models of kernel-core's lock-free parts) and what of their
//! output is shown: nothing when they pass, all of it when they fail.

use crate::workspace;
use std::process::Command;
use std::time::Instant;

/// One host suite: a label for the output and the cargo command that runs it.
struct Suite {
    label: &'static str,
    args: &'static [&'static str],
    /// Extra environment (the loom models need `--cfg loom` and their own target directory,
    /// so they never force a rebuild of the ordinary host build).
    env: &'static [(&'static str, &'static str)],
}

const SUITES: [Suite; 2] = [
    Suite {
        label: "host/unit-tests",
        args: &["test"],
        env: &[],
    },
    Suite {
        label: "host/loom-models",
        args: &[
            "test",
            "-p",
            "strait-kernel-core",
            "--release",
            "--target-dir",
            "target/loom",
            "--lib",
            // The models of the thread table and of notifications; every other test uses real
            // atomics and must not be built against loom's.
            "loom_tests",
        ],
        env: &[("RUSTFLAGS", "--cfg loom")],
    },
];

/// Runs the host suites (unit tests, then the loom models of the lock-free parts);
/// returns one (passed, text to print) per suite.
pub fn run() -> Vec<(bool, String)> {
    SUITES.iter().map(run_suite).collect()
}

fn run_suite(suite: &Suite) -> (bool, String) {
    let label = suite.label;
    eprintln!("running {label}: cargo {}", suite.args.join(" "));
    let start = Instant::now();
    let output = Command::new(workspace::cargo())
        .current_dir(workspace::root())
        .args(suite.args)
        .envs(suite.env.iter().copied())
        .output();
    let secs = start.elapsed().as_secs_f64();
    match output {
        Err(e) => (false, format!("FAIL {label}: cannot start cargo: {e}\n")),
        Ok(out) if out.status.success() => {
            let passed = unit_tests_passed(&String::from_utf8_lossy(&out.stdout));
            if passed == 0 {
                return (false, format!("FAIL {label}: cargo ran no test\n"));
            }
            (true, format!("PASS {label}: {passed} tests ({secs:.1}s)\n"))
        }
        Ok(out) => {
            let mut text = format!("FAIL {label}: cargo test failed ({})\n", out.status);
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

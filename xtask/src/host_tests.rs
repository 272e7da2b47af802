//! The host test suites, each run as one item of `cargo xtask test`.
//!
//! Owns the commands (`cargo test` in the workspace root, which tests the default members: every
//! host-buildable crate; then the loom models of kernel-core's lock-free parts) and what of their
//! output is shown: cargo's `Compiling ...` lines as they come (the first run builds every host
//! crate), the rest only when they fail.

use crate::workspace;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
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
    let output = run_showing_compiles(
        Command::new(workspace::cargo())
            .current_dir(workspace::root())
            .args(suite.args)
            .envs(suite.env.iter().copied()),
    );
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

/// Runs `cmd` and collects its output like `Command::output`, but echoes cargo's `Compiling ...`
/// lines (stderr) as they come: the first run builds every host crate, which takes a while.
fn run_showing_compiles(cmd: &mut Command) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let echo = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            if is_compile_line(&String::from_utf8_lossy(&line)) {
                eprintln!("  {}", String::from_utf8_lossy(&line).trim());
            }
            all.extend_from_slice(&line);
            all.push(b'\n');
        }
        all
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_end(&mut stdout)?;
    let status = child.wait()?;
    let stderr = echo.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Whether a line of cargo's stderr says a crate is being compiled.
fn is_compile_line(line: &str) -> bool {
    line.trim_start().starts_with("Compiling ")
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
    fn only_compile_lines_are_echoed() {
        assert!(is_compile_line("   Compiling xtask v0.1.0 (/w/xtask)"));
        assert!(!is_compile_line("    Finished `test` profile"));
        assert!(!is_compile_line("     Running unittests src/lib.rs"));
    }

    #[test]
    fn output_is_collected_whole_while_compiles_are_echoed() {
        let out = run_showing_compiles(Command::new("sh").args([
            "-c",
            "echo 'test result: ok. 2 passed;'; echo '   Compiling a v1' >&2; echo oops >&2; exit 3",
        ]))
        .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "test result: ok. 2 passed;\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "   Compiling a v1\noops\n"
        );
    }

    #[test]
    fn sums_every_suite() {
        let out = "test result: ok. 58 passed; 0 failed; 0 ignored\n\
                   noise\ntest result: ok. 3 passed; 0 failed;\n";
        assert_eq!(unit_tests_passed(out), 61);
    }
}

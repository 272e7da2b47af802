//! The in-kernel test runner selected by `test=` on the command line.
//!
//! Owns the order of a test boot: run each selected test, print its `[test]` line, count, and
//! report names that match no test as failures (a typo must never look like a pass). The tests
//! themselves live where the code they exercise lives; this module must never know what they do.

use crate::cmdline::TestSelection;
use crate::console;
use alloc::string::String;
use core::fmt::Write;

/// One in-kernel test. `C` is whatever context the tests need (allocators, platform handles).
pub struct KernelTest<C> {
    /// Name used on the command line and in the `[test]` line.
    pub name: &'static str,
    /// True for tests that end the boot on purpose (a deliberate trap); `test=all` skips them
    /// and they run only when named.
    pub ends_boot: bool,
    /// The test body: `Err` carries the failure reason.
    pub run: fn(&mut C) -> Result<(), String>,
}

impl<C> core::fmt::Debug for KernelTest<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelTest")
            .field("name", &self.name)
            .finish()
    }
}

/// Passed and failed counts of a test boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests that returned `Ok`.
    pub passed: usize,
    /// Tests that returned `Err`, plus selected names that match no test.
    pub failed: usize,
}

impl Summary {
    /// Adds one result.
    pub fn record(&mut self, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// Runs every test `selection` picks, in the order of `tests`, printing one `[test]` line each.
/// A selected name that is neither one of `tests` nor in `run_elsewhere` (tests that user space
/// runs and reports) fails as "no such test". Console write errors are ignored: there is nowhere
/// else to report them.
pub fn run_selected<C>(
    tests: &[KernelTest<C>],
    selection: &TestSelection<'_>,
    run_elsewhere: &[&str],
    context: &mut C,
    out: &mut dyn Write,
) -> Summary {
    let mut summary = Summary::default();
    for name in selection.names() {
        if !tests.iter().any(|t| t.name == name) && !run_elsewhere.contains(&name) {
            let _ = console::test(out, name, Err(&"no such test"));
            summary.record(false);
        }
    }
    for test in tests {
        let chosen = match selection {
            TestSelection::All => !test.ends_boot,
            _ => selection.selects(test.name),
        };
        if !chosen {
            continue;
        }
        let result = (test.run)(context);
        let _ = console::test(
            out,
            test.name,
            result.as_ref().map(|_| ()).map_err(|e| e as _),
        );
        summary.record(result.is_ok());
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use std::string::String;

    fn tests() -> [KernelTest<u32>; 3] {
        [
            KernelTest {
                name: "a",
                ends_boot: false,
                run: |c| {
                    *c += 1;
                    Ok(())
                },
            },
            KernelTest {
                name: "b",
                ends_boot: false,
                run: |_| Err("broken".to_string()),
            },
            KernelTest {
                name: "crash",
                ends_boot: true,
                run: |_| Err("must not run".to_string()),
            },
        ]
    }

    #[test]
    fn all_runs_every_test_except_boot_ending_ones() {
        let (mut out, mut ran) = (String::new(), 0);
        let s = run_selected(&tests(), &TestSelection::All, &[], &mut ran, &mut out);
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 1
            }
        );
        assert_eq!(ran, 1);
        assert_eq!(out, "[test] a ok\n[test] b FAILED broken\n");
    }

    #[test]
    fn unknown_names_fail_and_named_boot_ending_tests_run() {
        let (mut out, mut ran) = (String::new(), 0);
        let s = run_selected(
            &tests(),
            &TestSelection::Named("nope,a,crash,elsewhere"),
            &["elsewhere"],
            &mut ran,
            &mut out,
        );
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 2
            }
        );
        assert_eq!(
            out,
            "[test] nope FAILED no such test\n[test] a ok\n[test] crash FAILED must not run\n"
        );
    }

    #[test]
    fn no_selection_runs_nothing() {
        let (mut out, mut ran) = (String::new(), 0);
        let s = run_selected(&tests(), &TestSelection::None, &[], &mut ran, &mut out);
        assert_eq!(s, Summary::default());
        assert!(out.is_empty());
    }
}

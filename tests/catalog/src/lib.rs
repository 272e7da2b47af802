//! The catalog of Strait's tests: every test a test boot can run, who runs it, and what a
//! `test=` selection means.
//!
//! This is the one definition the kernel, init and the harness (`cargo xtask test`) share, so
//! that a test cannot silently drop out: the kernel's and init's tables are checked against it
//! when they are compiled (same names, same order), the kernel accepts a user report only for a
//! test listed here as init's and selected, and the harness expects exactly the tests listed
//! here for a scenario's command line, no more, no fewer. Adding a test means adding it here and
//! to its runner's table in the same change; the build fails otherwise.
//!
//! It owns names, runners and selection rules only. It must never hold a test's behaviour or
//! depend on anything: a `no_std` user program, the kernel and the host all build it.
#![no_std]

#[cfg(test)]
extern crate std;

/// Who runs a test and reports its `[test]` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The kernel, before init starts (`boot/src/selftests.rs`).
    Kernel,
    /// The init process, through the `TestReport` system call (`servers/init/src/tests`).
    Init,
    /// The kernel, after init has ended: whole-boot checks that run in every test boot that
    /// reaches init, whatever the selection (they judge what the selected tests left behind).
    KernelAfterInit,
}

/// One test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestSpec {
    /// The name in `test=` and in the `[test]` line (`[a-z0-9_]`, at most 64 bytes).
    pub name: &'static str,
    /// Who runs it.
    pub runner: Runner,
    /// True for tests that end the boot on purpose (a deliberate trap or panic): `test=all`
    /// leaves them out; they run only when named.
    pub ends_boot: bool,
}

const fn kernel(name: &'static str) -> TestSpec {
    TestSpec {
        name,
        runner: Runner::Kernel,
        ends_boot: false,
    }
}

const fn kernel_ending_boot(name: &'static str) -> TestSpec {
    TestSpec {
        name,
        runner: Runner::Kernel,
        ends_boot: true,
    }
}

const fn init(name: &'static str) -> TestSpec {
    TestSpec {
        name,
        runner: Runner::Init,
        ends_boot: false,
    }
}

const fn after_init(name: &'static str) -> TestSpec {
    TestSpec {
        name,
        runner: Runner::KernelAfterInit,
        ends_boot: false,
    }
}

/// Every test, grouped by runner, each group in the order its runner runs it.
pub const TESTS: &[TestSpec] = &[
    kernel("frames_alloc_free"),
    kernel("frames_exhaust"),
    kernel("heap_alloc"),
    kernel("heap_realloc_no_leak"),
    kernel("backtrace_walk"),
    kernel("mm_wx"),
    kernel("mm_two_spaces"),
    kernel("mm_teardown_leak"),
    kernel("mm_error_paths"),
    kernel("mm_asid_rollover"),
    kernel("kthread_join"),
    kernel("sched_fairness"),
    kernel("sleep_accuracy"),
    kernel("log_from_irq"),
    kernel("lock_diagnostics"),
    kernel("watchdog_stall"),
    kernel("user_access_closed_in_traps"),
    kernel_ending_boot("mm_guard_page"),
    kernel_ending_boot("mm_user_access"),
    kernel_ending_boot("fault_unmapped"),
    kernel_ending_boot("fault_undefined"),
    kernel_ending_boot("panic"),
    init("ipc_pingpong"),
    init("ipc_cap_transfer"),
    init("cap_errors"),
    init("notify"),
    init("ipc_timeout"),
    init("user_fault_pager"),
    init("user_fault_kill"),
    init("syscall_bad_args"),
    init("fp_state"),
    init("ipc_kill"),
    init("thread_exit_codes"),
    init("ipc_many_clients"),
    init("ipc_cap_return"),
    init("thread_slot_dos"),
    init("usercopy_demand_fault"),
    init("exception_forwarding"),
    init("space_kill_all"),
    after_init("user_resources"),
    after_init("init_exit"),
];

/// Most bytes of a test name.
pub const NAME_MAX: usize = 64;

/// The tests of one runner, in its order.
pub fn of(runner: Runner) -> impl Iterator<Item = &'static TestSpec> {
    TESTS.iter().filter(move |t| t.runner == runner)
}

/// The test called `name`.
pub fn find(name: &str) -> Option<&'static TestSpec> {
    TESTS.iter().find(|t| t.name == name)
}

/// True when `names` are exactly the names of `runner`'s tests, in catalog order. `const`, so a
/// runner's table can be checked when it is compiled:
/// `const { assert!(test_catalog::matches(Runner::Init, &NAMES)) }`.
pub const fn matches(runner: Runner, names: &[&str]) -> bool {
    let mut t = 0;
    let mut n = 0;
    while t < TESTS.len() {
        if same_runner(TESTS[t].runner, runner) {
            if n >= names.len() || !str_eq(TESTS[t].name, names[n]) {
                return false;
            }
            n += 1;
        }
        t += 1;
    }
    n == names.len()
}

const fn same_runner(a: Runner, b: Runner) -> bool {
    a as u8 == b as u8
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The command-line word by which the harness says guest time counts instructions (QEMU
/// `-icount` with a fixed shift): timing bounds in tests are then exact and repeatable, and a
/// test may assert them. Without it, tests check correctness and never time.
pub const EXACT_CLOCK_WORD: &str = "clock=icount";

/// Whether `cmdline` carries [`EXACT_CLOCK_WORD`].
pub fn exact_clock(cmdline: &str) -> bool {
    cmdline
        .split_ascii_whitespace()
        .any(|w| w == EXACT_CLOCK_WORD)
}

/// Which tests a boot runs: the `test=` option of the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    /// No `test=` option: a normal boot, no tests.
    None,
    /// `test=all`: every test that does not end the boot.
    All,
    /// `test=a,b,c`: the comma-separated names, verbatim (empty names are skipped by
    /// [`Selection::names`]).
    Named(&'a str),
}

impl<'a> Selection<'a> {
    /// The selection a command line makes: its last valid `test=` word. A word is valid when
    /// every byte is printable ASCII (`!`..=`~`) and its value is `all` or names at least one
    /// test; any other word leaves the selection as it was. This is the rule of the kernel's
    /// command-line parser, which uses [`Selection::from_word`]; init and the harness read
    /// their selection with this function so all three agree.
    pub fn from_cmdline(line: &'a str) -> Selection<'a> {
        line.split_ascii_whitespace()
            .filter_map(Selection::from_word)
            .next_back()
            .unwrap_or(Selection::None)
    }

    /// The selection one command-line word makes, if it is a valid `test=` word.
    pub fn from_word(word: &'a str) -> Option<Selection<'a>> {
        if !word.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        match word.strip_prefix("test=")? {
            "all" => Some(Selection::All),
            list if Selection::Named(list).names().next().is_some() => Some(Selection::Named(list)),
            _ => None,
        }
    }

    /// True for a test boot (any valid `test=`).
    pub fn is_test_boot(&self) -> bool {
        *self != Selection::None
    }

    /// The names listed in a `Named` selection, in order, without empty entries.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + 'a {
        let list = match *self {
            Selection::Named(list) => list,
            _ => "",
        };
        list.split(',').filter(|n| !n.is_empty())
    }

    /// True when the selection names `name` (or is `all`): the raw match, before the catalog's
    /// rules.
    pub fn names_test(&self, name: &str) -> bool {
        match self {
            Selection::None => false,
            Selection::All => true,
            Selection::Named(_) => self.names().any(|n| n == name),
        }
    }

    /// True when this boot runs `test`: `all` runs every test that does not end the boot, a
    /// list runs the tests it names, and every test boot runs the after-init checks.
    pub fn runs(&self, test: &TestSpec) -> bool {
        match (self, test.runner) {
            (Selection::None, _) => false,
            (_, Runner::KernelAfterInit) => true,
            (Selection::All, _) => !test.ends_boot,
            (Selection::Named(_), _) => self.names_test(test.name),
        }
    }

    /// The names this selection lists that are no test of the catalog (each fails the boot as
    /// "no such test").
    pub fn unknown(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.names().filter(|n| find(n).is_none())
    }

    /// The tests this boot runs, in catalog order.
    pub fn tests(self) -> impl Iterator<Item = &'static TestSpec> + 'a {
        TESTS.iter().filter(move |t| self.runs(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn names_are_unique_and_well_formed() {
        for (i, t) in TESTS.iter().enumerate() {
            assert!(!t.name.is_empty() && t.name.len() <= NAME_MAX, "{}", t.name);
            assert!(
                t.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                t.name
            );
            assert!(
                TESTS[..i].iter().all(|o| o.name != t.name),
                "{} twice",
                t.name
            );
            assert!(!(t.ends_boot && t.runner != Runner::Kernel), "{}", t.name);
        }
    }

    #[test]
    fn runners_are_grouped_in_run_order() {
        let runners: Vec<Runner> = TESTS.iter().map(|t| t.runner).collect();
        let first_init = runners.iter().position(|&r| r == Runner::Init).unwrap();
        let first_after = runners
            .iter()
            .position(|&r| r == Runner::KernelAfterInit)
            .unwrap();
        assert!(runners[..first_init].iter().all(|&r| r == Runner::Kernel));
        assert!(
            runners[first_init..first_after]
                .iter()
                .all(|&r| r == Runner::Init)
        );
        assert!(
            runners[first_after..]
                .iter()
                .all(|&r| r == Runner::KernelAfterInit)
        );
    }

    #[test]
    fn matches_needs_the_same_names_in_the_same_order() {
        let init: Vec<&str> = of(Runner::Init).map(|t| t.name).collect();
        assert!(matches(Runner::Init, &init));
        let mut swapped = init.clone();
        swapped.swap(0, 1);
        assert!(!matches(Runner::Init, &swapped));
        assert!(!matches(Runner::Init, &init[1..]));
        let mut extra = init.clone();
        extra.push("extra");
        assert!(!matches(Runner::Init, &extra));
        assert!(!matches(Runner::Kernel, &init));
    }

    #[test]
    fn selection_from_the_command_line() {
        assert_eq!(Selection::from_cmdline(""), Selection::None);
        assert_eq!(Selection::from_cmdline("quiet"), Selection::None);
        assert_eq!(Selection::from_cmdline("test=all"), Selection::All);
        assert_eq!(
            Selection::from_cmdline("test=a test=b,c"),
            Selection::Named("b,c")
        );
        // Invalid words leave the selection as it was.
        assert_eq!(
            Selection::from_cmdline("test=all test= test=,,"),
            Selection::All
        );
        assert_eq!(
            Selection::from_cmdline("test=a test=\u{7f}b"),
            Selection::Named("a")
        );
        // `all` is special only as the whole value.
        assert_eq!(
            Selection::from_cmdline("test=all,x"),
            Selection::Named("all,x")
        );
    }

    #[test]
    fn all_runs_everything_but_boot_ending_tests() {
        let ran: Vec<&str> = Selection::All.tests().map(|t| t.name).collect();
        assert!(ran.contains(&"frames_alloc_free"));
        assert!(ran.contains(&"ipc_pingpong"));
        assert!(ran.contains(&"user_resources"));
        assert!(!ran.contains(&"panic"));
        assert_eq!(ran.len(), TESTS.iter().filter(|t| !t.ends_boot).count());
    }

    #[test]
    fn a_list_runs_what_it_names_plus_the_after_init_checks() {
        let selection = Selection::Named("panic,notify,nope,,heap_alloc");
        let ran: Vec<&str> = selection.tests().map(|t| t.name).collect();
        assert_eq!(
            ran,
            [
                "heap_alloc",
                "panic",
                "notify",
                "user_resources",
                "init_exit"
            ]
        );
        assert_eq!(selection.unknown().collect::<Vec<_>>(), ["nope"]);
        assert_eq!(Selection::None.tests().count(), 0);
    }
}

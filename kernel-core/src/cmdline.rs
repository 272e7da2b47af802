//! The kernel command line: `key=value` words separated by spaces.
//!
//! Owns the meaning of each option. Parsing never fails: an unknown or malformed word is kept in
//! [`Cmdline::rejected`] so that boot can say what it ignored. Must never allocate.

use arrayvec::ArrayVec;

/// How many rejected words are remembered for the report.
pub const MAX_REJECTED: usize = 8;

/// Which tests a boot runs (`test=`): the test catalog's selection, so that the kernel, init
/// and the harness read a command line the same way.
pub use test_catalog::Selection as TestSelection;

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Cmdline<'a> {
    /// The `test=` option (the last one wins when repeated).
    pub tests: TestSelection<'a>,
    /// Words that are not a known `key=value` option, in order of appearance.
    pub rejected: ArrayVec<&'a str, MAX_REJECTED>,
    /// True when more words were rejected than [`MAX_REJECTED`].
    pub rejected_overflow: bool,
    /// The word `bench`: a benchmark boot (init runs the benchmarks; `cargo xtask bench`).
    pub bench: bool,
    /// `clock=icount`: the harness boots this machine with an instruction-count clock (QEMU
    /// `-icount` with a fixed shift), so guest time is a function of the instructions executed
    /// and timing bounds in tests are exact and repeatable. Without it, tests check correctness
    /// but never time.
    pub exact_clock: bool,
    /// `init=NAME`: the initrd entry to start as the first process instead of `init` (the boot
    /// tests use it to start deliberately corrupt executables).
    pub init: Option<&'a str>,
}

impl<'a> Cmdline<'a> {
    /// Parses `line`. Words are separated by ASCII whitespace. Known options: `test=all`,
    /// `test=NAME[,NAME...]`. `test=` with an empty value is rejected. Everything else
    /// (unknown keys, words without `=`, non-printable garbage) lands in `rejected`.
    ///
    /// Details: a word with any byte outside printable ASCII (`!`..=`~`) is garbage and rejected
    /// whole, even when it starts with `test=`. Keys are case-sensitive. `all` is special only as
    /// the whole value (`test=all,x` names a test called `all`). A `test=` value that names no
    /// test at all (empty, or only commas) is rejected. A rejected word never changes the
    /// selection: `test=a test=` selects `a`.
    pub fn parse(line: &'a str) -> Self {
        let mut cmdline = Cmdline {
            tests: TestSelection::None,
            rejected: ArrayVec::new(),
            rejected_overflow: false,
            bench: false,
            exact_clock: false,
            init: None,
        };
        for word in line.split_ascii_whitespace() {
            if !cmdline.apply(word) && cmdline.rejected.try_push(word).is_err() {
                cmdline.rejected_overflow = true;
            }
        }
        cmdline
    }

    /// Applies one known option; false when `word` is not one.
    fn apply(&mut self, word: &'a str) -> bool {
        // Screened first so that a control character or a stray UTF-8 sequence can never become
        // part of a test name echoed back on the console protocol.
        if !word.bytes().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        if word == "bench" {
            self.bench = true;
            return true;
        }
        if let Some(selection) = TestSelection::from_word(word) {
            self.tests = selection;
            return true;
        }
        if word == test_catalog::EXACT_CLOCK_WORD {
            self.exact_clock = true;
            return true;
        }
        let Some((key, value)) = word.split_once('=') else {
            return false;
        };
        match (key, value) {
            ("init", name) if !name.is_empty() && name.len() <= 64 => self.init = Some(name),
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn clock_icount_marks_an_exact_clock() {
        let cmdline = Cmdline::parse("test=all clock=icount");
        assert!(cmdline.exact_clock);
        assert!(cmdline.rejected.is_empty());
        assert!(!Cmdline::parse("test=all").exact_clock);
        let other = Cmdline::parse("clock=host");
        assert!(!other.exact_clock);
        assert_eq!(other.rejected.as_slice(), ["clock=host"]);
    }

    #[test]
    fn bench_is_a_known_word() {
        let cmdline = Cmdline::parse("bench test=all");
        assert!(cmdline.bench);
        assert_eq!(cmdline.tests, TestSelection::All);
        assert!(cmdline.rejected.is_empty());
        assert!(!Cmdline::parse("benchmark").bench);
        assert!(!Cmdline::parse("bench=1").bench);
    }

    #[test]
    fn init_names_the_first_program() {
        assert_eq!(
            Cmdline::parse("init=bad_init test=all").init,
            Some("bad_init")
        );
        assert_eq!(Cmdline::parse("test=all").init, None);
        let empty = Cmdline::parse("init=");
        assert_eq!(empty.init, None);
        assert_eq!(rejected(&empty), ["init="]);
    }

    fn rejected<'a>(cmdline: &Cmdline<'a>) -> Vec<&'a str> {
        cmdline.rejected.iter().copied().collect()
    }

    fn names<'a>(selection: TestSelection<'a>) -> Vec<&'a str> {
        selection.names().collect()
    }

    #[test]
    fn empty_and_blank_lines_are_a_normal_boot() {
        for line in ["", " ", "\t\t", " \n\r\x0c "] {
            let cmdline = Cmdline::parse(line);
            assert_eq!(cmdline.tests, TestSelection::None);
            assert!(cmdline.rejected.is_empty());
            assert!(!cmdline.rejected_overflow);
        }
    }

    #[test]
    fn test_all_and_named_lists() {
        assert_eq!(Cmdline::parse("test=all").tests, TestSelection::All);
        let cmdline = Cmdline::parse("test=alloc,ipc");
        assert_eq!(cmdline.tests, TestSelection::Named("alloc,ipc"));
        assert_eq!(names(cmdline.tests), ["alloc", "ipc"]);
        assert!(cmdline.tests.names_test("ipc") && !cmdline.tests.names_test("all"));
        // Empty names inside a list are skipped, not rejected.
        let cmdline = Cmdline::parse("test=,a,,b,");
        assert_eq!(names(cmdline.tests), ["a", "b"]);
        assert!(cmdline.rejected.is_empty());
        // `all` is special only on its own.
        let cmdline = Cmdline::parse("test=all,x");
        assert_eq!(cmdline.tests, TestSelection::Named("all,x"));
        assert!(!cmdline.tests.names_test("y"));
    }

    #[test]
    fn separators_are_any_run_of_ascii_whitespace() {
        let cmdline = Cmdline::parse("  \t quiet \t\t test=a \n\r  x=1\t");
        assert_eq!(cmdline.tests, TestSelection::Named("a"));
        assert_eq!(rejected(&cmdline), ["quiet", "x=1"]);
    }

    #[test]
    fn an_empty_selection_is_rejected() {
        for word in ["test=", "test=,", "test=,,,"] {
            let cmdline = Cmdline::parse(word);
            assert_eq!(cmdline.tests, TestSelection::None, "{word}");
            assert_eq!(rejected(&cmdline), [word]);
        }
    }

    #[test]
    fn the_last_test_option_wins() {
        assert_eq!(Cmdline::parse("test=a test=all").tests, TestSelection::All);
        assert_eq!(
            Cmdline::parse("test=all test=b").tests,
            TestSelection::Named("b")
        );
        // A rejected `test=` does not undo an earlier valid one.
        let cmdline = Cmdline::parse("test=a test= test=\x01");
        assert_eq!(cmdline.tests, TestSelection::Named("a"));
        assert_eq!(rejected(&cmdline), ["test=", "test=\x01"]);
    }

    #[test]
    fn unknown_and_malformed_words_are_rejected_in_order() {
        let cmdline = Cmdline::parse("console=ttyS0 nosmp =x test TEST=all tests=all = test=all");
        assert_eq!(cmdline.tests, TestSelection::All);
        assert_eq!(
            rejected(&cmdline),
            [
                "console=ttyS0",
                "nosmp",
                "=x",
                "test",
                "TEST=all",
                "tests=all",
                "="
            ]
        );
        assert!(!cmdline.rejected_overflow);
    }

    #[test]
    fn garbage_is_rejected_whole() {
        let line = "test=all \x01\x02 test=a\x7fb caf\u{e9} test=\u{e9} a\u{a0}b x\x0by \x00";
        let cmdline = Cmdline::parse(line);
        assert_eq!(cmdline.tests, TestSelection::All);
        assert_eq!(
            rejected(&cmdline),
            [
                "\x01\x02",
                "test=a\x7fb",
                "caf\u{e9}",
                "test=\u{e9}",
                // Neither U+00A0 nor vertical tab is an ASCII word separator.
                "a\u{a0}b",
                "x\x0by",
                "\x00"
            ]
        );
    }

    #[test]
    fn rejected_words_overflow_is_flagged() {
        let line = "a b c d e f g h";
        let cmdline = Cmdline::parse(line);
        assert_eq!(cmdline.rejected.len(), MAX_REJECTED);
        assert!(!cmdline.rejected_overflow);

        let cmdline = Cmdline::parse("a b c d e f g h i test=all j");
        assert_eq!(rejected(&cmdline), ["a", "b", "c", "d", "e", "f", "g", "h"]);
        assert!(cmdline.rejected_overflow);
        assert_eq!(cmdline.tests, TestSelection::All);
    }

    #[test]
    fn random_lines_never_panic() {
        // Deterministic xorshift64 so failures reproduce.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = [
            't',
            'e',
            's',
            '=',
            ',',
            'a',
            'l',
            ' ',
            '\t',
            '\n',
            '\x00',
            '\x7f',
            '\u{e9}',
            '\u{3000}',
            '\u{1f600}',
        ];
        for _ in 0..5000 {
            let len = next() % 40;
            let line: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let cmdline = Cmdline::parse(&line);
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            for word in &cmdline.rejected {
                assert!(words.contains(word));
            }
            if let TestSelection::Named(list) = cmdline.tests {
                assert!(list.bytes().all(|b| b.is_ascii_graphic()));
                assert!(cmdline.tests.names().next().is_some());
            }
            let accepted = words
                .iter()
                .filter(|w| {
                    w.strip_prefix("test=").is_some_and(|v| {
                        v.bytes().all(|b| b.is_ascii_graphic())
                            && v.split(',').any(|n| !n.is_empty())
                    })
                })
                .count();
            let rejected = words.len() - accepted;
            assert_eq!(cmdline.rejected.len(), rejected.min(MAX_REJECTED));
            assert_eq!(cmdline.rejected_overflow, rejected > MAX_REJECTED);
        }
    }
}

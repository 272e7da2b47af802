//! Parsing the kernel's machine-readable console protocol out of a serial log.
//!
//! Owns the exact line forms (kernel-core/src/console.rs and trap_report.rs print them):
//!
//! ```text
//! [stage] NAME ok | [stage] NAME FAILED reason
//! [test] NAME ok  | [test] NAME FAILED reason | [test] NAME skipped reason
//! [done] N passed, N failed, N skipped
//! [trap] KIND at pc=0xHEX [addr=0xHEX] (DETAIL)
//! [panic] MESSAGE
//! [backtrace] #N 0xHEX | [backtrace] end
//! ```
//!
//! Every other line is free-form, except that free-form lines right after a `[panic]` line
//! continue its message (Rust's `PanicInfo` prints `panicked at FILE:LINE:COL:` and the message
//! on the next line). A line that starts with a protocol tag but does not have its form is kept
//! as [`Line::Malformed`], so a verdict can refuse it rather than miss it.

/// One parsed console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `[stage] NAME ok` (`result` Ok) or `[stage] NAME FAILED reason`.
    Stage {
        /// Stage name.
        name: String,
        /// `Err(reason)` for a failed stage.
        result: Result<(), String>,
    },
    /// `[test] NAME ok`, `[test] NAME FAILED reason` or `[test] NAME skipped reason`.
    Test {
        /// Test name.
        name: String,
        /// How it ended.
        outcome: TestOutcome,
    },
    /// `[done] N passed, N failed, N skipped`.
    Done(DoneCounts),
    /// `[trap] KIND at pc=0xHEX [addr=0xHEX] (DETAIL)`.
    Trap {
        /// Trap class, e.g. `page fault`.
        kind: String,
        /// Faulting instruction.
        pc: u64,
        /// Faulting data address, when the trap has one.
        addr: Option<u64>,
        /// Architecture detail (without the parentheses).
        detail: String,
    },
    /// `[panic] MESSAGE`.
    Panic {
        /// The panic message, with its continuation lines joined by spaces.
        message: String,
    },
    /// A free-form line that continues the message of the `[panic]` line before it.
    PanicContinuation,
    /// `[backtrace] #N 0xHEX`.
    Frame {
        /// Frame depth.
        depth: u32,
        /// Return address (the pc of a call's next instruction).
        addr: u64,
    },
    /// `[backtrace] end`.
    BacktraceEnd,
    /// A line with a protocol tag that does not have the protocol's form.
    Malformed(String),
    /// Anything else.
    Other,
}

/// How a `[test]` line says its test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// `ok`.
    Passed,
    /// `FAILED reason`.
    Failed(String),
    /// `skipped reason`: the machine cannot run it.
    Skipped(String),
}

/// The counts of a `[done]` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneCounts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests that were skipped.
    pub skipped: u64,
}

/// Parses one line (a trailing `\r` or `\n` is ignored).
pub fn parse_line(raw: &str) -> Line {
    let line = raw.trim_end_matches(['\r', '\n']);
    let parsed = if let Some(rest) = line.strip_prefix("[stage] ") {
        parse_result(rest).map(|(name, result)| Line::Stage { name, result })
    } else if let Some(rest) = line.strip_prefix("[test] ") {
        parse_test(rest)
    } else if let Some(rest) = line.strip_prefix("[done] ") {
        parse_done(rest)
    } else if let Some(rest) = line.strip_prefix("[trap] ") {
        parse_trap(rest)
    } else if let Some(message) = line.strip_prefix("[panic] ") {
        Some(Line::Panic {
            message: message.to_owned(),
        })
    } else if let Some(rest) = line.strip_prefix("[backtrace] ") {
        parse_frame(rest)
    } else if [
        "[stage]",
        "[test]",
        "[done]",
        "[trap]",
        "[panic]",
        "[backtrace]",
    ]
    .iter()
    .any(|tag| line.starts_with(tag))
    {
        None
    } else {
        Some(Line::Other)
    };
    parsed.unwrap_or_else(|| Line::Malformed(line.to_owned()))
}

/// `NAME ok` or `NAME FAILED reason`.
fn parse_result(rest: &str) -> Option<(String, Result<(), String>)> {
    let (name, verdict) = rest.split_once(' ')?;
    if name.is_empty() {
        return None;
    }
    let result = if verdict == "ok" {
        Ok(())
    } else if verdict == "FAILED" {
        Err(String::new())
    } else {
        Err(verdict.strip_prefix("FAILED ")?.to_owned())
    };
    Some((name.to_owned(), result))
}

/// `NAME ok`, `NAME FAILED reason` or `NAME skipped reason` (a skip needs its reason).
fn parse_test(rest: &str) -> Option<Line> {
    let (name, outcome) = match rest.split_once(' ') {
        Some((name, verdict)) if verdict.starts_with("skipped") => {
            let reason = verdict.strip_prefix("skipped ")?;
            if reason.trim().is_empty() {
                return None;
            }
            (name.to_owned(), TestOutcome::Skipped(reason.to_owned()))
        }
        _ => match parse_result(rest)? {
            (name, Ok(())) => (name, TestOutcome::Passed),
            (name, Err(reason)) => (name, TestOutcome::Failed(reason)),
        },
    };
    if name.is_empty() {
        return None;
    }
    Some(Line::Test { name, outcome })
}

/// `N passed, N failed, N skipped`.
fn parse_done(rest: &str) -> Option<Line> {
    let mut parts = rest.split(", ");
    let mut count = |suffix: &str| parts.next()?.strip_suffix(suffix)?.parse().ok();
    let counts = DoneCounts {
        passed: count(" passed")?,
        failed: count(" failed")?,
        skipped: count(" skipped")?,
    };
    parts.next().is_none().then_some(Line::Done(counts))
}

/// `KIND at pc=0xHEX [addr=0xHEX] (DETAIL)`.
fn parse_trap(rest: &str) -> Option<Line> {
    let (kind, rest) = rest.split_once(" at pc=")?;
    let (pc, mut rest) = take_hex(rest)?;
    let mut addr = None;
    if let Some(after) = rest.strip_prefix(" addr=") {
        let (a, r) = take_hex(after)?;
        addr = Some(a);
        rest = r;
    }
    let detail = if rest.is_empty() {
        String::new()
    } else {
        rest.strip_prefix(" (")?.strip_suffix(')')?.to_owned()
    };
    Some(Line::Trap {
        kind: kind.to_owned(),
        pc,
        addr,
        detail,
    })
}

/// `#N 0xHEX` or `end`.
fn parse_frame(rest: &str) -> Option<Line> {
    if rest == "end" {
        return Some(Line::BacktraceEnd);
    }
    let (depth, addr) = rest.strip_prefix('#')?.split_once(' ')?;
    let (addr, tail) = take_hex(addr)?;
    if !tail.is_empty() && !tail.starts_with(' ') {
        return None;
    }
    Some(Line::Frame {
        depth: depth.parse().ok()?,
        addr,
    })
}

/// Splits `0xHEX...` into the value and the rest of the text.
pub fn take_hex(text: &str) -> Option<(u64, &str)> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    let end = digits
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    let value = u64::from_str_radix(&digits[..end], 16).ok()?;
    Some((value, &digits[end..]))
}

/// A whole serial log, parsed.
#[derive(Debug, Clone, Default)]
pub struct ConsoleLog {
    /// The raw text, as read.
    pub text: String,
    /// Each line of `text`, parsed, in order.
    pub lines: Vec<Line>,
}

impl ConsoleLog {
    /// Parses every line of `text`, folding panic continuation lines into their `[panic]`.
    pub fn parse(text: &str) -> ConsoleLog {
        let mut lines: Vec<Line> = Vec::new();
        let mut panic_at = None;
        for raw in text.lines() {
            let line = parse_line(raw);
            let continued = match (&line, panic_at) {
                (Line::Other, Some(i)) if !raw.trim().is_empty() => Some(i),
                _ => None,
            };
            if let Some(i) = continued {
                if let Some(Line::Panic { message }) = lines.get_mut(i) {
                    message.push(' ');
                    message.push_str(raw.trim());
                }
                lines.push(Line::PanicContinuation);
                continue;
            }
            panic_at = match line {
                Line::Panic { .. } => Some(lines.len()),
                _ => None,
            };
            lines.push(line);
        }
        ConsoleLog {
            text: text.to_owned(),
            lines,
        }
    }

    /// Each raw line (without `\r`) with its parsed form.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Line)> {
        self.text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .zip(&self.lines)
    }

    /// True when the guest printed nothing but whitespace.
    pub fn is_silent(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// `[stage]` lines, in order: `(name, result)`.
    pub fn stages(&self) -> impl Iterator<Item = (&str, &Result<(), String>)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Stage { name, result } => Some((name.as_str(), result)),
            _ => None,
        })
    }

    /// `[test]` lines, in order: `(name, outcome)`.
    pub fn tests(&self) -> impl Iterator<Item = (&str, &TestOutcome)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Test { name, outcome } => Some((name.as_str(), outcome)),
            _ => None,
        })
    }

    /// `(passed, failed)` of every `[done]` line.
    pub fn done(&self) -> Vec<(u64, u64)> {
        self.done_counts()
            .into_iter()
            .map(|d| (d.passed, d.failed))
            .collect()
    }

    /// The counts of every `[done]` line.
    pub fn done_counts(&self) -> Vec<DoneCounts> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                Line::Done(counts) => Some(*counts),
                _ => None,
            })
            .collect()
    }

    /// `[trap]` and `[panic]` lines.
    pub fn reports(&self) -> impl Iterator<Item = &Line> {
        self.lines
            .iter()
            .filter(|l| matches!(l, Line::Trap { .. } | Line::Panic { .. }))
    }

    /// Lines that carry a protocol tag but not the protocol's form.
    pub fn malformed(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Malformed(text) => Some(text.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_and_test_lines() {
        assert_eq!(
            parse_line("[stage] serial ok\r"),
            Line::Stage {
                name: "serial".into(),
                result: Ok(())
            }
        );
        assert_eq!(
            parse_line("[stage] frames FAILED no usable memory"),
            Line::Stage {
                name: "frames".into(),
                result: Err("no usable memory".into())
            }
        );
        assert_eq!(
            parse_line("[test] heap_alloc FAILED got 3, want 4"),
            Line::Test {
                name: "heap_alloc".into(),
                outcome: TestOutcome::Failed("got 3, want 4".into())
            }
        );
        assert_eq!(
            parse_line("[test] x FAILED"),
            Line::Test {
                name: "x".into(),
                outcome: TestOutcome::Failed(String::new())
            }
        );
        assert_eq!(
            parse_line("[test] x ok"),
            Line::Test {
                name: "x".into(),
                outcome: TestOutcome::Passed
            }
        );
        assert_eq!(
            parse_line("[test] mm_asid_rollover skipped no PCID\r"),
            Line::Test {
                name: "mm_asid_rollover".into(),
                outcome: TestOutcome::Skipped("no PCID".into())
            }
        );
        // A skip must say why; anything else after the name is not the protocol.
        for bad in [
            "[test] x skipped",
            "[test] x skipped ",
            "[test] x maybe",
            "[test]  ok",
        ] {
            assert!(matches!(parse_line(bad), Line::Malformed(_)), "{bad}");
        }
    }

    #[test]
    fn done_line() {
        assert_eq!(
            parse_line("[done] 12 passed, 0 failed, 2 skipped\r"),
            Line::Done(DoneCounts {
                passed: 12,
                failed: 0,
                skipped: 2
            })
        );
        for bad in [
            "[done] 12 passed",
            "[done] 12 passed, 0 failed",
            "[done] 12 passed, 0 failed, 1 skipped, 3 more",
        ] {
            assert!(matches!(parse_line(bad), Line::Malformed(_)), "{bad}");
        }
    }

    #[test]
    fn trap_lines_with_and_without_address() {
        assert_eq!(
            parse_line(
                "[trap] page fault at pc=0xffffffff80100000 addr=0xdead0000 (vector 14, error 0x0)"
            ),
            Line::Trap {
                kind: "page fault".into(),
                pc: 0xffff_ffff_8010_0000,
                addr: Some(0xdead_0000),
                detail: "vector 14, error 0x0".into()
            }
        );
        assert_eq!(
            parse_line("[trap] undefined instruction at pc=0x10 (ESR 0x2000000 (EC 0x0))\r"),
            Line::Trap {
                kind: "undefined instruction".into(),
                pc: 0x10,
                addr: None,
                detail: "ESR 0x2000000 (EC 0x0)".into()
            }
        );
    }

    #[test]
    fn backtrace_and_panic_lines() {
        assert_eq!(
            parse_line("[backtrace] #3 0xffff000040081234"),
            Line::Frame {
                depth: 3,
                addr: 0xffff_0000_4008_1234
            }
        );
        assert_eq!(parse_line("[backtrace] end\r"), Line::BacktraceEnd);
        assert_eq!(
            parse_line("[panic] deliberate panic at kernel-core/src/x.rs:3:5"),
            Line::Panic {
                message: "deliberate panic at kernel-core/src/x.rs:3:5".into()
            }
        );
    }

    #[test]
    fn free_form_and_malformed_lines() {
        assert_eq!(parse_line("[bootinfo] 3 ranges"), Line::Other);
        assert_eq!(parse_line("[cmdline] ignored 'foo'"), Line::Other);
        assert_eq!(parse_line(""), Line::Other);
        assert!(matches!(parse_line("[stage] serial"), Line::Malformed(_)));
        assert!(matches!(
            parse_line("[stage] serial maybe"),
            Line::Malformed(_)
        ));
        assert!(matches!(
            parse_line("[trap] page fault"),
            Line::Malformed(_)
        ));
        assert!(matches!(
            parse_line("[backtrace] #x 0x1"),
            Line::Malformed(_)
        ));
    }

    #[test]
    fn panic_messages_continue_on_free_form_lines() {
        let log = ConsoleLog::parse(
            "[panic] panicked at boot/src/selftests.rs:257:5:\r\ndeliberate panic requested\r\n\
             [backtrace] #0 0x10\r\nnot part of it\n",
        );
        assert_eq!(
            log.lines,
            [
                Line::Panic {
                    message: "panicked at boot/src/selftests.rs:257:5: deliberate panic requested"
                        .into()
                },
                Line::PanicContinuation,
                Line::Frame {
                    depth: 0,
                    addr: 0x10
                },
                Line::Other,
            ]
        );
        let (raw, line) = log.entries().nth(1).unwrap();
        assert_eq!(
            (raw, line),
            ("deliberate panic requested", &Line::PanicContinuation)
        );
    }

    #[test]
    fn log_views() {
        let log = ConsoleLog::parse(
            "junk\r\n[stage] serial ok\r\n[test] a ok\n[test] b FAILED no\n\
             [done] 1 passed, 1 failed, 0 skipped\n",
        );
        assert!(!log.is_silent());
        assert_eq!(log.stages().count(), 1);
        assert_eq!(
            log.tests()
                .filter(|(_, r)| **r == TestOutcome::Passed)
                .count(),
            1
        );
        assert_eq!(log.done(), [(1, 1)]);
        assert!(ConsoleLog::parse(" \n\r\n").is_silent());
    }
}

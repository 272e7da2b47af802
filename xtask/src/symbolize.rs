//! Turning kernel addresses into function names.
//!
//! Owns the symbol table read from the kernel ELF (function symbols, demangled), the lookup of
//! the function that contains an address, and the annotation of a serial log: the `pc=` of
//! `[trap]` lines, every `[backtrace]` frame and every resolvable address on `[panic]` lines
//! become `0xADDR <function+0xOFF>`. Backtrace frames are return addresses, so they are looked
//! up at `addr - 1`: a call that ends its function still maps to the caller, not the next symbol.

use crate::console::{ConsoleLog, Line, take_hex};
use anyhow::{Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind, SymbolSection};
use std::fmt;
use std::ops::Range;
use std::path::Path;

/// One function symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Demangled name without the hash (`strait_kernel_core::selftest::run_selected`).
    pub name: String,
    /// First address.
    pub start: u64,
    /// Size in bytes; 0 for assembly labels without a `.size`.
    pub size: u64,
}

/// Where an address is: `<function+0xOFFSET>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The function's demangled name.
    pub function: String,
    /// Distance of the address from the function's start.
    pub offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}+{:#x}>", self.function, self.offset)
    }
}

/// The function symbols of one kernel image.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    /// Sorted by start, then size (so at equal starts the largest sized symbol comes last).
    symbols: Vec<Symbol>,
    /// Address ranges of executable sections; empty means "accept any address".
    code: Vec<Range<u64>>,
}

/// How far back a lookup scans for an enclosing sized symbol.
const SCAN_BACK: usize = 64;

impl SymbolTable {
    /// A table of `symbols` (names are used as given).
    pub fn from_symbols(mut symbols: Vec<Symbol>) -> SymbolTable {
        symbols.sort_by_key(|s| (s.start, s.size));
        SymbolTable {
            symbols,
            code: Vec::new(),
        }
    }

    /// Reads the function symbols of the ELF at `path`.
    pub fn load(path: &Path) -> Result<SymbolTable> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        SymbolTable::from_elf(&data)
            .with_context(|| format!("cannot read symbols of {}", path.display()))
    }

    /// Reads the function symbols of an ELF image.
    pub fn from_elf(data: &[u8]) -> Result<SymbolTable> {
        let file = object::File::parse(data)?;
        let code: Vec<(object::SectionIndex, Range<u64>)> = file
            .sections()
            .filter(|s| s.kind() == SectionKind::Text && s.size() > 0)
            .map(|s| (s.index(), s.address()..s.address() + s.size()))
            .collect();
        let mut symbols = Vec::new();
        for sym in file.symbols() {
            let SymbolSection::Section(section) = sym.section() else {
                continue;
            };
            let in_code = code.iter().any(|(i, _)| *i == section);
            let wanted = match sym.kind() {
                SymbolKind::Text => true,
                SymbolKind::Unknown | SymbolKind::Label => in_code,
                _ => false,
            };
            let Ok(name) = sym.name() else { continue };
            if !wanted || name.is_empty() || name.starts_with('$') || name.starts_with(".L") {
                continue;
            }
            symbols.push(Symbol {
                name: demangle(name),
                start: sym.address(),
                size: sym.size(),
            });
        }
        let mut table = SymbolTable::from_symbols(symbols);
        table.code = code.into_iter().map(|(_, r)| r).collect();
        Ok(table)
    }

    /// True when the table has no symbol.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The function that contains `addr`: the innermost sized symbol around it, else the closest
    /// preceding label in the same executable section.
    pub fn lookup(&self, addr: u64) -> Option<&Symbol> {
        let end = self.symbols.partition_point(|s| s.start <= addr);
        let mut label = None;
        for s in self.symbols[..end].iter().rev().take(SCAN_BACK) {
            if s.size > 0 {
                if addr - s.start < s.size {
                    return Some(s);
                }
            } else if label.is_none() && self.same_code_range(s.start, addr) {
                label = Some(s);
            }
        }
        label
    }

    fn same_code_range(&self, a: u64, b: u64) -> bool {
        self.code.is_empty() || self.code.iter().any(|r| r.contains(&a) && r.contains(&b))
    }

    /// Where the instruction at `pc` is (a trap's pc).
    pub fn locate_pc(&self, pc: u64) -> Option<Location> {
        self.lookup(pc).map(|s| Location {
            function: s.name.clone(),
            offset: pc - s.start,
        })
    }

    /// Where the call that returns to `ra` is (a backtrace frame): looked up at `ra - 1`, the
    /// offset still counted to `ra`.
    pub fn locate_return(&self, ra: u64) -> Option<Location> {
        let s = self.lookup(ra.checked_sub(1)?)?;
        Some(Location {
            function: s.name.clone(),
            offset: ra - s.start,
        })
    }
}

/// A symbol name demangled, without the trailing hash.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

fn annotation(location: Option<Location>) -> String {
    location.map_or_else(|| "<unknown>".to_owned(), |l| l.to_string())
}

/// `raw`, parsed (in the context of its log) as `parsed`, with its addresses annotated (see the
/// module doc); other lines come back unchanged (without a trailing `\r`).
fn annotate_parsed(raw: &str, parsed: &Line, table: &SymbolTable) -> String {
    let line = raw.trim_end_matches(['\r', '\n']);
    match *parsed {
        Line::Trap { pc, .. } => {
            let Some(at) = line.find(" at pc=") else {
                return line.to_owned();
            };
            let value_start = at + " at pc=".len();
            let Some((_, rest)) = take_hex(&line[value_start..]) else {
                return line.to_owned();
            };
            let value_end = line.len() - rest.len();
            format!(
                "{} {}{}",
                &line[..value_end],
                annotation(table.locate_pc(pc)),
                &line[value_end..]
            )
        }
        Line::Frame { addr, .. } => {
            format!("{line} {}", annotation(table.locate_return(addr)))
        }
        Line::Panic { .. } | Line::PanicContinuation => annotate_every_address(line, table),
        _ => line.to_owned(),
    }
}

/// Annotates every `0x...` word of `line` that falls in a function.
fn annotate_every_address(line: &str, table: &SymbolTable) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("0x") {
        let word_start = i == 0 || !rest[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match take_hex(tail) {
            Some((value, after)) if word_start => {
                out.push_str(&tail[..tail.len() - after.len()]);
                if let Some(location) = table.locate_pc(value) {
                    out.push(' ');
                    out.push_str(&location.to_string());
                }
                rest = after;
            }
            _ => {
                out.push_str("0x");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The whole log annotated, one line per input line.
pub fn annotate_log(log: &ConsoleLog, table: &SymbolTable) -> String {
    let mut out = String::with_capacity(log.text.len() * 2);
    for (raw, parsed) in log.entries() {
        out.push_str(&annotate_parsed(raw, parsed, table));
        out.push('\n');
    }
    out
}

/// The crash report of a log: its `[trap]`, `[panic]` (with continuation) and `[backtrace]`
/// lines, annotated when a table is given.
pub fn crash_report(log: &ConsoleLog, table: Option<&SymbolTable>) -> Vec<String> {
    log.entries()
        .filter(|(_, parsed)| {
            matches!(
                parsed,
                Line::Trap { .. }
                    | Line::Panic { .. }
                    | Line::PanicContinuation
                    | Line::Frame { .. }
                    | Line::BacktraceEnd
            )
        })
        .map(|(raw, parsed)| match table {
            Some(t) => annotate_parsed(raw, parsed, t),
            None => raw.to_owned(),
        })
        .collect()
}

/// The functions named by a log's crash report: each trap pc, each backtrace frame (at
/// `addr - 1`) and each resolvable address on a panic line, in order.
pub fn frame_functions(lines: &[Line], table: &SymbolTable) -> Vec<String> {
    let mut names = Vec::new();
    for line in lines {
        match line {
            Line::Trap { pc, .. } => names.extend(table.locate_pc(*pc).map(|l| l.function)),
            Line::Frame { addr, .. } => {
                names.extend(table.locate_return(*addr).map(|l| l.function));
            }
            Line::Panic { message } => {
                let mut rest = message.as_str();
                while let Some(i) = rest.find("0x") {
                    match take_hex(&rest[i..]) {
                        Some((value, after)) => {
                            names.extend(table.locate_pc(value).map(|l| l.function));
                            rest = after;
                        }
                        None => rest = &rest[i + 2..],
                    }
                }
            }
            _ => {}
        }
    }
    names
}

/// The first kernel address of a log's crash report, to guess the architecture from.
pub fn first_report_address(lines: &[Line]) -> Option<u64> {
    lines.iter().find_map(|l| match l {
        Line::Trap { pc, .. } => Some(*pc),
        Line::Frame { addr, .. } => Some(*addr),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::console::parse_line;

    fn annotate_line(raw: &str, table: &SymbolTable) -> String {
        annotate_parsed(raw, &parse_line(raw), table)
    }

    /// A small kernel: two functions, an assembly label and a gap.
    pub(crate) fn table() -> SymbolTable {
        let sym = |name: &str, start, size| Symbol {
            name: name.into(),
            start,
            size,
        };
        SymbolTable::from_symbols(vec![
            sym("kernel::tests::deliberate_unmapped_read", 0x1000, 0x40),
            sym("kernel::main", 0x1040, 0x100),
            sym("trap_entry", 0x2000, 0),
            sym("kernel::after_gap", 0x3000, 0x10),
        ])
    }

    #[test]
    fn lookup_finds_the_containing_function() {
        let t = table();
        assert_eq!(
            t.lookup(0x1000).unwrap().name,
            "kernel::tests::deliberate_unmapped_read"
        );
        assert_eq!(
            t.lookup(0x103f).unwrap().name,
            "kernel::tests::deliberate_unmapped_read"
        );
        assert_eq!(t.lookup(0x1040).unwrap().name, "kernel::main");
        assert_eq!(t.lookup(0x2010).unwrap().name, "trap_entry");
        assert!(t.lookup(0xfff).is_none());
        assert_eq!(t.lookup(0x3005).unwrap().name, "kernel::after_gap");
    }

    #[test]
    fn return_addresses_map_to_the_calling_function() {
        let t = table();
        // A call that is the last instruction of deliberate_unmapped_read returns to 0x1040,
        // the first byte of the next function.
        let loc = t.locate_return(0x1040).unwrap();
        assert_eq!(loc.function, "kernel::tests::deliberate_unmapped_read");
        assert_eq!(
            loc.to_string(),
            "<kernel::tests::deliberate_unmapped_read+0x40>"
        );
        assert_eq!(
            t.locate_pc(0x1040).unwrap().to_string(),
            "<kernel::main+0x0>"
        );
    }

    #[test]
    fn log_lines_are_annotated() {
        let t = table();
        assert_eq!(
            annotate_line("[trap] page fault at pc=0x1010 addr=0x0 (vector 14)\r", &t),
            "[trap] page fault at pc=0x1010 <kernel::tests::deliberate_unmapped_read+0x10> \
             addr=0x0 (vector 14)"
        );
        assert_eq!(
            annotate_line("[backtrace] #0 0x1050", &t),
            "[backtrace] #0 0x1050 <kernel::main+0x10>"
        );
        assert_eq!(
            annotate_line("[backtrace] #1 0x9", &t),
            "[backtrace] #1 0x9 <unknown>"
        );
        assert_eq!(
            annotate_line("[panic] bad 0x1044 and 0x5 and x0x1044", &t),
            "[panic] bad 0x1044 <kernel::main+0x4> and 0x5 and x0x1044"
        );
        assert_eq!(annotate_line("[stage] serial ok", &t), "[stage] serial ok");
    }

    #[test]
    fn crash_reports_and_frame_functions() {
        let t = table();
        let text = "[stage] traps ok\n[trap] page fault at pc=0x1010 (x)\n[backtrace] #0 0x1080\n\
                    [backtrace] end\n";
        assert_eq!(
            crash_report(&ConsoleLog::parse(text), Some(&t)),
            [
                "[trap] page fault at pc=0x1010 <kernel::tests::deliberate_unmapped_read+0x10> (x)",
                "[backtrace] #0 0x1080 <kernel::main+0x40>",
                "[backtrace] end",
            ]
        );
        let lines: Vec<Line> = text.lines().map(parse_line).collect();
        assert_eq!(
            frame_functions(&lines, &t),
            ["kernel::tests::deliberate_unmapped_read", "kernel::main"]
        );
        assert_eq!(first_report_address(&lines), Some(0x1010));
    }

    #[test]
    fn panic_continuations_are_reported_and_annotated() {
        let t = table();
        let log = ConsoleLog::parse(
            "x\n[panic] panicked at a.rs:1:2:\r\nbad pointer 0x1044\r\n[backtrace] #0 0x1044\n",
        );
        assert_eq!(
            crash_report(&log, Some(&t)),
            [
                "[panic] panicked at a.rs:1:2:",
                "bad pointer 0x1044 <kernel::main+0x4>",
                "[backtrace] #0 0x1044 <kernel::main+0x4>",
            ]
        );
        assert_eq!(
            annotate_log(&log, &t),
            "x\n[panic] panicked at a.rs:1:2:\nbad pointer 0x1044 <kernel::main+0x4>\n\
             [backtrace] #0 0x1044 <kernel::main+0x4>\n"
        );
    }

    #[test]
    fn demangles_without_hash() {
        assert_eq!(
            demangle("_ZN18strait_kernel_core8selftest12run_selected17h0123456789abcdefE"),
            "strait_kernel_core::selftest::run_selected"
        );
        assert_eq!(demangle("trap_entry"), "trap_entry");
    }

    #[test]
    fn reads_symbols_of_a_real_elf() {
        // The test binary itself is an ELF with function symbols.
        let exe = std::env::current_exe().unwrap();
        let t = SymbolTable::load(&exe).unwrap();
        assert!(!t.is_empty());
        let f = t
            .symbols
            .iter()
            .find(|s| s.name.ends_with("symbolize::demangle") && s.size > 0)
            .expect("the test binary has a symbol for demangle");
        assert_eq!(t.lookup(f.start + 1).unwrap().name, f.name);
    }
}

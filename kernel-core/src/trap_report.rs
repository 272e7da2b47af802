//! The text of a fatal-trap or panic report, identical on both architectures.
//!
//! Owns the report format the harness symbolizes:
//!
//! ```text
//! [trap] KIND at pc=0x... addr=0x... (DETAIL)
//! [backtrace] #0 0x...
//! [backtrace] #1 0x...
//! [backtrace] end
//! ```
//!
//! `addr=` is present only for faults that have a faulting data address (CR2, FAR_EL1). A panic
//! prints `[panic] MESSAGE` followed by the same backtrace lines. The arch trap handlers fill a
//! [`TrapReport`]; this module formats it and must never read registers or memory itself.

use core::fmt::{self, Write};

/// What an arch trap handler knows about an unexpected exception.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)] // `detail` is only Display.
pub struct TrapReport<'a> {
    /// Human-readable class (`page fault`, `undefined instruction`, `data abort`, ...).
    pub kind: &'a str,
    /// Instruction pointer of the faulting instruction (RIP, ELR_EL1).
    pub pc: u64,
    /// Faulting data address when the trap has one (CR2, FAR_EL1).
    pub fault_address: Option<u64>,
    /// Architecture detail: vector and error code, or ESR_EL1 and its fields.
    pub detail: &'a dyn fmt::Display,
}

/// Prints the `[trap]` line of `report`.
pub fn write_trap(out: &mut dyn Write, report: &TrapReport<'_>) -> fmt::Result {
    write!(out, "[trap] {} at pc={:#x}", report.kind, report.pc)?;
    if let Some(addr) = report.fault_address {
        write!(out, " addr={addr:#x}")?;
    }
    writeln!(out, " ({})", report.detail)
}

/// Prints the `[trap]` line of a kernel stack overflow: `owner` is the thread ID that ran on the
/// stack (`hal::BOOT_STACK_OWNER` for the boot CPU's stack), `addr` the guard-page address hit.
pub fn write_stack_overflow(out: &mut dyn Write, owner: u64, pc: u64, addr: u64) -> fmt::Result {
    if owner == crate::hal::BOOT_STACK_OWNER {
        write!(out, "[trap] kernel stack overflow in thread boot")?;
    } else {
        write!(out, "[trap] kernel stack overflow in thread {owner}")?;
    }
    writeln!(out, " at pc={pc:#x} addr={addr:#x} (guard page hit)")
}

/// Prints one `[backtrace]` frame line.
pub fn write_frame(out: &mut dyn Write, depth: usize, return_address: u64) -> fmt::Result {
    writeln!(out, "[backtrace] #{depth} {return_address:#x}")
}

/// Prints the line that closes a backtrace (so a cut-off log is recognisable).
pub fn write_backtrace_end(out: &mut dyn Write) -> fmt::Result {
    writeln!(out, "[backtrace] end")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    #[test]
    fn trap_line_carries_pc_address_and_detail() {
        let mut out = String::new();
        let report = TrapReport {
            kind: "page fault",
            pc: 0xffff_ffff_8010_0000,
            fault_address: Some(0xdead_0000),
            detail: &"vector 14, error 0x0",
        };
        write_trap(&mut out, &report).unwrap();
        write_frame(&mut out, 0, 0x1234).unwrap();
        write_backtrace_end(&mut out).unwrap();
        assert_eq!(
            out,
            "[trap] page fault at pc=0xffffffff80100000 addr=0xdead0000 (vector 14, error 0x0)\n\
             [backtrace] #0 0x1234\n[backtrace] end\n"
        );
    }

    #[test]
    fn trap_line_omits_a_missing_address() {
        let mut out = String::new();
        let report = TrapReport {
            kind: "undefined instruction",
            pc: 0x10,
            fault_address: None,
            detail: &"vector 6",
        };
        write_trap(&mut out, &report).unwrap();
        assert_eq!(out, "[trap] undefined instruction at pc=0x10 (vector 6)\n");
    }

    #[test]
    fn stack_overflow_names_the_thread() {
        let mut out = String::new();
        write_stack_overflow(&mut out, 12, 0x10, 0x2000).unwrap();
        write_stack_overflow(&mut out, crate::hal::BOOT_STACK_OWNER, 0x10, 0x2000).unwrap();
        assert_eq!(
            out,
            "[trap] kernel stack overflow in thread 12 at pc=0x10 addr=0x2000 (guard page hit)\n\
             [trap] kernel stack overflow in thread boot at pc=0x10 addr=0x2000 (guard page hit)\n"
        );
    }
}

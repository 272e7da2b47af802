//! The kernel panic handler: report, backtrace, stop.
//!
//! Owns what happens after a `panic!`: one `[panic]` line, a frame-pointer backtrace in the
//! format of `kernel_core::trap_report`, the trace rings, and a `Crashed` exit so the harness
//! sees the failure. It writes to the device directly, never through the logger.
//! It must never allocate or take a lock (the panic may have happened while one was held), and
//! a panic inside the report must not recurse.

use crate::ktrace::{self, RawConsole};
use crate::platform::Machine;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::hal::{ExitStatus, Platform};
use kernel_core::{backtrace, trap_report};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // Nothing may preempt the report: the tick could switch away in the middle of it.
    Machine::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        Machine::console_write(b"\n[panic] nested panic while reporting a panic\n");
        Machine::exit(ExitStatus::Crashed);
    }
    let mut out = RawConsole;
    let _ = match info.location() {
        Some(at) => writeln!(
            out,
            "\n[panic] {} at {}:{}",
            info.message(),
            at.file(),
            at.line()
        ),
        None => writeln!(out, "\n[panic] {}", info.message()),
    };
    backtrace::walk(
        Machine::frame_pointer(),
        Machine::read_stack_word,
        |depth, ra| {
            let _ = trap_report::write_frame(&mut out, depth, ra);
        },
    );
    let _ = trap_report::write_backtrace_end(&mut out);
    ktrace::dump_raw();
    Machine::exit(ExitStatus::Crashed)
}

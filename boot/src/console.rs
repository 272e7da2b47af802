//! `kprint!`/`kprintln!`: formatted output to the boot console.
//!
//! Owns the `fmt::Write` adapter over `Platform::console_write`, which takes no lock, so it is
//! safe from trap handlers and the panic path, and the print macros: `kprintln!` goes through the
//! logger (`klog`), which writes whole lines with interrupts masked. Nothing here buffers: a
//! line that was printed is on the wire if the next instruction hangs.

use crate::klog::{self, LINE_BYTES, Level};
use arrayvec::ArrayString;
use core::fmt;

/// Collects formatted text into lines and hands each complete line to the logger, so protocol
/// lines (`[stage]`, `[test]`, `[done]`) are never interleaved with lines logged by interrupt
/// handlers. A partial line is flushed when the writer is dropped.
#[derive(Debug, Default)]
pub struct Console(ArrayString<LINE_BYTES>);

impl Console {
    /// A writer with an empty line.
    pub fn new() -> Self {
        Self(ArrayString::new())
    }

    fn flush(&mut self) {
        if !self.0.is_empty() {
            klog::log(Level::Info, format_args!("{}", self.0));
            self.0.clear();
        }
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c == '\n' || self.0.try_push(c).is_err() {
                self.flush();
                if c != '\n' {
                    let _ = self.0.try_push(c);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints a line to the boot console through the logger: the whole line at once, safe from
/// interrupt handlers (see `klog`).
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::klog::log($crate::klog::Level::Info, format_args!($($arg)*))
    };
}

//! Console output: `print!`/`println!` through `DebugWrite`.
//!
//! Owns the line discipline of user output: text is formatted into a [`LINE_BYTES`] stack buffer
//! and written with one `DebugWrite` per whole line, so that lines of different threads and
//! processes (and of the kernel) never interleave within a line. A line is only split into
//! several writes when it is longer than the buffer.
//!
//! It must never allocate, block on anything but the kernel console, or fail loudly: a failed
//! `DebugWrite` is dropped (there is nowhere else to report it).

use core::fmt::{self, Write};

/// Size of the formatting buffer: the longest line written in one `DebugWrite`.
pub const LINE_BYTES: usize = 256;

/// A formatter that flushes whole lines through `DebugWrite`.
struct LineWriter {
    buf: [u8; LINE_BYTES],
    len: usize,
}

impl LineWriter {
    const fn new() -> Self {
        Self {
            buf: [0; LINE_BYTES],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            // Nothing useful can be done if the console refuses: drop the text.
            let _ = crate::syscall::debug_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            if self.len == LINE_BYTES {
                // Only a line longer than the buffer is split.
                self.flush();
            }
            self.buf[self.len] = byte;
            self.len += 1;
            if byte == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Formats `args` and writes it to the console, whole lines at a time. Used by
/// [`print!`](crate::print!) and [`println!`](crate::println!).
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let mut writer = LineWriter::new();
    // LineWriter::write_str never fails; an Err could only come from a Display impl.
    let _ = writer.write_fmt(args);
    writer.flush();
}

/// Prints to the kernel console (through `DebugWrite`), like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::print_fmt(format_args!($($arg)*))
    };
}

/// Prints a line to the kernel console (through `DebugWrite`, the whole line in one write),
/// like `std::println!`.
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::print_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

//! The kernel logger: whole lines, safe from any context that may be interrupted.
//!
//! Owns the log buffer (the last lines logged, like a `dmesg` ring) and the rule that makes
//! logging deadlock-free: a line is formatted on the caller's stack first, then appended to the
//! buffer and written to the console with interrupts masked, so an interrupt handler that logs
//! can never find the buffer held by the code it interrupted on the same CPU. Its lock is only
//! ever taken with interrupts masked. The panic and trap reports bypass it (they write to the
//! device directly) so that a crash while logging still gets reported.

use crate::platform::Machine;
use arrayvec::ArrayString;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::hal::Platform;
use spin::Mutex;

/// Longest line; longer ones are cut and marked with `...`.
pub const LINE_BYTES: usize = 200;
/// Lines the buffer keeps.
pub const BUFFER_LINES: usize = 256;

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Kept in the buffer only.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Debug,
    /// Kept and printed on the console.
    Info,
}

struct Buffer {
    lines: [ArrayString<LINE_BYTES>; BUFFER_LINES],
    next: usize,
}

/// Taken only with interrupts masked (see the module docs).
static BUFFER: Mutex<Buffer> = Mutex::new(Buffer {
    lines: [const { ArrayString::new_const() }; BUFFER_LINES],
    next: 0,
});
static LINES_LOGGED: AtomicU64 = AtomicU64::new(0);

/// A line being formatted; silently truncated at `LINE_BYTES`.
struct Line(ArrayString<LINE_BYTES>, bool);

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.try_push(c).is_err() {
                self.1 = true;
                break;
            }
        }
        Ok(())
    }
}

/// Logs one line (the newline is added here).
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let mut line = Line(ArrayString::new(), false);
    let _ = line.write_fmt(args);
    if line.1 {
        line.0.truncate(LINE_BYTES - 3);
        while !line.0.is_char_boundary(line.0.len()) {
            line.0.pop();
        }
        let _ = line.0.try_push_str("...");
    }
    let enabled = Machine::disable_interrupts();
    {
        let mut buffer = BUFFER.lock();
        let slot = buffer.next;
        buffer.lines[slot] = line.0;
        buffer.next = (slot + 1) % BUFFER_LINES;
    }
    if level >= Level::Info {
        Machine::console_write(line.0.as_bytes());
        Machine::console_write(b"\n");
    }
    LINES_LOGGED.fetch_add(1, Ordering::Relaxed);
    Machine::restore_interrupts(enabled);
}

/// Lines logged since boot.
#[cfg(feature = "testing")]
pub fn lines_logged() -> u64 {
    LINES_LOGGED.load(Ordering::Relaxed)
}

/// The buffered lines, oldest first (for tests: the buffer must hold exactly the last lines
/// logged, in order).
#[cfg(feature = "testing")]
pub fn buffered_lines() -> alloc::vec::Vec<ArrayString<LINE_BYTES>> {
    // Allocated before masking interrupts: nothing allocates under the buffer's lock.
    let mut lines = alloc::vec::Vec::with_capacity(BUFFER_LINES);
    let enabled = Machine::disable_interrupts();
    {
        let buffer = BUFFER.lock();
        let (newer, older) = buffer.lines.split_at(buffer.next);
        // Slots never written yet are empty (every logged line has at least its prefix).
        lines.extend(older.iter().chain(newer).filter(|l| !l.is_empty()).copied());
    }
    Machine::restore_interrupts(enabled);
    lines
}

/// True while somebody holds the buffer (for tests: it must be free when nobody logs).
#[cfg(feature = "testing")]
pub fn is_busy() -> bool {
    BUFFER.is_locked()
}

/// Logs a line at `Debug` (buffer only).
#[macro_export]
macro_rules! kdebug {
    ($($arg:tt)*) => {
        $crate::klog::log($crate::klog::Level::Debug, format_args!($($arg)*))
    };
}

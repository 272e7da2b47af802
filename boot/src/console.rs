//! `kprint!`/`kprintln!`: formatted output to the boot console.
//!
//! Owns nothing but the `fmt::Write` adapter over `Platform::console_write`, which takes no lock,
//! so printing is safe from trap handlers and the panic path. It must never buffer: a line that
//! was printed must be on the wire if the next instruction hangs.

use crate::platform::Machine;
use core::fmt;
use kernel_core::hal::Platform;

/// Writes formatted text straight to the console device.
#[derive(Debug, Clone, Copy, Default)]
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        Machine::console_write(s.as_bytes());
        Ok(())
    }
}

/// Prints to the boot console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the boot console.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(
            &mut $crate::console::Console,
            format_args!("{}\n", format_args!($($arg)*)),
        );
    }};
}

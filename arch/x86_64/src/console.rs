//! A `fmt::Write` adapter over the serial console, for the trap reporter.
//!
//! Owns nothing; it forwards to `serial::write`, which takes no lock.

/// Formats straight to COM1.
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::serial::write(s.as_bytes());
        Ok(())
    }
}

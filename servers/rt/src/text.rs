//! A fixed-capacity text buffer, for messages built at run time without an allocator.
//!
//! Owns [`Text`]: `core::fmt::Write` into an inline byte array. It must never panic or fail on
//! overflow: text beyond the capacity is cut at a character boundary and the cut is marked with a
//! trailing `~`, so that a report is always produced, if shortened.

use core::fmt::{self, Write};

/// Up to `N` bytes of UTF-8 text, built with `write!` or [`Text::format`].
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Text<N> {
    /// An empty text.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text of `args` (cut to `N` bytes if longer).
    #[must_use]
    pub fn format(args: fmt::Arguments<'_>) -> Self {
        let mut text = Self::new();
        // Text::write_str never fails; an Err could only come from a Display impl.
        let _ = text.write_fmt(args);
        text
    }

    /// The text written so far.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in (see write_str).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }

    /// Whether text was cut because it did not fit.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        if self.len + s.len() <= N {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
            return Ok(());
        }
        // Keep what fits, leaving one byte for the `~` marker, cut at a character boundary.
        self.truncated = true;
        let room = N.saturating_sub(self.len + 1);
        let mut cut = room.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.buf[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
        self.len += cut;
        if self.len < N {
            self.buf[self.len] = b'~';
            self.len += 1;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

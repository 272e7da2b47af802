//! The kernel command line, as init reads it.
//!
//! Owns the options init acts on: the `test=` selection, read with the test catalog's rules (the
//! kernel's and the harness's, so all three agree on what runs: the last valid `test=` word
//! wins); the word `bench`; and the exact-clock word (`clock=icount`) that allows timing bounds.
//! It must never reject an option it does not know: the kernel shares the command line.

use test_catalog::Selection;

/// The command line.
#[derive(Debug, Clone, Copy)]
pub struct Cmdline<'a>(&'a str);

impl<'a> Cmdline<'a> {
    /// Wraps the command-line text.
    pub fn new(text: &'a str) -> Self {
        Self(text)
    }

    /// The whole text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether this is a test boot (a valid `test=` option).
    pub fn has_tests(&self) -> bool {
        Selection::from_cmdline(self.0).is_test_boot()
    }

    /// Whether init test `name` is selected (by the catalog's rules for the selection).
    pub fn selects(&self, name: &str) -> bool {
        let selection = Selection::from_cmdline(self.0);
        test_catalog::find(name).is_some_and(|test| selection.runs(test))
    }

    /// Whether guest time counts instructions, so tests may assert timing bounds.
    pub fn exact_clock(&self) -> bool {
        test_catalog::exact_clock(self.0)
    }

    /// Whether the word `bench` is present.
    pub fn bench(&self) -> bool {
        self.0
            .split_ascii_whitespace()
            .any(|option| option == "bench")
    }
}

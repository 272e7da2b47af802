//! The kernel command line, as init reads it.
//!
//! Owns the syntax init understands: whitespace-separated options; `test=all` or
//! `test=name,name,...` (several `test=` options add up) selects user tests; the word `bench`
//! asks for the benchmarks. It must never reject an option it does not know: the kernel shares
//! the command line (it runs its own tests from the same `test=` option), so unknown options and
//! unknown test names are ignored.

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

    fn test_lists(&self) -> impl Iterator<Item = &'a str> {
        self.0
            .split_ascii_whitespace()
            .filter_map(|option| option.strip_prefix("test="))
    }

    /// Whether any `test=` option is present.
    pub fn has_tests(&self) -> bool {
        self.test_lists().next().is_some()
    }

    /// Whether test `name` is selected (`test=all`, or named in a `test=` list).
    pub fn selects(&self, name: &str) -> bool {
        self.test_lists()
            .flat_map(|list| list.split(','))
            .any(|selected| selected == "all" || selected == name)
    }

    /// Whether the word `bench` is present.
    pub fn bench(&self) -> bool {
        self.0
            .split_ascii_whitespace()
            .any(|option| option == "bench")
    }
}

//! The kernel command line: `key=value` words separated by spaces.
//!
//! Owns the meaning of each option. Parsing never fails: an unknown or malformed word is kept in
//! [`Cmdline::rejected`] so that boot can say what it ignored. Must never allocate.

use arrayvec::ArrayVec;

/// How many rejected words are remembered for the report.
pub const MAX_REJECTED: usize = 8;

/// Which in-kernel tests a boot runs (`test=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestSelection<'a> {
    /// No `test=` option: a normal boot.
    None,
    /// `test=all`.
    All,
    /// `test=a,b,c`: the comma-separated names, verbatim (empty names are skipped by
    /// [`TestSelection::names`]).
    Named(&'a str),
}

impl<'a> TestSelection<'a> {
    /// The names listed in a `Named` selection, in order, without empty entries.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + 'a {
        let list = match *self {
            TestSelection::Named(list) => list,
            _ => "",
        };
        list.split(',').filter(|n| !n.is_empty())
    }

    /// True when the test called `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        match self {
            TestSelection::None => false,
            TestSelection::All => true,
            TestSelection::Named(_) => self.names().any(|n| n == name),
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Cmdline<'a> {
    /// The `test=` option (the last one wins when repeated).
    pub tests: TestSelection<'a>,
    /// Words that are not a known `key=value` option, in order of appearance.
    pub rejected: ArrayVec<&'a str, MAX_REJECTED>,
    /// True when more words were rejected than [`MAX_REJECTED`].
    pub rejected_overflow: bool,
}

impl<'a> Cmdline<'a> {
    /// Parses `line`. Words are separated by ASCII whitespace. Known options: `test=all`,
    /// `test=NAME[,NAME...]`. `test=` with an empty value is rejected. Everything else
    /// (unknown keys, words without `=`, non-printable garbage) lands in `rejected`.
    pub fn parse(line: &'a str) -> Self {
        let _ = line;
        unimplemented!("cmdline::parse")
    }
}

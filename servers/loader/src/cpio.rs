//! A reader for cpio "newc" archives (the initrd format).
//!
//! This module owns the byte layout of the archive: 110-byte ASCII headers (magic `070701` then
//! 13 fields of 8 hex digits), the NUL-terminated name, the 4-byte padding after the name and after
//! the data, and the `TRAILER!!!` entry that ends the archive. It hands out borrowed views
//! ([`Entry`]) into the caller's bytes.
//!
//! It must never copy, allocate, interpret file contents, or panic: the archive is untrusted input,
//! so every offset is computed with checked arithmetic and every slice is taken with `get`. A
//! malformed archive yields a [`CpioError`] naming the offset of the entry header at fault.

use core::fmt;

/// The magic at the start of every "newc" header (no checksum variant).
const MAGIC: &[u8; 6] = b"070701";
/// Size of a "newc" header: the magic and 13 fields of 8 hex digits.
const HEADER_LEN: usize = 110;
/// The name of the entry that ends the archive.
const TRAILER: &str = "TRAILER!!!";
/// The file-type bits of `mode` and the value for a regular file.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

/// The 13 header fields, in order, by name (used in [`CpioError::BadHexField`]).
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const F_MODE: usize = 1;
const F_FILESIZE: usize = 6;
const F_NAMESIZE: usize = 11;

/// Why an archive was rejected. Every `offset` is the byte offset, from the start of the archive,
/// of the entry header being read when the problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The header does not start with `070701` (only the "newc" format without checksums is read).
    BadMagic {
        /// Offset of the header.
        offset: usize,
    },
    /// The archive ends inside a header, a name, its padding or the file data.
    Truncated {
        /// Offset of the header of the cut entry.
        offset: usize,
    },
    /// A header field is not 8 ASCII hex digits.
    BadHexField {
        /// Offset of the header.
        offset: usize,
        /// Which field (`"ino"`, `"mode"`, ..., `"check"`).
        field: &'static str,
    },
    /// The entry name is not valid UTF-8.
    NameNotUtf8 {
        /// Offset of the header.
        offset: usize,
    },
    /// The name field is not a string of exactly `namesize - 1` non-NUL bytes followed by a NUL
    /// (this includes `namesize == 0`).
    NameNotTerminated {
        /// Offset of the header.
        offset: usize,
    },
    /// The archive ends cleanly after an entry but without a `TRAILER!!!` entry.
    MissingTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic { offset } => {
                write!(
                    f,
                    "cpio: bad magic at offset {offset:#x} (expected newc \"070701\")"
                )
            }
            Self::Truncated { offset } => {
                write!(
                    f,
                    "cpio: archive truncated in the entry at offset {offset:#x}"
                )
            }
            Self::BadHexField { offset, field } => write!(
                f,
                "cpio: field `{field}` of the header at offset {offset:#x} is not 8 hex digits"
            ),
            Self::NameNotUtf8 { offset } => {
                write!(
                    f,
                    "cpio: name of the entry at offset {offset:#x} is not UTF-8"
                )
            }
            Self::NameNotTerminated { offset } => write!(
                f,
                "cpio: name of the entry at offset {offset:#x} is not NUL-terminated at namesize"
            ),
            Self::MissingTrailer => write!(f, "cpio: archive ends without a TRAILER!!! entry"),
        }
    }
}

/// One member of the archive, borrowed from the archive bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The name as stored (without the terminating NUL; a leading `./` is kept here).
    pub name: &'a str,
    /// The `st_mode` of the member: file type and permission bits.
    pub mode: u32,
    /// The member's contents (`filesize` bytes; for a symbolic link, the target path).
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Whether this member is a regular file (not a directory, link, device, ...).
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

/// A cpio "newc" archive held in memory.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
}

impl<'a> Archive<'a> {
    /// Wraps `bytes` after checking that they start with a "newc" header magic. The rest of the
    /// archive is checked lazily, entry by entry, by [`Archive::entries`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, CpioError> {
        match bytes.get(..MAGIC.len()) {
            None => Err(CpioError::Truncated { offset: 0 }),
            Some(m) if m != MAGIC => Err(CpioError::BadMagic { offset: 0 }),
            Some(_) => Ok(Self { bytes }),
        }
    }

    /// The members in archive order. The iterator ends after the `TRAILER!!!` entry (which it does
    /// not yield) or right after yielding the first error.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            bytes: self.bytes,
            offset: 0,
            done: false,
        }
    }

    /// The first regular file named exactly `name`. A leading `./` on names in the archive is
    /// ignored (so `find("init")` matches `./init`); `name` itself is compared as given.
    /// Members that are not regular files never match. An error met before a match is returned.
    pub fn find(&self, name: &str) -> Result<Option<Entry<'a>>, CpioError> {
        for entry in self.entries() {
            let entry = entry?;
            let stored = entry.name.strip_prefix("./").unwrap_or(entry.name);
            if entry.is_file() && stored == name {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }
}

/// Iterator over the members of an [`Archive`]; see [`Archive::entries`].
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match parse_entry(self.bytes, self.offset) {
            Ok(Parsed::Trailer) => {
                self.done = true;
                None
            }
            Ok(Parsed::Entry(entry, next)) => {
                self.offset = next;
                Some(Ok(entry))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// What one header parse found.
enum Parsed<'a> {
    /// A member, and the offset of the next header.
    Entry(Entry<'a>, usize),
    /// The end-of-archive entry.
    Trailer,
}

/// Rounds `n` up to a multiple of 4, or `None` on overflow.
fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Parses 8 ASCII hex digits.
fn parse_hex8(digits: &[u8]) -> Option<u32> {
    if digits.len() != 8 {
        return None;
    }
    let mut value: u32 = 0;
    for &d in digits {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        value = (value << 4) | u32::from(nibble);
    }
    Some(value)
}

/// Parses the entry whose header starts at `offset`.
fn parse_entry(bytes: &[u8], offset: usize) -> Result<Parsed<'_>, CpioError> {
    let truncated = CpioError::Truncated { offset };
    if offset == bytes.len() {
        return Err(CpioError::MissingTrailer);
    }
    let header_end = offset.checked_add(HEADER_LEN).ok_or(truncated)?;
    let header = bytes.get(offset..header_end).ok_or(truncated)?;
    if header.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(CpioError::BadMagic { offset });
    }
    let mut fields = [0u32; FIELDS.len()];
    for (i, (value, field)) in fields.iter_mut().zip(FIELDS).enumerate() {
        let start = MAGIC.len() + 8 * i;
        *value = header
            .get(start..start + 8)
            .and_then(parse_hex8)
            .ok_or(CpioError::BadHexField { offset, field })?;
    }

    let namesize = usize::try_from(fields[F_NAMESIZE]).map_err(|_| truncated)?;
    let name_end = header_end.checked_add(namesize).ok_or(truncated)?;
    let name_field = bytes.get(header_end..name_end).ok_or(truncated)?;
    let name_bytes = match name_field.split_last() {
        Some((0, name)) if !name.contains(&0) => name,
        _ => return Err(CpioError::NameNotTerminated { offset }),
    };
    let name = core::str::from_utf8(name_bytes).map_err(|_| CpioError::NameNotUtf8 { offset })?;

    let data_start = align4(name_end).ok_or(truncated)?;
    let filesize = usize::try_from(fields[F_FILESIZE]).map_err(|_| truncated)?;
    let data_end = data_start.checked_add(filesize).ok_or(truncated)?;
    let data = bytes.get(data_start..data_end).ok_or(truncated)?;
    if name == TRAILER {
        return Ok(Parsed::Trailer);
    }
    let next = align4(data_end).ok_or(truncated)?;
    if next > bytes.len() {
        // The data's padding is missing: the archive was cut right after this member's data.
        return Err(truncated);
    }
    let entry = Entry {
        name,
        mode: fields[F_MODE],
        data,
    };
    Ok(Parsed::Entry(entry, next))
}

#[cfg(test)]
mod tests;

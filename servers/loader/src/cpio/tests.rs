//! Host tests of the cpio reader, with a small "newc" writer to build archives.

use super::*;
use std::format;
use std::string::ToString;
use std::vec::Vec;

const FILE: u32 = 0o100_644;
const DIR: u32 = 0o040_755;
const SYMLINK: u32 = 0o120_777;

/// A test-only "newc" writer.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    ino: u32,
}

impl Writer {
    /// Appends a header with the given fields (namesize computed from `name` + NUL).
    fn header(&mut self, mode: u32, namesize: usize, filesize: usize) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            filesize as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            0,
        ];
        self.out.extend_from_slice(MAGIC);
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.header(mode, name.len() + 1, data.len());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, FILE, data)
    }

    fn finish(&mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, &[]);
        // Like cpio(1), pad the archive to a 512-byte block.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        core::mem::take(&mut self.out)
    }
}

fn three_files() -> Vec<u8> {
    Writer::default()
        .file("init", b"\x7fELF init program")
        .file("./bin/sh", b"")
        .file("etc/motd", b"hello, strait\n")
        .finish()
}

fn collect(bytes: &[u8]) -> Vec<Result<Entry<'_>, CpioError>> {
    Archive::new(bytes).unwrap().entries().collect()
}

#[test]
fn round_trip_names_data_and_padding() {
    // Name lengths 1..=8 and data lengths 0..=8 exercise every padding remainder.
    let names: Vec<std::string::String> = (1..=8).map(|n| "abcdefgh"[..n].to_string()).collect();
    let datas: Vec<Vec<u8>> = (0..=8u8).map(|n| (0..n).collect()).collect();
    let mut w = Writer::default();
    for name in &names {
        for data in &datas {
            w.file(name, data);
        }
    }
    let bytes = w.finish();
    let entries = collect(&bytes);
    assert_eq!(entries.len(), names.len() * datas.len());
    let mut it = entries.into_iter();
    for name in &names {
        for data in &datas {
            let e = it.next().unwrap().unwrap();
            assert_eq!(e.name, name.as_str());
            assert_eq!(e.data, data.as_slice());
            assert_eq!(e.mode, FILE);
            assert!(e.is_file());
        }
    }
}

#[test]
fn find_regular_files_only_and_strips_dot_slash() {
    let bytes = Writer::default()
        .entry("bin", DIR, &[])
        .entry("./lnk", SYMLINK, b"init")
        .file("./init", b"one")
        .file("init", b"two")
        .finish();
    let archive = Archive::new(&bytes).unwrap();
    assert_eq!(archive.find("init").unwrap().unwrap().data, b"one");
    assert_eq!(archive.find("bin").unwrap(), None);
    assert_eq!(archive.find("lnk").unwrap(), None);
    assert_eq!(
        archive.find("./init").unwrap(),
        None,
        "the query is not stripped"
    );
    assert_eq!(archive.find("ini").unwrap(), None);
    assert_eq!(archive.find("").unwrap(), None);
    let dir = archive.entries().next().unwrap().unwrap();
    assert_eq!(dir.name, "bin");
    assert!(!dir.is_file());
}

#[test]
fn empty_archive_has_no_entries() {
    let bytes = Writer::default().finish();
    assert!(collect(&bytes).is_empty());
    assert_eq!(Archive::new(&bytes).unwrap().find("init"), Ok(None));
}

#[test]
fn iteration_stops_at_trailer() {
    let mut bytes = Writer::default().file("a", b"1").finish();
    // Garbage after the trailer is never read.
    bytes.extend_from_slice(b"garbage that is not a header at all, long enough to be one......");
    let entries = collect(&bytes);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].unwrap().name, "a");
}

#[test]
fn new_rejects_bad_magic_and_short_input() {
    assert_eq!(
        Archive::new(b"").unwrap_err(),
        CpioError::Truncated { offset: 0 }
    );
    assert_eq!(
        Archive::new(b"0707").unwrap_err(),
        CpioError::Truncated { offset: 0 }
    );
    assert_eq!(
        Archive::new(b"070707xxxxx").unwrap_err(),
        CpioError::BadMagic { offset: 0 }
    );
}

#[test]
fn error_bad_magic_in_second_header() {
    let mut bytes = three_files();
    let second = align4(HEADER_LEN + 5).unwrap() + align4(17).unwrap();
    assert_eq!(&bytes[second..second + 6], MAGIC);
    bytes[second + 5] = b'7';
    let entries = collect(&bytes);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1], Err(CpioError::BadMagic { offset: second }));
}

#[test]
fn error_bad_hex_field_names_the_field() {
    for (i, field) in FIELDS.iter().enumerate() {
        for bad in [b'g', b' ', b'-', 0] {
            let mut bytes = three_files();
            bytes[6 + 8 * i + 3] = bad;
            let entries = collect(&bytes);
            assert_eq!(
                entries,
                [Err(CpioError::BadHexField { offset: 0, field })],
                "{field}"
            );
        }
    }
    // Lower-case hex digits are accepted.
    let mut bytes = Writer::default().file("x", &[7; 10]).finish();
    bytes[6 + 8 * F_FILESIZE..6 + 8 * F_FILESIZE + 8].copy_from_slice(b"0000000a");
    assert_eq!(collect(&bytes)[0].unwrap().data.len(), 10);
}

#[test]
fn error_name_not_utf8() {
    let mut bytes = Writer::default().file("abc", b"").finish();
    bytes[HEADER_LEN + 1] = 0xff;
    assert_eq!(collect(&bytes), [Err(CpioError::NameNotUtf8 { offset: 0 })]);
}

#[test]
fn error_name_not_terminated() {
    // Last byte of the name field is not NUL.
    let mut bytes = Writer::default().file("abc", b"").finish();
    bytes[HEADER_LEN + 3] = b'd';
    assert_eq!(
        collect(&bytes),
        [Err(CpioError::NameNotTerminated { offset: 0 })]
    );
    // NUL inside the name.
    let mut bytes = Writer::default().file("abc", b"").finish();
    bytes[HEADER_LEN + 1] = 0;
    assert_eq!(
        collect(&bytes),
        [Err(CpioError::NameNotTerminated { offset: 0 })]
    );
    // namesize of zero.
    let mut w = Writer::default();
    w.header(FILE, 0, 0);
    let bytes = w.finish();
    assert_eq!(
        collect(&bytes),
        [Err(CpioError::NameNotTerminated { offset: 0 })]
    );
}

#[test]
fn error_missing_trailer() {
    let bytes = core::mem::take(&mut Writer::default().file("a", b"xyz").out);
    let entries = collect(&bytes);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1], Err(CpioError::MissingTrailer));
    assert_eq!(
        Archive::new(&bytes).unwrap().find("b"),
        Err(CpioError::MissingTrailer)
    );
    assert_eq!(
        Archive::new(&bytes)
            .unwrap()
            .find("a")
            .unwrap()
            .unwrap()
            .data,
        b"xyz"
    );
}

#[test]
fn error_truncated_by_huge_sizes() {
    for field in [F_FILESIZE, F_NAMESIZE] {
        let mut bytes = three_files();
        bytes[6 + 8 * field..6 + 8 * field + 8].copy_from_slice(b"FFFFFFFF");
        let entries = collect(&bytes);
        assert_eq!(entries, [Err(CpioError::Truncated { offset: 0 })]);
    }
}

#[test]
fn errors_display_one_line() {
    let all = [
        CpioError::BadMagic { offset: 4 },
        CpioError::Truncated { offset: 4 },
        CpioError::BadHexField {
            offset: 4,
            field: "mode",
        },
        CpioError::NameNotUtf8 { offset: 4 },
        CpioError::NameNotTerminated { offset: 4 },
        CpioError::MissingTrailer,
    ];
    for e in all {
        let s = e.to_string();
        assert!(s.starts_with("cpio: ") && !s.contains('\n'), "{s}");
    }
    assert_eq!(
        CpioError::BadHexField {
            offset: 0x70,
            field: "mode"
        }
        .to_string(),
        "cpio: field `mode` of the header at offset 0x70 is not 8 hex digits"
    );
}

#[test]
fn truncation_at_every_length_never_panics() {
    let full = three_files();
    let expected = collect(&full);
    assert_eq!(expected.len(), 3);
    // The trailer's header, name and padding end here; only the block padding follows.
    let trailer_end = full
        .windows(TRAILER.len())
        .position(|w| w == TRAILER.as_bytes())
        .unwrap()
        + TRAILER.len()
        + 1;
    let trailer_end = align4(trailer_end).unwrap();
    for len in 0..full.len() {
        let cut = &full[..len];
        let Ok(archive) = Archive::new(cut) else {
            assert!(len < MAGIC.len());
            continue;
        };
        let got: Vec<_> = archive.entries().collect();
        if len >= trailer_end {
            assert_eq!(got, expected, "len {len}");
            continue;
        }
        // A correct prefix, then exactly one error.
        let (last, prefix) = got.split_last().expect("an error");
        assert!(last.is_err(), "len {len}: {last:?}");
        assert!(prefix.len() <= expected.len());
        assert_eq!(prefix, &expected[..prefix.len()], "len {len}");
        // `find` agrees: found if the file lies in the prefix, otherwise the error.
        let found = archive.find("etc/motd");
        if prefix.len() == 3 {
            assert!(found.unwrap().is_some());
        } else {
            assert_eq!(found, Err(last.unwrap_err()));
        }
    }
}

#[test]
fn every_single_byte_corruption_never_panics() {
    let full = three_files();
    for i in 0..full.len().min(600) {
        for mask in [0x01, 0x10, 0x80, 0xff] {
            let mut bytes = full.clone();
            bytes[i] ^= mask;
            if let Ok(archive) = Archive::new(&bytes) {
                let _ = archive.entries().count();
                let _ = archive.find("etc/motd");
            }
        }
    }
}

//! Validation of a static ELF executable into a [`LoadPlan`].
//!
//! This module owns the decision whether a file may become a program image: it checks every ELF
//! header field that matters, every program header, and the placement of every loadable segment
//! against the caller's [`Limits`], and reduces the result to a plan (entry point, and for each
//! segment: where it goes, how much of it comes from the file, with which permissions). Parsing of
//! the program header table is done by the `elf` crate; every check is explicit here, before or
//! after it.
//!
//! It must never map, allocate, copy or panic, whatever the input: the executable is untrusted,
//! all arithmetic on its fields is checked, and each rejection is its own [`ElfError`] variant with
//! the offending values.
//!
//! # Policy
//!
//! - Only `ELFCLASS64`, little-endian, version 1, `ET_EXEC` files for the expected [`Machine`].
//! - **OS ABI: `ELFOSABI_SYSV` (0) only, with ABI version 0.** `ELFOSABI_GNU` (3) announces GNU
//!   extensions (IFUNC, unique symbols) that need runtime support we do not provide; our own
//!   toolchain (rustc/rust-lld) writes 0.
//! - Program header types:
//!   - `PT_LOAD`: validated and planned. A `PT_LOAD` with `p_memsz == 0` and `p_filesz == 0`
//!     occupies nothing and is skipped without further checks.
//!   - `PT_INTERP`, `PT_DYNAMIC`: refused, they need a dynamic loader.
//!   - `PT_TLS`: refused, thread-local storage is not supported.
//!   - `PT_GNU_STACK`: refused if it asks for an executable stack; otherwise ignored (stacks are
//!     always read-write, never executable).
//!   - `PT_SHLIB`: refused (reserved, "does not conform to the ABI").
//!   - `PT_NULL`, `PT_NOTE`, `PT_PHDR`, `PT_GNU_RELRO`, `PT_GNU_EH_FRAME`, `PT_GNU_PROPERTY` and
//!     any other OS- or processor-specific type: ignored. (`PT_PHDR` only serves a dynamic loader;
//!     `PT_GNU_RELRO` asks to write-protect data after relocation, and a static executable is not
//!     relocated by us, so its pages keep the permissions of their `PT_LOAD`.)
//! - Segment indices in errors are indices in the program header table (not among `PT_LOAD`s).
//! - Segments are placed at page granularity: a segment occupies the pages from
//!   `vaddr` rounded down to `vaddr + mem_size` rounded up; two segments may not share a page.

use core::fmt;

use elf::ElfBytes;
use elf::abi;
use elf::endian::LittleEndian;

/// The most loadable (`PT_LOAD`) segments a plan holds.
pub const MAX_SEGMENTS: usize = 8;
/// The most program headers (of any type) an executable may have.
pub const MAX_PROGRAM_HEADERS: usize = 64;

/// Size of the ELF64 file header.
const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
const PHDR_SIZE: usize = 56;

/// The instruction set an executable must be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// `EM_X86_64` (62).
    X86_64,
    /// `EM_AARCH64` (183).
    Aarch64,
}

impl Machine {
    /// The `e_machine` value of this machine.
    pub const fn e_machine(self) -> u16 {
        match self {
            Self::X86_64 => abi::EM_X86_64,
            Self::Aarch64 => abi::EM_AARCH64,
        }
    }
}

/// Access permissions of a segment, from its `p_flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentFlags {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub execute: bool,
}

impl SegmentFlags {
    /// Decodes the permission bits of `p_flags` (other bits are ignored).
    pub const fn from_p_flags(p_flags: u32) -> Self {
        Self {
            read: p_flags & abi::PF_R != 0,
            write: p_flags & abi::PF_W != 0,
            execute: p_flags & abi::PF_X != 0,
        }
    }
}

/// One loadable segment: `mem_size` bytes at `vaddr`, of which the first `file_size` come from
/// the file at `file_offset` and the rest are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// First virtual address of the segment (not necessarily page-aligned).
    pub vaddr: u64,
    /// Size in memory, in bytes (never 0 in a plan).
    pub mem_size: u64,
    /// Offset of the segment's file bytes in the executable.
    pub file_offset: u64,
    /// Number of bytes taken from the file (`<= mem_size`); the rest is zero-filled.
    pub file_size: u64,
    /// Access permissions (never writable and executable at once in a plan).
    pub flags: SegmentFlags,
}

const EMPTY_SEGMENT: Segment = Segment {
    vaddr: 0,
    mem_size: 0,
    file_offset: 0,
    file_size: 0,
    flags: SegmentFlags {
        read: false,
        write: false,
        execute: false,
    },
};

/// What [`plan`] found: where execution starts and what to map. Every segment in it is inside the
/// user range, page-disjoint from the others, within the file, and not both writable and
/// executable; the entry point is in an executable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The entry point (`e_entry`).
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
    page_size: u64,
}

impl LoadPlan {
    /// The loadable segments, in program header order (1 to [`MAX_SEGMENTS`] of them).
    pub fn segments(&self) -> &[Segment] {
        self.segments.get(..self.count).unwrap_or(&[])
    }

    /// The page size the plan was checked against ([`Limits::page_size`]).
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The page-aligned address range `[start, end)` that `seg` occupies: `vaddr` rounded down and
    /// `vaddr + mem_size` rounded up to the plan's page size. For a segment of this plan the
    /// result is exact; for any other segment the arithmetic saturates instead of overflowing.
    pub fn page_range(&self, seg: &Segment) -> (u64, u64) {
        page_range(seg, self.page_size).unwrap_or((
            page_floor(seg.vaddr, self.page_size),
            page_floor(u64::MAX, self.page_size),
        ))
    }
}

/// The address-space constraints an executable must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Lowest user address a segment may occupy (page-aligned; typically above page 0).
    pub user_start: u64,
    /// End (exclusive) of the user range (page-aligned).
    pub user_end: u64,
    /// The page size: a power of two.
    pub page_size: u64,
    /// The largest executable accepted, in bytes.
    pub max_file_bytes: u64,
}

/// Why an executable was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The caller's [`Limits`] are inconsistent (page size not a power of two, range not
    /// page-aligned or empty).
    BadLimits {
        /// The limits given.
        limits: Limits,
    },
    /// The file is larger than [`Limits::max_file_bytes`].
    FileTooLarge {
        /// File size in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The file is shorter than an ELF64 header.
    TooShort {
        /// File size in bytes.
        size: u64,
    },
    /// The file does not start with `\x7fELF`.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// `EI_CLASS` is not `ELFCLASS64`.
    NotElf64 {
        /// The `EI_CLASS` byte.
        class: u8,
    },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    NotLittleEndian {
        /// The `EI_DATA` byte.
        data: u8,
    },
    /// `EI_VERSION` or `e_version` is not 1 (`EV_CURRENT`).
    BadVersion {
        /// The `EI_VERSION` byte.
        ident_version: u8,
        /// The `e_version` field.
        version: u32,
    },
    /// `EI_OSABI` is not `ELFOSABI_SYSV` (0) or `EI_ABIVERSION` is not 0.
    BadOsAbi {
        /// The `EI_OSABI` byte.
        os_abi: u8,
        /// The `EI_ABIVERSION` byte.
        abi_version: u8,
    },
    /// `e_type` is not `ET_EXEC`: a position-independent executable or shared object (`ET_DYN`),
    /// a relocatable object (`ET_REL`), a core dump or something else.
    NotStaticExecutable {
        /// The `e_type` field.
        e_type: u16,
    },
    /// `e_machine` is not the expected machine.
    WrongMachine {
        /// The machine asked for.
        expected: Machine,
        /// The `e_machine` field.
        found: u16,
    },
    /// `e_ehsize` is not 64.
    BadHeaderSize {
        /// The `e_ehsize` field.
        size: u16,
    },
    /// `e_phentsize` is not 56.
    BadProgramHeaderSize {
        /// The `e_phentsize` field.
        size: u16,
    },
    /// There is no program header table (`e_phnum == 0` or `e_phoff == 0`).
    NoProgramHeaders,
    /// More than [`MAX_PROGRAM_HEADERS`] program headers (this includes `PN_XNUM`).
    TooManyProgramHeaders {
        /// The `e_phnum` field.
        count: u16,
    },
    /// The program header table does not lie within the file.
    ProgramHeadersOutOfBounds {
        /// The `e_phoff` field.
        offset: u64,
        /// The `e_phnum` field.
        count: u16,
        /// File size in bytes.
        file_size: u64,
    },
    /// The `elf` crate rejected the file for a reason not covered by the checks above (in
    /// practice: a section header table out of bounds or with a bad entry size).
    Malformed {
        /// What the `elf` crate reported.
        reason: &'static str,
    },
    /// A `PT_INTERP` or `PT_DYNAMIC` program header: the file needs a dynamic loader.
    NeedsDynamicLoader {
        /// Program header index.
        index: usize,
        /// Its `p_type`.
        p_type: u32,
    },
    /// A `PT_TLS` program header: thread-local storage is not supported.
    ThreadLocalStorage {
        /// Program header index.
        index: usize,
    },
    /// A `PT_GNU_STACK` program header asking for an executable stack.
    ExecutableStack {
        /// Program header index.
        index: usize,
    },
    /// A program header type that is refused (`PT_SHLIB`).
    UnsupportedSegment {
        /// Program header index.
        index: usize,
        /// Its `p_type`.
        p_type: u32,
    },
    /// No `PT_LOAD` segment with a non-zero memory size.
    NoLoadSegments,
    /// More than [`MAX_SEGMENTS`] non-empty `PT_LOAD` segments.
    TooManyLoadSegments {
        /// How many there are.
        count: usize,
    },
    /// A segment takes more bytes from the file than it occupies in memory.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment's file bytes are not within the file.
    SegmentOutsideFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        file_size: u64,
        /// File size in bytes.
        file_len: u64,
    },
    /// `p_vaddr + p_memsz` overflows.
    AddressOverflow {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment lies (partly) outside `[user_start, user_end)`.
    OutsideUserRange {
        /// Program header index.
        index: usize,
        /// First address of the segment.
        start: u64,
        /// End (exclusive) of the segment.
        end: u64,
        /// [`Limits::user_start`].
        user_start: u64,
        /// [`Limits::user_end`].
        user_end: u64,
    },
    /// `p_align` is neither 0, 1 nor a power of two.
    BadAlignment {
        /// Program header index.
        index: usize,
        /// `p_align`.
        align: u64,
    },
    /// `p_align >= page_size` but `p_vaddr` and `p_offset` differ modulo the page size.
    MisalignedSegment {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_offset`.
        offset: u64,
        /// [`Limits::page_size`].
        page_size: u64,
    },
    /// A segment is both writable and executable.
    WritableAndExecutable {
        /// Program header index.
        index: usize,
        /// First address of the segment.
        start: u64,
        /// End (exclusive) of the segment.
        end: u64,
    },
    /// A segment has none of read, write and execute.
    NoPermissions {
        /// Program header index.
        index: usize,
    },
    /// Two segments occupy a common page.
    Overlap {
        /// Program header index of the earlier segment.
        first: usize,
        /// Program header index of the later segment.
        second: usize,
    },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadLimits { limits } => write!(
                f,
                "ELF: bad loader limits (user range {:#x}..{:#x}, page size {:#x})",
                limits.user_start, limits.user_end, limits.page_size
            ),
            Self::FileTooLarge { size, max } => {
                write!(f, "ELF: file is {size} bytes, more than the limit of {max}")
            }
            Self::TooShort { size } => {
                write!(f, "ELF: file is {size} bytes, shorter than an ELF64 header")
            }
            Self::BadMagic { found } => write!(f, "ELF: bad magic {found:02x?}"),
            Self::NotElf64 { class } => write!(f, "ELF: class {class} is not ELFCLASS64"),
            Self::NotLittleEndian { data } => {
                write!(f, "ELF: data encoding {data} is not little-endian")
            }
            Self::BadVersion {
                ident_version,
                version,
            } => write!(
                f,
                "ELF: version (EI_VERSION {ident_version}, e_version {version}) is not 1"
            ),
            Self::BadOsAbi {
                os_abi,
                abi_version,
            } => write!(
                f,
                "ELF: OS ABI {os_abi} version {abi_version} is not SYSV (0) version 0"
            ),
            Self::NotStaticExecutable { e_type } => {
                let what = match e_type {
                    abi::ET_DYN => " (ET_DYN: position-independent executable or shared object)",
                    abi::ET_REL => " (ET_REL: relocatable object)",
                    abi::ET_CORE => " (ET_CORE: core dump)",
                    _ => "",
                };
                write!(f, "ELF: not a static executable: e_type {e_type}{what}")
            }
            Self::WrongMachine { expected, found } => write!(
                f,
                "ELF: machine {found} is not {expected:?} ({})",
                expected.e_machine()
            ),
            Self::BadHeaderSize { size } => write!(f, "ELF: e_ehsize {size} is not 64"),
            Self::BadProgramHeaderSize { size } => write!(f, "ELF: e_phentsize {size} is not 56"),
            Self::NoProgramHeaders => write!(f, "ELF: no program header table"),
            Self::TooManyProgramHeaders { count } => write!(
                f,
                "ELF: {count} program headers, more than {MAX_PROGRAM_HEADERS}"
            ),
            Self::ProgramHeadersOutOfBounds {
                offset,
                count,
                file_size,
            } => write!(
                f,
                "ELF: {count} program headers at offset {offset:#x} exceed the file ({file_size} bytes)"
            ),
            Self::Malformed { reason } => write!(f, "ELF: malformed: {reason}"),
            Self::NeedsDynamicLoader { index, p_type } => {
                let what = if p_type == abi::PT_INTERP {
                    "PT_INTERP"
                } else {
                    "PT_DYNAMIC"
                };
                write!(
                    f,
                    "ELF: segment {index} is {what}: a dynamic loader is needed, not supported"
                )
            }
            Self::ThreadLocalStorage { index } => write!(
                f,
                "ELF: segment {index} is PT_TLS: thread-local storage not supported"
            ),
            Self::ExecutableStack { index } => write!(
                f,
                "ELF: segment {index} (PT_GNU_STACK) asks for an executable stack"
            ),
            Self::UnsupportedSegment { index, p_type } => {
                write!(f, "ELF: segment {index} has unsupported type {p_type:#x}")
            }
            Self::NoLoadSegments => write!(f, "ELF: no loadable segment"),
            Self::TooManyLoadSegments { count } => write!(
                f,
                "ELF: {count} loadable segments, more than {MAX_SEGMENTS}"
            ),
            Self::FileSizeExceedsMemSize {
                index,
                file_size,
                mem_size,
            } => write!(
                f,
                "ELF: segment {index} has file size {file_size:#x} > memory size {mem_size:#x}"
            ),
            Self::SegmentOutsideFile {
                index,
                offset,
                file_size,
                file_len,
            } => write!(
                f,
                "ELF: segment {index} file bytes {offset:#x}+{file_size:#x} exceed the file ({file_len} bytes)"
            ),
            Self::AddressOverflow {
                index,
                vaddr,
                mem_size,
            } => write!(
                f,
                "ELF: segment {index} at {vaddr:#x} of size {mem_size:#x} overflows the address space"
            ),
            Self::OutsideUserRange {
                index,
                start,
                end,
                user_start,
                user_end,
            } => write!(
                f,
                "ELF: segment {index} at {start:#x}..{end:#x} is outside the user range {user_start:#x}..{user_end:#x}"
            ),
            Self::BadAlignment { index, align } => write!(
                f,
                "ELF: segment {index} alignment {align:#x} is not a power of two"
            ),
            Self::MisalignedSegment {
                index,
                vaddr,
                offset,
                page_size,
            } => write!(
                f,
                "ELF: segment {index} address {vaddr:#x} and offset {offset:#x} differ modulo the page size {page_size:#x}"
            ),
            Self::WritableAndExecutable { index, start, end } => write!(
                f,
                "ELF: segment {index} at {start:#x}..{end:#x} is writable and executable"
            ),
            Self::NoPermissions { index } => write!(
                f,
                "ELF: segment {index} is neither readable, writable nor executable"
            ),
            Self::Overlap { first, second } => {
                write!(f, "ELF: segments {first} and {second} share a page")
            }
            Self::EntryNotExecutable { entry } => write!(
                f,
                "ELF: entry point {entry:#x} is not in an executable segment"
            ),
        }
    }
}

/// `addr` rounded down to a multiple of `page_size` (a power of two).
const fn page_floor(addr: u64, page_size: u64) -> u64 {
    addr & !page_size.wrapping_sub(1)
}

/// The page-aligned range a segment occupies, or `None` if it overflows.
fn page_range(seg: &Segment, page_size: u64) -> Option<(u64, u64)> {
    let end = seg.vaddr.checked_add(seg.mem_size)?;
    let mask = page_size.checked_sub(1)?;
    let end = end.checked_add(mask)? & !mask;
    Some((seg.vaddr & !mask, end))
}

/// Reads a little-endian `u16` at `off` (the caller checked the bounds; 0 otherwise).
fn le16(bytes: &[u8], off: usize) -> u16 {
    match bytes.get(off..off.saturating_add(2)) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

/// Reads a little-endian `u32` at `off` (the caller checked the bounds; 0 otherwise).
fn le32(bytes: &[u8], off: usize) -> u32 {
    match bytes.get(off..off.saturating_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Reads a little-endian `u64` at `off` (the caller checked the bounds; 0 otherwise).
fn le64(bytes: &[u8], off: usize) -> u64 {
    let mut raw = [0u8; 8];
    if let Some(src) = bytes.get(off..off.saturating_add(8)) {
        raw.copy_from_slice(src);
    }
    u64::from_le_bytes(raw)
}

/// A short description of an `elf` crate error, for [`ElfError::Malformed`].
fn describe(e: &elf::ParseError) -> &'static str {
    use elf::ParseError as P;
    match e {
        P::BadMagic(_) => "bad magic",
        P::UnsupportedElfClass(_) => "unsupported class",
        P::UnsupportedElfEndianness(_) => "unsupported endianness",
        P::UnsupportedVersion(_) => "unsupported version",
        P::BadOffset(_) => "offset out of bounds",
        P::StringTableMissingNul(_) => "string table without NUL",
        P::BadEntsize(_) => "bad table entry size",
        P::UnexpectedSectionType(_) => "unexpected section type",
        P::UnexpectedSegmentType(_) => "unexpected segment type",
        P::UnexpectedAlignment(_) => "unexpected alignment",
        P::SliceReadError(_) => "table out of file bounds",
        P::IntegerOverflow => "integer overflow in table bounds",
        P::Utf8Error(_) => "string not UTF-8",
        P::TryFromSliceError(_) => "truncated structure",
        P::TryFromIntError(_) => "value too large for this machine",
        // `IOError` exists only if another crate turns on the `elf` crate's `std` feature.
        #[allow(unreachable_patterns)]
        _ => "parse error",
    }
}

/// Checks the ELF file header fields that `plan` relies on, from the raw bytes.
fn check_header(bytes: &[u8], machine: Machine) -> Result<(), ElfError> {
    let file_size = bytes.len() as u64;
    let ident = match bytes.get(..EHDR_SIZE) {
        Some(ehdr) => ehdr,
        None => return Err(ElfError::TooShort { size: file_size }),
    };
    let found = [ident[0], ident[1], ident[2], ident[3]];
    if found != *b"\x7fELF" {
        return Err(ElfError::BadMagic { found });
    }
    if ident[abi::EI_CLASS] != abi::ELFCLASS64 {
        return Err(ElfError::NotElf64 {
            class: ident[abi::EI_CLASS],
        });
    }
    if ident[abi::EI_DATA] != abi::ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian {
            data: ident[abi::EI_DATA],
        });
    }
    let ident_version = ident[abi::EI_VERSION];
    let version = le32(bytes, 20);
    if ident_version != abi::EV_CURRENT || version != u32::from(abi::EV_CURRENT) {
        return Err(ElfError::BadVersion {
            ident_version,
            version,
        });
    }
    let (os_abi, abi_version) = (ident[abi::EI_OSABI], ident[abi::EI_ABIVERSION]);
    if os_abi != abi::ELFOSABI_SYSV || abi_version != 0 {
        return Err(ElfError::BadOsAbi {
            os_abi,
            abi_version,
        });
    }
    let e_type = le16(bytes, 16);
    if e_type != abi::ET_EXEC {
        return Err(ElfError::NotStaticExecutable { e_type });
    }
    let e_machine = le16(bytes, 18);
    if e_machine != machine.e_machine() {
        return Err(ElfError::WrongMachine {
            expected: machine,
            found: e_machine,
        });
    }
    let e_ehsize = le16(bytes, 52);
    if usize::from(e_ehsize) != EHDR_SIZE {
        return Err(ElfError::BadHeaderSize { size: e_ehsize });
    }
    let e_phentsize = le16(bytes, 54);
    if usize::from(e_phentsize) != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaderSize { size: e_phentsize });
    }
    let e_phoff = le64(bytes, 32);
    let e_phnum = le16(bytes, 56);
    if e_phnum == 0 || e_phoff == 0 {
        return Err(ElfError::NoProgramHeaders);
    }
    if usize::from(e_phnum) > MAX_PROGRAM_HEADERS {
        return Err(ElfError::TooManyProgramHeaders { count: e_phnum });
    }
    let table_end = (PHDR_SIZE as u64)
        .checked_mul(u64::from(e_phnum))
        .and_then(|size| e_phoff.checked_add(size));
    if table_end.is_none_or(|end| end > file_size) {
        return Err(ElfError::ProgramHeadersOutOfBounds {
            offset: e_phoff,
            count: e_phnum,
            file_size,
        });
    }
    Ok(())
}

/// Checks that `limits` are usable.
fn check_limits(limits: &Limits) -> Result<(), ElfError> {
    let page = limits.page_size;
    let ok = page.is_power_of_two()
        && limits.user_start.is_multiple_of(page)
        && limits.user_end.is_multiple_of(page)
        && limits.user_start < limits.user_end;
    if ok {
        Ok(())
    } else {
        Err(ElfError::BadLimits { limits: *limits })
    }
}

/// Checks one `PT_LOAD` program header and turns it into a [`Segment`].
fn check_load(
    index: usize,
    ph: &elf::segment::ProgramHeader,
    file_len: u64,
    limits: &Limits,
) -> Result<Segment, ElfError> {
    if ph.p_filesz > ph.p_memsz {
        return Err(ElfError::FileSizeExceedsMemSize {
            index,
            file_size: ph.p_filesz,
            mem_size: ph.p_memsz,
        });
    }
    if ph
        .p_offset
        .checked_add(ph.p_filesz)
        .is_none_or(|end| end > file_len)
    {
        return Err(ElfError::SegmentOutsideFile {
            index,
            offset: ph.p_offset,
            file_size: ph.p_filesz,
            file_len,
        });
    }
    let Some(end) = ph.p_vaddr.checked_add(ph.p_memsz) else {
        return Err(ElfError::AddressOverflow {
            index,
            vaddr: ph.p_vaddr,
            mem_size: ph.p_memsz,
        });
    };
    // With page-aligned limits, this also keeps the page-rounded range inside them.
    if ph.p_vaddr < limits.user_start || end > limits.user_end {
        return Err(ElfError::OutsideUserRange {
            index,
            start: ph.p_vaddr,
            end,
            user_start: limits.user_start,
            user_end: limits.user_end,
        });
    }
    let align = ph.p_align;
    if align > 1 && !align.is_power_of_two() {
        return Err(ElfError::BadAlignment { index, align });
    }
    let page = limits.page_size;
    if align >= page && ph.p_vaddr % page != ph.p_offset % page {
        return Err(ElfError::MisalignedSegment {
            index,
            vaddr: ph.p_vaddr,
            offset: ph.p_offset,
            page_size: page,
        });
    }
    let flags = SegmentFlags::from_p_flags(ph.p_flags);
    if flags.write && flags.execute {
        return Err(ElfError::WritableAndExecutable {
            index,
            start: ph.p_vaddr,
            end,
        });
    }
    if !(flags.read || flags.write || flags.execute) {
        return Err(ElfError::NoPermissions { index });
    }
    Ok(Segment {
        vaddr: ph.p_vaddr,
        mem_size: ph.p_memsz,
        file_offset: ph.p_offset,
        file_size: ph.p_filesz,
        flags,
    })
}

/// Validates `bytes` as a static executable for `machine` that fits `limits`, and returns what to
/// load. See the module documentation for the policy; every rejection is an [`ElfError`].
pub fn plan(bytes: &[u8], machine: Machine, limits: &Limits) -> Result<LoadPlan, ElfError> {
    check_limits(limits)?;
    let file_len = bytes.len() as u64;
    if file_len > limits.max_file_bytes {
        return Err(ElfError::FileTooLarge {
            size: file_len,
            max: limits.max_file_bytes,
        });
    }
    check_header(bytes, machine)?;

    let file = ElfBytes::<LittleEndian>::minimal_parse(bytes).map_err(|e| ElfError::Malformed {
        reason: describe(&e),
    })?;
    let Some(table) = file.segments() else {
        return Err(ElfError::NoProgramHeaders);
    };

    let mut segments = [EMPTY_SEGMENT; MAX_SEGMENTS];
    let mut indices = [0usize; MAX_SEGMENTS];
    let mut count = 0usize;
    let mut total_loads = 0usize;
    for index in 0..table.len() {
        let ph = table.get(index).map_err(|e| ElfError::Malformed {
            reason: describe(&e),
        })?;
        match ph.p_type {
            // An empty `PT_LOAD` occupies nothing: skipped, whatever its other fields.
            abi::PT_LOAD if ph.p_memsz == 0 && ph.p_filesz == 0 => {}
            abi::PT_LOAD => {
                let seg = check_load(index, &ph, file_len, limits)?;
                total_loads += 1;
                let Some(slot) = segments.get_mut(count) else {
                    continue;
                };
                *slot = seg;
                if let Some(i) = indices.get_mut(count) {
                    *i = index;
                }
                count += 1;
            }
            abi::PT_INTERP | abi::PT_DYNAMIC => {
                return Err(ElfError::NeedsDynamicLoader {
                    index,
                    p_type: ph.p_type,
                });
            }
            abi::PT_TLS => return Err(ElfError::ThreadLocalStorage { index }),
            abi::PT_SHLIB => {
                return Err(ElfError::UnsupportedSegment {
                    index,
                    p_type: ph.p_type,
                });
            }
            abi::PT_GNU_STACK if ph.p_flags & abi::PF_X != 0 => {
                return Err(ElfError::ExecutableStack { index });
            }
            _ => {}
        }
    }
    if total_loads == 0 {
        return Err(ElfError::NoLoadSegments);
    }
    if total_loads > MAX_SEGMENTS {
        return Err(ElfError::TooManyLoadSegments { count: total_loads });
    }

    let page = limits.page_size;
    let placed = segments.get(..count).unwrap_or(&[]);
    for (b, seg_b) in placed.iter().enumerate() {
        let (b_start, b_end) = page_range(seg_b, page).unwrap_or((0, u64::MAX));
        for (a, seg_a) in placed.iter().enumerate().take(b) {
            let (a_start, a_end) = page_range(seg_a, page).unwrap_or((0, u64::MAX));
            if a_start < b_end && b_start < a_end {
                return Err(ElfError::Overlap {
                    first: indices.get(a).copied().unwrap_or(a),
                    second: indices.get(b).copied().unwrap_or(b),
                });
            }
        }
    }

    let entry = file.ehdr.e_entry;
    let in_exec = placed
        .iter()
        .any(|s| s.flags.execute && entry >= s.vaddr && entry - s.vaddr < s.mem_size);
    if !in_exec {
        return Err(ElfError::EntryNotExecutable { entry });
    }
    Ok(LoadPlan {
        entry,
        segments,
        count,
        page_size: page,
    })
}

/// The bytes of `seg` that come from the file (`file_size` bytes at `file_offset`). For a segment
/// of a plan made from these same `bytes` this is exact; for anything else out of bounds, it is
/// empty rather than a panic.
pub fn segment_bytes<'a>(bytes: &'a [u8], seg: &Segment) -> &'a [u8] {
    let range = usize::try_from(seg.file_offset).ok().and_then(|start| {
        let len = usize::try_from(seg.file_size).ok()?;
        Some(start..start.checked_add(len)?)
    });
    range.and_then(|r| bytes.get(r)).unwrap_or(&[])
}

#[cfg(test)]
mod tests;

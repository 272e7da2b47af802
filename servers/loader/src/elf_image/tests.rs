//! Host tests of the ELF validator, on executables assembled byte by byte.

use super::*;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

const R: u32 = abi::PF_R;
const W: u32 = abi::PF_W;
const X: u32 = abi::PF_X;

const LIMITS: Limits = Limits {
    user_start: 0x1000,
    user_end: 0x0000_8000_0000_0000,
    page_size: 0x1000,
    max_file_bytes: 1 << 20,
};

/// One program header to assemble.
#[derive(Clone, Copy)]
struct Ph {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

const fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
    Ph {
        p_type: abi::PT_LOAD,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
        align: 0x1000,
    }
}

const fn other(p_type: u32, flags: u32) -> Ph {
    Ph {
        p_type,
        flags,
        offset: 0,
        vaddr: 0,
        filesz: 0,
        memsz: 0,
        align: 0x10,
    }
}

const TEXT: Ph = load(R | X, 0x1000, 0x40_1000, 0x100, 0x100);
const DATA: Ph = load(R | W, 0x2000, 0x40_2000, 0x10, 0x2000);
const STACK: Ph = other(abi::PT_GNU_STACK, R | W);
const FILE_LEN: usize = 0x2010;
const ENTRY: u64 = 0x40_1000;

/// Assembles an ELF64 little-endian x86_64 `ET_EXEC` with the given program headers at offset
/// 64, padded to `len` bytes; segment file bytes are filled with a recognisable pattern.
fn assemble(entry: u64, phdrs: &[Ph], len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(64 + 56 * phdrs.len())];
    for (i, byte) in b.iter_mut().enumerate().skip(64) {
        *byte = (i % 251) as u8;
    }
    b[..16].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    put16(&mut b, 16, abi::ET_EXEC);
    put16(&mut b, 18, abi::EM_X86_64);
    put32(&mut b, 20, 1);
    put64(&mut b, 24, entry);
    put64(&mut b, 32, 64); // e_phoff
    put64(&mut b, 40, 0); // e_shoff
    put32(&mut b, 48, 0); // e_flags
    put16(&mut b, 52, 64);
    put16(&mut b, 54, 56);
    put16(&mut b, 56, phdrs.len() as u16);
    put16(&mut b, 58, 64); // e_shentsize
    put16(&mut b, 60, 0); // e_shnum
    put16(&mut b, 62, 0); // e_shstrndx
    for (i, ph) in phdrs.iter().enumerate() {
        let o = 64 + 56 * i;
        put32(&mut b, o, ph.p_type);
        put32(&mut b, o + 4, ph.flags);
        put64(&mut b, o + 8, ph.offset);
        put64(&mut b, o + 16, ph.vaddr);
        put64(&mut b, o + 24, ph.vaddr); // p_paddr
        put64(&mut b, o + 32, ph.filesz);
        put64(&mut b, o + 40, ph.memsz);
        put64(&mut b, o + 48, ph.align);
    }
    b
}

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

fn valid() -> Vec<u8> {
    assemble(
        ENTRY,
        &[TEXT, DATA, STACK, other(abi::PT_NOTE, R)],
        FILE_LEN,
    )
}

/// The valid file with its program headers replaced by `phdrs`.
fn with(phdrs: &[Ph]) -> Vec<u8> {
    assemble(ENTRY, phdrs, FILE_LEN)
}

fn run(bytes: &[u8]) -> Result<LoadPlan, ElfError> {
    plan(bytes, Machine::X86_64, &LIMITS)
}

fn err(bytes: &[u8]) -> ElfError {
    run(bytes).expect_err("must be rejected")
}

#[test]
fn minimal_valid_executable_gives_exact_plan() {
    let bytes = valid();
    let p = run(&bytes).unwrap();
    assert_eq!(p.entry, ENTRY);
    assert_eq!(p.page_size(), 0x1000);
    let rx = SegmentFlags {
        read: true,
        write: false,
        execute: true,
    };
    let rw = SegmentFlags {
        read: true,
        write: true,
        execute: false,
    };
    assert_eq!(
        p.segments(),
        [
            Segment {
                vaddr: 0x40_1000,
                mem_size: 0x100,
                file_offset: 0x1000,
                file_size: 0x100,
                flags: rx,
            },
            Segment {
                vaddr: 0x40_2000,
                mem_size: 0x2000,
                file_offset: 0x2000,
                file_size: 0x10,
                flags: rw,
            },
        ]
    );
    assert_eq!(p.page_range(&p.segments()[0]), (0x40_1000, 0x40_2000));
    assert_eq!(p.page_range(&p.segments()[1]), (0x40_2000, 0x40_4000));
    assert_eq!(
        segment_bytes(&bytes, &p.segments()[0]),
        &bytes[0x1000..0x1100]
    );
    assert_eq!(
        segment_bytes(&bytes, &p.segments()[1]),
        &bytes[0x2000..0x2010]
    );
    // Same file for the other machine.
    let mut arm = bytes.clone();
    put16(&mut arm, 18, abi::EM_AARCH64);
    assert_eq!(plan(&arm, Machine::Aarch64, &LIMITS), Ok(p));
}

#[test]
fn linker_style_layout_is_accepted() {
    // Headers inside the first (read-only) segment, unaligned segment starts sharing no page,
    // PT_PHDR, PT_GNU_RELRO, small alignments, an empty PT_LOAD, execute-only text.
    let phdrs = [
        Ph {
            p_type: abi::PT_PHDR,
            flags: R,
            offset: 64,
            vaddr: 0x20_0040,
            filesz: 56 * 7,
            memsz: 56 * 7,
            align: 8,
        },
        load(R, 0, 0x20_0000, 0x300, 0x300),
        load(X, 0x1300, 0x20_1300, 0x80, 0x80),
        load(0, 0, 0x30_0000, 0, 0),
        Ph {
            align: 0x10,
            ..load(R | W, 0x1385, 0x20_2385, 0x3, 0x1000)
        },
        other(abi::PT_GNU_RELRO, R),
        other(abi::PT_GNU_PROPERTY, R),
    ];
    let bytes = assemble(0x20_1310, &phdrs, 0x1388);
    let p = run(&bytes).unwrap();
    assert_eq!(p.segments().len(), 3);
    assert_eq!(p.page_range(&p.segments()[2]), (0x20_2000, 0x20_4000));
    assert_eq!(
        segment_bytes(&bytes, &p.segments()[2]),
        &bytes[0x1385..0x1388]
    );
}

#[test]
fn segment_bytes_never_panics() {
    let bytes = valid();
    let huge = Segment {
        file_offset: u64::MAX,
        file_size: 2,
        ..Segment::default()
    };
    assert_eq!(segment_bytes(&bytes, &huge), &[] as &[u8]);
    let past = Segment {
        file_offset: 0x2000,
        file_size: 0x11,
        ..Segment::default()
    };
    assert_eq!(segment_bytes(&bytes, &past), &[] as &[u8]);
    let p = run(&bytes).unwrap();
    let wild = Segment {
        vaddr: u64::MAX - 1,
        mem_size: 5,
        ..Segment::default()
    };
    let _ = p.page_range(&wild);
}

#[test]
fn bad_limits() {
    let bytes = valid();
    for limits in [
        Limits {
            page_size: 0,
            ..LIMITS
        },
        Limits {
            page_size: 0x1800,
            ..LIMITS
        },
        Limits {
            user_start: 0x1001,
            ..LIMITS
        },
        Limits {
            user_end: 0x7fff,
            ..LIMITS
        },
        Limits {
            user_end: 0x1000,
            ..LIMITS
        },
    ] {
        assert_eq!(
            plan(&bytes, Machine::X86_64, &limits),
            Err(ElfError::BadLimits { limits })
        );
    }
}

#[test]
fn file_too_large() {
    let limits = Limits {
        max_file_bytes: 0x2000,
        ..LIMITS
    };
    assert_eq!(
        plan(&valid(), Machine::X86_64, &limits),
        Err(ElfError::FileTooLarge {
            size: FILE_LEN as u64,
            max: 0x2000
        })
    );
}

#[test]
fn too_short() {
    assert_eq!(err(&valid()[..63]), ElfError::TooShort { size: 63 });
    assert_eq!(err(&[]), ElfError::TooShort { size: 0 });
}

#[test]
fn bad_magic() {
    let mut b = valid();
    b[1] = b'e';
    assert_eq!(
        err(&b),
        ElfError::BadMagic {
            found: [0x7f, b'e', b'L', b'F']
        }
    );
}

#[test]
fn not_elf64() {
    let mut b = valid();
    b[4] = 1;
    assert_eq!(err(&b), ElfError::NotElf64 { class: 1 });
}

#[test]
fn not_little_endian() {
    let mut b = valid();
    b[5] = 2;
    assert_eq!(err(&b), ElfError::NotLittleEndian { data: 2 });
}

#[test]
fn bad_version() {
    let mut b = valid();
    b[6] = 0;
    assert_eq!(
        err(&b),
        ElfError::BadVersion {
            ident_version: 0,
            version: 1
        }
    );
    let mut b = valid();
    put32(&mut b, 20, 2);
    assert_eq!(
        err(&b),
        ElfError::BadVersion {
            ident_version: 1,
            version: 2
        }
    );
}

#[test]
fn bad_os_abi() {
    let mut b = valid();
    b[7] = abi::ELFOSABI_GNU;
    assert_eq!(
        err(&b),
        ElfError::BadOsAbi {
            os_abi: 3,
            abi_version: 0
        }
    );
    let mut b = valid();
    b[8] = 1;
    assert_eq!(
        err(&b),
        ElfError::BadOsAbi {
            os_abi: 0,
            abi_version: 1
        }
    );
}

#[test]
fn not_static_executable() {
    for e_type in [abi::ET_DYN, abi::ET_REL, abi::ET_CORE, abi::ET_NONE, 0xfe00] {
        let mut b = valid();
        put16(&mut b, 16, e_type);
        let e = err(&b);
        assert_eq!(e, ElfError::NotStaticExecutable { e_type });
        assert!(e.to_string().contains("not a static executable"), "{e}");
    }
    let mut b = valid();
    put16(&mut b, 16, abi::ET_DYN);
    assert_eq!(
        err(&b).to_string(),
        "ELF: not a static executable: e_type 3 (ET_DYN: position-independent executable or shared object)"
    );
}

#[test]
fn wrong_machine() {
    assert_eq!(
        plan(&valid(), Machine::Aarch64, &LIMITS),
        Err(ElfError::WrongMachine {
            expected: Machine::Aarch64,
            found: 62
        })
    );
    let mut b = valid();
    put16(&mut b, 18, 3);
    assert_eq!(
        err(&b),
        ElfError::WrongMachine {
            expected: Machine::X86_64,
            found: 3
        }
    );
}

#[test]
fn bad_header_size() {
    let mut b = valid();
    put16(&mut b, 52, 52);
    assert_eq!(err(&b), ElfError::BadHeaderSize { size: 52 });
}

#[test]
fn bad_program_header_size() {
    let mut b = valid();
    put16(&mut b, 54, 32);
    assert_eq!(err(&b), ElfError::BadProgramHeaderSize { size: 32 });
}

#[test]
fn no_program_headers() {
    let mut b = valid();
    put16(&mut b, 56, 0);
    assert_eq!(err(&b), ElfError::NoProgramHeaders);
    let mut b = valid();
    put64(&mut b, 32, 0);
    assert_eq!(err(&b), ElfError::NoProgramHeaders);
}

#[test]
fn too_many_program_headers() {
    for count in [MAX_PROGRAM_HEADERS as u16 + 1, 0xffff] {
        let mut b = valid();
        put16(&mut b, 56, count);
        assert_eq!(err(&b), ElfError::TooManyProgramHeaders { count });
    }
}

#[test]
fn program_headers_out_of_bounds() {
    for offset in [FILE_LEN as u64 - 55, u64::MAX - 10, 1 << 40] {
        let mut b = valid();
        put64(&mut b, 32, offset);
        assert_eq!(
            err(&b),
            ElfError::ProgramHeadersOutOfBounds {
                offset,
                count: 4,
                file_size: FILE_LEN as u64
            }
        );
    }
}

#[test]
fn malformed_section_headers() {
    let mut b = valid();
    put64(&mut b, 40, 0x10_0000); // e_shoff past the end
    put16(&mut b, 60, 3);
    assert!(
        matches!(err(&b), ElfError::Malformed { .. }),
        "{:?}",
        err(&b)
    );
    let mut b = valid();
    put64(&mut b, 40, 0x400);
    put16(&mut b, 58, 40); // e_shentsize
    put16(&mut b, 60, 1);
    assert_eq!(
        err(&b),
        ElfError::Malformed {
            reason: "bad table entry size"
        }
    );
    // An in-bounds section header table is fine.
    let mut b = valid();
    put64(&mut b, 40, 0x400);
    put16(&mut b, 60, 2);
    assert!(run(&b).is_ok());
}

#[test]
fn needs_dynamic_loader() {
    for p_type in [abi::PT_INTERP, abi::PT_DYNAMIC] {
        let b = with(&[TEXT, DATA, other(p_type, R)]);
        assert_eq!(err(&b), ElfError::NeedsDynamicLoader { index: 2, p_type });
    }
}

#[test]
fn thread_local_storage() {
    let b = with(&[TEXT, other(abi::PT_TLS, R), DATA]);
    let e = err(&b);
    assert_eq!(e, ElfError::ThreadLocalStorage { index: 1 });
    assert!(e.to_string().contains("thread-local storage not supported"));
}

#[test]
fn executable_stack() {
    let b = with(&[TEXT, DATA, other(abi::PT_GNU_STACK, R | W | X)]);
    assert_eq!(err(&b), ElfError::ExecutableStack { index: 2 });
}

#[test]
fn unsupported_segment() {
    let b = with(&[other(abi::PT_SHLIB, R), TEXT, DATA]);
    assert_eq!(
        err(&b),
        ElfError::UnsupportedSegment {
            index: 0,
            p_type: abi::PT_SHLIB
        }
    );
}

#[test]
fn no_load_segments() {
    assert_eq!(err(&with(&[STACK])), ElfError::NoLoadSegments);
    let empty = load(R, 0, 0x40_1000, 0, 0);
    assert_eq!(err(&with(&[empty, STACK])), ElfError::NoLoadSegments);
}

#[test]
fn too_many_load_segments() {
    let mut phdrs = vec![TEXT];
    for i in 0..MAX_SEGMENTS as u64 {
        phdrs.push(load(R, 0x1000, 0x50_0000 + 0x1000 * i, 0x10, 0x10));
    }
    assert_eq!(
        err(&with(&phdrs)),
        ElfError::TooManyLoadSegments {
            count: MAX_SEGMENTS + 1
        }
    );
    phdrs.pop();
    assert_eq!(run(&with(&phdrs)).unwrap().segments().len(), MAX_SEGMENTS);
}

#[test]
fn file_size_exceeds_mem_size() {
    let bad = load(R | W, 0x2000, 0x40_2000, 0x10, 0x8);
    assert_eq!(
        err(&with(&[TEXT, bad])),
        ElfError::FileSizeExceedsMemSize {
            index: 1,
            file_size: 0x10,
            mem_size: 0x8
        }
    );
}

#[test]
fn segment_outside_file() {
    for (offset, filesz) in [(0x2000, 0x11), (0x3000, 1), (u64::MAX - 0xfff, 0x1000)] {
        let bad = Ph {
            align: 1,
            ..load(R | W, offset, 0x40_2000, filesz, 0x2000)
        };
        assert_eq!(
            err(&with(&[TEXT, bad])),
            ElfError::SegmentOutsideFile {
                index: 1,
                offset,
                file_size: filesz,
                file_len: FILE_LEN as u64
            }
        );
    }
}

#[test]
fn address_overflow() {
    let vaddr = u64::MAX - 0xfff;
    let bad = load(R | W, 0x2000, vaddr, 0x10, 0x2000);
    assert_eq!(
        err(&with(&[TEXT, bad])),
        ElfError::AddressOverflow {
            index: 1,
            vaddr,
            mem_size: 0x2000
        }
    );
}

#[test]
fn outside_user_range() {
    for (vaddr, memsz) in [
        (0x0, 0x10),
        (0x800, 0x10),
        (LIMITS.user_end - 0x1000, 0x1001),
    ] {
        let bad = Ph {
            align: 1,
            ..load(R, 0x2000, vaddr, 0x10, memsz)
        };
        assert_eq!(
            err(&with(&[TEXT, bad])),
            ElfError::OutsideUserRange {
                index: 1,
                start: vaddr,
                end: vaddr + memsz,
                user_start: LIMITS.user_start,
                user_end: LIMITS.user_end
            }
        );
    }
    // The last page of the range is usable.
    let last = load(R, 0x2000, LIMITS.user_end - 0x1000, 0x10, 0x1000);
    assert!(run(&with(&[TEXT, last])).is_ok());
}

#[test]
fn bad_alignment() {
    let bad = Ph {
        align: 0x1800,
        ..DATA
    };
    assert_eq!(
        err(&with(&[TEXT, bad])),
        ElfError::BadAlignment {
            index: 1,
            align: 0x1800
        }
    );
    for align in [0, 1, 2, 0x10, 0x20_0000] {
        let fine = Ph { align, ..DATA };
        assert!(run(&with(&[TEXT, fine])).is_ok(), "align {align:#x}");
    }
}

#[test]
fn misaligned_segment() {
    let bad = load(R | W, 0x1f00, 0x40_2000, 0x10, 0x2000);
    assert_eq!(
        err(&with(&[TEXT, bad])),
        ElfError::MisalignedSegment {
            index: 1,
            vaddr: 0x40_2000,
            offset: 0x1f00,
            page_size: 0x1000
        }
    );
    // Below page alignment, the congruence is not required (the loader copies).
    let fine = Ph {
        align: 0x100,
        ..bad
    };
    assert!(run(&with(&[TEXT, fine])).is_ok());
}

#[test]
fn writable_and_executable() {
    let bad = Ph {
        flags: R | W | X,
        ..DATA
    };
    let e = err(&with(&[TEXT, STACK, bad]));
    assert_eq!(
        e,
        ElfError::WritableAndExecutable {
            index: 2,
            start: 0x40_2000,
            end: 0x40_4000
        }
    );
    assert_eq!(
        e.to_string(),
        "ELF: segment 2 at 0x402000..0x404000 is writable and executable"
    );
}

#[test]
fn no_permissions() {
    let bad = Ph { flags: 0, ..DATA };
    assert_eq!(
        err(&with(&[TEXT, bad])),
        ElfError::NoPermissions { index: 1 }
    );
    // Only non-permission bits set is still no permission.
    let bad = Ph {
        flags: abi::PF_MASKOS,
        ..DATA
    };
    assert_eq!(
        err(&with(&[TEXT, bad])),
        ElfError::NoPermissions { index: 1 }
    );
}

#[test]
fn overlap_at_page_granularity() {
    // Data starts in the text segment's last page.
    let bad = load(R | W, 0x1f00, 0x40_1f00, 0x10, 0x100);
    assert_eq!(
        err(&with(&[TEXT, STACK, bad])),
        ElfError::Overlap {
            first: 0,
            second: 2
        }
    );
    // Full containment, reported with the earlier index first.
    let inner = load(R, 0x1000, 0x40_3000, 0x10, 0x10);
    assert_eq!(
        err(&with(&[TEXT, DATA, inner])),
        ElfError::Overlap {
            first: 1,
            second: 2
        }
    );
    assert_eq!(
        err(&with(&[TEXT, DATA, inner])).to_string(),
        "ELF: segments 1 and 2 share a page"
    );
}

#[test]
fn entry_not_executable() {
    for entry in [0, 0x40_2000, ENTRY + 0x100, ENTRY - 1] {
        let b = assemble(entry, &[TEXT, DATA], FILE_LEN);
        assert_eq!(err(&b), ElfError::EntryNotExecutable { entry });
    }
    let b = assemble(ENTRY + 0xff, &[TEXT, DATA], FILE_LEN);
    assert_eq!(run(&b).unwrap().entry, ENTRY + 0xff);
}

#[test]
fn errors_display_one_line() {
    let all = [
        ElfError::BadLimits { limits: LIMITS },
        ElfError::FileTooLarge { size: 1, max: 0 },
        ElfError::TooShort { size: 1 },
        ElfError::BadMagic { found: [0; 4] },
        ElfError::NotElf64 { class: 1 },
        ElfError::NotLittleEndian { data: 2 },
        ElfError::BadVersion {
            ident_version: 0,
            version: 0,
        },
        ElfError::BadOsAbi {
            os_abi: 3,
            abi_version: 0,
        },
        ElfError::NotStaticExecutable { e_type: 1 },
        ElfError::WrongMachine {
            expected: Machine::X86_64,
            found: 3,
        },
        ElfError::BadHeaderSize { size: 0 },
        ElfError::BadProgramHeaderSize { size: 0 },
        ElfError::NoProgramHeaders,
        ElfError::TooManyProgramHeaders { count: 100 },
        ElfError::ProgramHeadersOutOfBounds {
            offset: 0,
            count: 1,
            file_size: 0,
        },
        ElfError::Malformed { reason: "x" },
        ElfError::NeedsDynamicLoader {
            index: 0,
            p_type: abi::PT_INTERP,
        },
        ElfError::ThreadLocalStorage { index: 0 },
        ElfError::ExecutableStack { index: 0 },
        ElfError::UnsupportedSegment {
            index: 0,
            p_type: 5,
        },
        ElfError::NoLoadSegments,
        ElfError::TooManyLoadSegments { count: 9 },
        ElfError::FileSizeExceedsMemSize {
            index: 0,
            file_size: 2,
            mem_size: 1,
        },
        ElfError::SegmentOutsideFile {
            index: 0,
            offset: 0,
            file_size: 0,
            file_len: 0,
        },
        ElfError::AddressOverflow {
            index: 0,
            vaddr: 0,
            mem_size: 0,
        },
        ElfError::OutsideUserRange {
            index: 0,
            start: 0,
            end: 0,
            user_start: 0,
            user_end: 0,
        },
        ElfError::BadAlignment { index: 0, align: 3 },
        ElfError::MisalignedSegment {
            index: 0,
            vaddr: 0,
            offset: 0,
            page_size: 0,
        },
        ElfError::WritableAndExecutable {
            index: 0,
            start: 0,
            end: 0,
        },
        ElfError::NoPermissions { index: 0 },
        ElfError::Overlap {
            first: 0,
            second: 1,
        },
        ElfError::EntryNotExecutable { entry: 0 },
    ];
    for e in all {
        let s = e.to_string();
        assert!(s.starts_with("ELF: ") && !s.contains('\n'), "{s}");
    }
}

/// Checks what every accepted plan promises.
fn check_invariants(bytes: &[u8], p: &LoadPlan) {
    let segs = p.segments();
    assert!(!segs.is_empty() && segs.len() <= MAX_SEGMENTS);
    for s in segs {
        assert!(!(s.flags.write && s.flags.execute));
        assert!(s.file_size <= s.mem_size && s.mem_size > 0);
        assert_eq!(segment_bytes(bytes, s).len() as u64, s.file_size);
        let (start, end) = p.page_range(s);
        assert!(start >= LIMITS.user_start && end <= LIMITS.user_end && start < end);
    }
    assert!(
        segs.iter()
            .any(|s| s.flags.execute && p.entry >= s.vaddr && p.entry - s.vaddr < s.mem_size)
    );
}

#[test]
fn mutations_never_panic() {
    let full = valid();
    let mut accepted = 0;
    for offset in 0..0x200 {
        for mask in [0x01, 0x02, 0x04, 0x10, 0x40, 0x80, 0x7f, 0xff] {
            let mut b = full.clone();
            b[offset] ^= mask;
            for machine in [Machine::X86_64, Machine::Aarch64] {
                if let Ok(p) = plan(&b, machine, &LIMITS) {
                    check_invariants(&b, &p);
                    accepted += 1;
                }
            }
        }
    }
    // Bytes the validator ignores (e_flags, p_paddr, padding) keep some mutants valid.
    assert!(accepted > 0);
}

#[test]
fn truncation_at_every_length_never_panics() {
    let full = valid();
    for len in 0..full.len() {
        // The data segment's file bytes end at the very end of the file.
        assert!(run(&full[..len]).is_err(), "len {len}");
    }
    assert!(run(&full).is_ok());
}

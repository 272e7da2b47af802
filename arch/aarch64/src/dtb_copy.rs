//! Validation and a clean copy of the flattened device tree, before anything parses it.
//!
//! Owns the one place that reads the blob the loader left in RAM. The `fdt` crate (0.1.5)
//! panics on several kinds of malformed input (offsets past the end, unterminated names,
//! invalid UTF-8, unbalanced nodes) and mis-walks NOP tokens between nodes, which QEMU's own
//! tree can contain (`qemu_fdt_nop_node` for NUMA memory nodes). So this module checks every
//! header field, token, name and property against the specification and copies the tree,
//! without NOPs, into a kernel-owned buffer; `dtb.rs` hands only that copy to `fdt`. A blob
//! that fails a check is rejected whole with a reason. This module must never interpret
//! properties beyond what `fdt` needs to be safe.

use crate::layout::{BOOT_HHDM_SIZE, DEVICE_WINDOW_END, phys_to_virt};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::boot_info::PhysRange;

/// Room for the copy: header, reservations, structure and strings. QEMU `virt` needs ~8 KiB.
const COPY_CAPACITY: usize = 64 * 1024;
/// Deepest node nesting accepted (`fdt` keeps a 64-entry parent stack).
const MAX_DEPTH: usize = 32;
/// Most memory reservations accepted.
const MAX_RESERVATIONS: usize = 64;
/// Largest `totalsize` accepted; QEMU pads its tree to 1 MiB.
const MAX_TOTAL_SIZE: u64 = 16 << 20;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_SIZE: usize = 40;
const RESERVATION_SIZE: usize = 16;
/// The oldest format with `size_dt_struct`, and the newest this reader understands.
const VERSION: u32 = 17;
const LAST_COMPATIBLE_VERSION: u32 = 16;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// The checked copy and where the original lies.
#[derive(Debug)]
pub struct Blob {
    /// The loader's blob in physical memory (to be reserved).
    pub original: PhysRange,
    /// The validated copy, NOP-free, in kernel memory that lives forever.
    pub copy: &'static [u8],
}

struct CopyBuffer(UnsafeCell<[u8; COPY_CAPACITY]>);

// SAFETY: the buffer is handed out at most once (`CLAIMED`), so no two references to it exist.
unsafe impl Sync for CopyBuffer {}

static BUFFER: CopyBuffer = CopyBuffer(UnsafeCell::new([0; COPY_CAPACITY]));
static CLAIMED: AtomicBool = AtomicBool::new(false);

fn claim_buffer() -> Option<&'static mut [u8; COPY_CAPACITY]> {
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: `CLAIMED` was false, so this is the only reference ever made to the buffer.
    Some(unsafe { &mut *BUFFER.0.get() })
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    Some((u64::from(be32(bytes, at)?) << 32) | u64::from(be32(bytes, at.checked_add(4)?)?))
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// A NUL-terminated UTF-8 string starting at `at`; returns its length without the NUL.
fn c_string(bytes: &[u8], at: usize) -> Option<usize> {
    let tail = bytes.get(at..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&tail[..len]).ok()?;
    Some(len)
}

/// Reads the blob at physical `dtb_phys` through the HHDM, validates it and returns the copy.
pub fn copy(dtb_phys: u64) -> Result<Blob, &'static str> {
    if !dtb_phys.is_multiple_of(8) {
        return Err("device tree is not 8-byte aligned; ignored");
    }
    if dtb_phys < DEVICE_WINDOW_END || dtb_phys > BOOT_HHDM_SIZE - HEADER_SIZE as u64 {
        return Err("device tree is not in RAM the boot mapping covers; ignored");
    }
    // SAFETY: the 40 header bytes lie inside the Normal-memory part of the HHDM (checked just
    // above), which is mapped readable; nothing writes them while this shared slice lives.
    let header =
        unsafe { core::slice::from_raw_parts(phys_to_virt(dtb_phys) as *const u8, HEADER_SIZE) };
    if be32(header, 0) != Some(MAGIC) {
        return Err("device tree has no FDT magic; ignored");
    }
    let total = u64::from(be32(header, 4).unwrap_or(0));
    if total < HEADER_SIZE as u64 || total > MAX_TOTAL_SIZE || dtb_phys + total > BOOT_HHDM_SIZE {
        return Err("device tree size is implausible; ignored");
    }
    let original = PhysRange {
        start: dtb_phys,
        end: dtb_phys + total,
    };
    // SAFETY: `total` bytes from `dtb_phys` lie inside the mapped Normal memory (checked above;
    // `total` fits a usize as it is at most 16 MiB); the blob is only read.
    let blob =
        unsafe { core::slice::from_raw_parts(phys_to_virt(dtb_phys) as *const u8, total as usize) };
    let buffer = claim_buffer().ok_or("device tree copy already made")?;
    let len = copy_checked(blob, buffer)?;
    Ok(Blob {
        original,
        copy: &buffer[..len],
    })
}

/// Writes into `out`, failing when it is full.
struct Writer<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        let end = self.len + bytes.len();
        let slot = self
            .out
            .get_mut(self.len..end)
            .ok_or("device tree is too large for the boot copy; ignored")?;
        slot.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn put32(&mut self, value: u32) -> Result<(), &'static str> {
        self.put(&value.to_be_bytes())
    }
}

/// Validates `blob` and writes the NOP-free copy to `out`; returns the copy's length.
fn copy_checked(blob: &[u8], out: &mut [u8]) -> Result<usize, &'static str> {
    const BAD_HEADER: &str = "device tree header is inconsistent; ignored";
    let field = |index: usize| be32(blob, index * 4).ok_or(BAD_HEADER);
    let (off_struct, off_strings, off_reserve) = (field(2)?, field(3)?, field(4)?);
    let (version, last_compatible, boot_cpu) = (field(5)?, field(6)?, field(7)?);
    let (size_strings, size_struct) = (field(8)?, field(9)?);
    if version < VERSION || last_compatible > VERSION {
        return Err("device tree format version is not supported (need 17); ignored");
    }
    let range = |offset: u32, size: u32| {
        let start = offset as usize;
        let end = start.checked_add(size as usize)?;
        blob.get(start..end)
    };
    let structure = range(off_struct, size_struct).ok_or(BAD_HEADER)?;
    let strings = range(off_strings, size_strings).ok_or(BAD_HEADER)?;
    if off_struct % 4 != 0 || off_reserve % 8 != 0 {
        return Err(BAD_HEADER);
    }

    // Header placeholder, then the reservations (terminator included) right after it.
    let mut w = Writer { out, len: 0 };
    w.put(&[0; HEADER_SIZE])?;
    let reserve_start = off_reserve as usize;
    let mut count = 0;
    loop {
        let at = reserve_start + count * RESERVATION_SIZE;
        let (address, size) = (be64(blob, at), be64(blob, at + 8));
        let (Some(address), Some(size)) = (address, size) else {
            return Err("device tree memory reservations run past its end; ignored");
        };
        w.put(&blob[at..at + RESERVATION_SIZE])?;
        if address == 0 && size == 0 {
            break;
        }
        count += 1;
        if count > MAX_RESERVATIONS {
            return Err("device tree has too many memory reservations; ignored");
        }
    }

    let new_off_struct = w.len;
    copy_structure(structure, strings, &mut w)?;
    let new_size_struct = w.len - new_off_struct;
    let new_off_strings = w.len;
    w.put(strings)?;
    let total = w.len;

    let header = [
        MAGIC,
        total as u32,
        new_off_struct as u32,
        new_off_strings as u32,
        HEADER_SIZE as u32,
        VERSION,
        LAST_COMPATIBLE_VERSION,
        boot_cpu,
        size_strings,
        new_size_struct as u32,
    ];
    for (i, value) in header.iter().enumerate() {
        w.out[i * 4..i * 4 + 4].copy_from_slice(&value.to_be_bytes());
    }
    Ok(total)
}

/// Walks the structure block token by token, checking it, and copies every token but NOP.
fn copy_structure(s: &[u8], strings: &[u8], w: &mut Writer<'_>) -> Result<(), &'static str> {
    const TRUNCATED: &str = "device tree structure is truncated or malformed; ignored";
    let mut pos = 0;
    let mut depth = 0;
    let mut root_closed = false;
    // For each open node: has a child node started (after which no property may follow)?
    let mut has_child = [false; MAX_DEPTH + 1];
    loop {
        let token = be32(s, pos).ok_or(TRUNCATED)?;
        match token {
            FDT_NOP => pos += 4,
            FDT_BEGIN_NODE => {
                if root_closed {
                    return Err("device tree has nodes after its root; ignored");
                }
                let name_len = c_string(s, pos + 4).ok_or(TRUNCATED)?;
                if depth == 0 && name_len != 0 {
                    return Err("device tree root node has a name; ignored");
                }
                has_child[depth] = true;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err("device tree nests too deeply; ignored");
                }
                has_child[depth] = false;
                let next = align4(pos + 4 + name_len + 1).ok_or(TRUNCATED)?;
                w.put(s.get(pos..next).ok_or(TRUNCATED)?)?;
                pos = next;
            }
            FDT_PROP => {
                if depth == 0 || has_child[depth] {
                    return Err("device tree has a property outside its node's header; ignored");
                }
                let len = be32(s, pos + 4).ok_or(TRUNCATED)? as usize;
                let name_offset = be32(s, pos + 8).ok_or(TRUNCATED)? as usize;
                let name_len = c_string(strings, name_offset)
                    .ok_or("device tree property name is not a valid string; ignored")?;
                let name = &strings[name_offset..name_offset + name_len];
                if name.starts_with(b"#") && name.ends_with(b"-cells") && len != 4 {
                    return Err(
                        "device tree has a #...-cells property that is not one cell; ignored",
                    );
                }
                let value_end = (pos + 12).checked_add(len).ok_or(TRUNCATED)?;
                let next = align4(value_end).ok_or(TRUNCATED)?;
                w.put(s.get(pos..next).ok_or(TRUNCATED)?)?;
                pos = next;
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(TRUNCATED);
                }
                depth -= 1;
                root_closed = depth == 0;
                w.put32(FDT_END_NODE)?;
                pos += 4;
            }
            FDT_END => {
                if !root_closed {
                    return Err(TRUNCATED);
                }
                return w.put32(FDT_END);
            }
            _ => return Err("device tree has an unknown structure token; ignored"),
        }
    }
}

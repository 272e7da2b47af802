//! One architecture's page-table entry encoding, behind a trait.
//!
//! Owns the shape every supported MMU shares (4 levels of 4 KiB tables of 512 `u64` entries,
//! 9 virtual-address bits per level above a 12-bit page offset) and the trait
//! [`PageTableFormat`] through which the [`Mapper`](super::Mapper) builds and reads entries.
//! The real encodings live in the `strait-arch-paging` crate: this module must never name an
//! architecture, and a format must never touch memory (it only turns values into values).

use super::flags::MapFlags;
use core::ops::Range;

/// Entries in one table.
pub const ENTRIES: usize = 512;

/// Size of a page and of a page table (4 KiB granule on both architectures).
pub const PAGE_SIZE: u64 = 4096;

/// Level of the root table (x86 PML4, AArch64 L0). Level 0 is the leaf table (PT, L3).
pub const ROOT_LEVEL: u8 = 3;

/// Bytes one entry at `level` covers: 4 KiB at level 0, 2 MiB at 1, 1 GiB at 2, 512 GiB at 3.
pub const fn level_size(level: u8) -> u64 {
    PAGE_SIZE << (9 * level as u32)
}

/// One architecture's entry encoding.
///
/// Levels count up from the leaf table: level 3 is the root, level 0 holds 4 KiB pages, and a
/// leaf at level 1 or 2 is a 2 MiB or 1 GiB block ("huge page"). An all-zero entry must be
/// empty (not present) at every level, so a zeroed table is an empty table.
///
/// The virtual address space is split in two halves: `[0, USER_END)` belongs to user space
/// (each address space has its own tables there) and `[KERNEL_START, 2^64)` to the kernel
/// (shared). Every address in neither half is non-canonical.
pub trait PageTableFormat {
    /// First address that is not in the user half.
    const USER_END: u64;

    /// First address of the kernel half.
    const KERNEL_START: u64;

    /// First physical address an entry cannot hold (the width of the address field).
    const PHYS_LIMIT: u64;

    /// Index of the entry that translates `va` in a table at `level`.
    ///
    /// Both architectures take 9 bits per level above the 12-bit page offset; bits above the
    /// root's field are ignored (they select the half, not an entry).
    fn index(va: u64, level: u8) -> usize {
        // The mask keeps the value below 512, so the cast cannot truncate.
        ((va >> (12 + 9 * u32::from(level))) & (ENTRIES as u64 - 1)) as usize
    }

    /// An entry pointing to the next-level table at `table_phys`.
    ///
    /// It grants every right the architecture allows at table level: the leaf alone decides
    /// what a mapping may do, so one table can hold user and kernel, writable and executable
    /// leaves side by side.
    fn table_entry(table_phys: u64) -> u64;

    /// A leaf mapping `frame` with `flags` at `level` (0: 4 KiB page; 1, 2: block).
    ///
    /// `frame` is aligned to [`level_size`]`(level)` and below [`PHYS_LIMIT`](Self::PHYS_LIMIT).
    /// A set without [`MapFlags::READ`] yields a non-present entry; the mapper always passes
    /// [`MapFlags::effective`] flags, which contain it.
    fn leaf_entry(frame: u64, flags: MapFlags, level: u8) -> u64;

    /// True when the entry is valid (a table or a leaf).
    fn is_present(entry: u64) -> bool;

    /// True when the present `entry` at `level` points to a table; false for a leaf or block.
    /// Level 0 entries are always leaves.
    fn is_table(entry: u64, level: u8) -> bool;

    /// The physical address the entry holds (the table, page or block start).
    fn address(entry: u64) -> u64;

    /// The rights of a present leaf at `level`, as [`MapFlags::effective`] flags.
    fn flags(entry: u64, level: u8) -> MapFlags;

    /// True when `va` is in the user half.
    fn is_user(va: u64) -> bool {
        va < Self::USER_END
    }

    /// True when `va` is in the kernel half.
    fn is_kernel(va: u64) -> bool {
        va >= Self::KERNEL_START
    }

    /// True when `va` is in one of the two halves (the hardware can translate it at all).
    fn is_canonical(va: u64) -> bool {
        Self::is_user(va) || Self::is_kernel(va)
    }

    /// The root slots that translate the user half (x86: 0..256, AArch64 TTBR0: 0..512).
    ///
    /// Everything outside them in a root is the kernel's and shared; teardown must never free
    /// what it points to.
    fn user_root_slots() -> Range<usize> {
        0..Self::index(Self::USER_END - 1, ROOT_LEVEL) + 1
    }
}

/// A toy encoding for the host tests, deliberately unlike either architecture so that the
/// mapper cannot lean on one of them: bit 0 present, bit 1 table, the flag bits at 2..8,
/// the address at 12..52.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestFormat;

#[cfg(test)]
impl TestFormat {
    const PRESENT: u64 = 1 << 0;
    const TABLE: u64 = 1 << 1;
    const FLAG_SHIFT: u32 = 2;
    const ADDRESS: u64 = ((1 << 52) - 1) & !(PAGE_SIZE - 1);
}

#[cfg(test)]
impl PageTableFormat for TestFormat {
    const USER_END: u64 = 1 << 47;
    const KERNEL_START: u64 = !((1 << 47) - 1);
    const PHYS_LIMIT: u64 = 1 << 52;

    fn table_entry(table_phys: u64) -> u64 {
        table_phys | Self::PRESENT | Self::TABLE
    }

    fn leaf_entry(frame: u64, flags: MapFlags, level: u8) -> u64 {
        assert!(level <= 2, "no leaf at level {level}");
        if !flags.contains(MapFlags::READ) {
            return 0;
        }
        frame | Self::PRESENT | (u64::from(flags.bits()) << Self::FLAG_SHIFT)
    }

    fn is_present(entry: u64) -> bool {
        entry & Self::PRESENT != 0
    }

    fn is_table(entry: u64, level: u8) -> bool {
        level > 0 && entry & Self::TABLE != 0
    }

    fn address(entry: u64) -> u64 {
        entry & Self::ADDRESS
    }

    fn flags(entry: u64, _level: u8) -> MapFlags {
        MapFlags::from_bits_truncate(((entry >> Self::FLAG_SHIFT) & 0x3f) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_cover_the_expected_sizes() {
        assert_eq!(level_size(0), 4096);
        assert_eq!(level_size(1), 2 << 20);
        assert_eq!(level_size(2), 1 << 30);
        assert_eq!(level_size(3), 512 << 30);
    }

    #[test]
    fn index_takes_nine_bits_per_level() {
        let va = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0xabc;
        assert_eq!(TestFormat::index(va, 3), 3);
        assert_eq!(TestFormat::index(va, 2), 5);
        assert_eq!(TestFormat::index(va, 1), 7);
        assert_eq!(TestFormat::index(va, 0), 9);
        // The sign-extension bits select the half, not an entry.
        assert_eq!(TestFormat::index(0xffff_8000_0000_0000, 3), 256);
        assert_eq!(TestFormat::index(u64::MAX, 3), 511);
        assert_eq!(TestFormat::index(u64::MAX, 0), 511);
    }

    #[test]
    fn halves_and_canonical_addresses() {
        assert_eq!(TestFormat::user_root_slots(), 0..256);
        assert!(TestFormat::is_user(0));
        assert!(TestFormat::is_user((1 << 47) - 1));
        assert!(!TestFormat::is_canonical(1 << 47));
        assert!(!TestFormat::is_canonical(0x1234_0000_0000_0000));
        assert!(TestFormat::is_kernel(0xffff_8000_0000_0000));
        assert!(!TestFormat::is_user(0xffff_8000_0000_0000));
        assert!(TestFormat::is_canonical(u64::MAX));
    }

    #[test]
    fn the_test_format_round_trips() {
        for level in 0..=2 {
            for bits in 0..64 {
                let flags = MapFlags::from_bits_truncate(bits).effective();
                let frame = 7 * level_size(level);
                let e = TestFormat::leaf_entry(frame, flags, level);
                assert!(TestFormat::is_present(e));
                assert!(!TestFormat::is_table(e, level));
                assert_eq!(TestFormat::address(e), frame);
                assert_eq!(TestFormat::flags(e, level), flags);
            }
        }
        let t = TestFormat::table_entry(0x5000);
        assert!(TestFormat::is_present(t) && TestFormat::is_table(t, 3));
        assert_eq!(TestFormat::address(t), 0x5000);
        assert!(!TestFormat::is_present(0));
    }
}

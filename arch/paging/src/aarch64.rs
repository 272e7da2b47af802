//! AArch64 VMSAv8-64 stage-1 descriptors: 4 KiB granule, 48-bit addresses, 4 levels.
//!
//! Owns the descriptor bit layout, the mapping from portable [`MapFlags`] to it, and the MAIR
//! value the attribute indices refer to (so the arch crate programs MAIR_EL1 from the same
//! place). It must never decide policy (W^X and the halves are the mapper's) nor touch a system
//! register or memory. Kernel-core levels 3..0 are the architecture's L0..L3.
//!
//! Requirements on the CPU setup, which the AArch64 arch crate owns: MAIR_EL1 = [`MAIR_VALUE`],
//! TCR_EL1 with T0SZ = T1SZ = 16 and 4 KiB granules for both halves, inner-shareable write-back
//! table walks, and ASIDs in TTBR0 (TCR_EL1.A1 = 0). Hardware Access-flag management is not
//! needed: every leaf is created with AF set.

use kernel_core::paging::{MapFlags, PageTableFormat};

/// MAIR_EL1 attribute index of Device-nGnRnE memory (MMIO).
pub const MAIR_DEVICE_INDEX: u64 = 0;

/// MAIR_EL1 attribute index of Normal memory, inner and outer write-back, read/write-allocate.
pub const MAIR_NORMAL_INDEX: u64 = 1;

/// The MAIR_EL1 value the indices above refer to: Attr0 = 0x00 (Device-nGnRnE), Attr1 = 0xff
/// (Normal WB RA WA).
pub const MAIR_VALUE: u64 = (0x00 << (8 * MAIR_DEVICE_INDEX)) | (0xff << (8 * MAIR_NORMAL_INDEX));

/// The AArch64 descriptor encoding (4 KiB pages, 2 MiB and 1 GiB blocks).
///
/// Tables are `0b11` with no table-level restrictions (the leaf decides). Leaves: valid exactly
/// when [`MapFlags::READ`], AF always set, AttrIndx from `DEVICE`, inner shareable for normal
/// memory; user leaves are EL0-accessible, never kernel-executable (PXN), UXN unless `EXECUTE`,
/// and always non-global (nG); kernel leaves are UXN, PXN unless `EXECUTE`, and non-global
/// unless `GLOBAL`. No `WRITE` makes them read-only (`AP[2]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64Format;

impl Aarch64Format {
    /// Bit 0: the descriptor is valid.
    pub const VALID: u64 = 1 << 0;
    /// Bit 1: table (L0..L2) or page (L3); clear for a block (L1, L2).
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// `AttrIndx[2:0]` at bits 4:2: the MAIR_EL1 attribute.
    pub const ATTR_INDEX_SHIFT: u32 = 2;
    /// AttrIndx field mask.
    pub const ATTR_INDEX_MASK: u64 = 0b111 << Self::ATTR_INDEX_SHIFT;
    /// `AP[1]` (bit 6): EL0 can access.
    pub const AP_EL0: u64 = 1 << 6;
    /// `AP[2]` (bit 7): read-only.
    pub const AP_READ_ONLY: u64 = 1 << 7;
    /// `SH[1:0]` (bits 9:8) = 0b11: inner shareable.
    pub const INNER_SHAREABLE: u64 = 0b11 << 8;
    /// AF (bit 10): accessed; a clear AF faults on first access.
    pub const ACCESS_FLAG: u64 = 1 << 10;
    /// nG (bit 11): the translation is tagged with the current ASID.
    pub const NOT_GLOBAL: u64 = 1 << 11;
    /// PXN (bit 53): EL1 must not execute.
    pub const PXN: u64 = 1 << 53;
    /// UXN (bit 54): EL0 must not execute.
    pub const UXN: u64 = 1 << 54;
    /// Output address bits 12..47.
    pub const ADDRESS_MASK: u64 = 0x0000_ffff_ffff_f000;
}

impl PageTableFormat for Aarch64Format {
    /// TTBR0 with T0SZ = 16 translates `[0, 2^48)`.
    const USER_END: u64 = 0x0001_0000_0000_0000;
    /// TTBR1 with T1SZ = 16 translates `[2^64 - 2^48, 2^64)`.
    const KERNEL_START: u64 = 0xffff_0000_0000_0000;
    const PHYS_LIMIT: u64 = 1 << 48;

    fn table_entry(table_phys: u64) -> u64 {
        (table_phys & Self::ADDRESS_MASK) | Self::VALID | Self::TABLE_OR_PAGE
    }

    fn leaf_entry(frame: u64, flags: MapFlags, level: u8) -> u64 {
        if !flags.contains(MapFlags::READ) {
            return 0;
        }
        let mut entry = (frame & Self::ADDRESS_MASK) | Self::VALID | Self::ACCESS_FLAG;
        if level == 0 {
            entry |= Self::TABLE_OR_PAGE;
        }
        if flags.contains(MapFlags::DEVICE) {
            // Device memory is outer shareable whatever SH says; leave SH at 0b00.
            entry |= MAIR_DEVICE_INDEX << Self::ATTR_INDEX_SHIFT;
        } else {
            entry |= (MAIR_NORMAL_INDEX << Self::ATTR_INDEX_SHIFT) | Self::INNER_SHAREABLE;
        }
        if !flags.contains(MapFlags::WRITE) {
            entry |= Self::AP_READ_ONLY;
        }
        let execute = flags.contains(MapFlags::EXECUTE);
        if flags.contains(MapFlags::USER) {
            // The kernel never executes user memory; user translations are per-ASID.
            entry |= Self::AP_EL0 | Self::PXN | Self::NOT_GLOBAL;
            if !execute {
                entry |= Self::UXN;
            }
        } else {
            entry |= Self::UXN;
            if !execute {
                entry |= Self::PXN;
            }
            if !flags.contains(MapFlags::GLOBAL) {
                entry |= Self::NOT_GLOBAL;
            }
        }
        entry
    }

    fn is_present(entry: u64) -> bool {
        entry & Self::VALID != 0
    }

    fn is_table(entry: u64, level: u8) -> bool {
        // At L3 (level 0) bit 1 means "page", never "table".
        level > 0 && entry & Self::TABLE_OR_PAGE != 0
    }

    fn address(entry: u64) -> u64 {
        entry & Self::ADDRESS_MASK
    }

    fn flags(entry: u64, _level: u8) -> MapFlags {
        let user = entry & Self::AP_EL0 != 0;
        let no_execute = if user { Self::UXN } else { Self::PXN };
        let attr = (entry & Self::ATTR_INDEX_MASK) >> Self::ATTR_INDEX_SHIFT;
        let mut flags = MapFlags::READ;
        let bits = [
            (entry & Self::AP_READ_ONLY == 0, MapFlags::WRITE),
            (entry & no_execute == 0, MapFlags::EXECUTE),
            (user, MapFlags::USER),
            (entry & Self::NOT_GLOBAL == 0, MapFlags::GLOBAL),
            (attr == MAIR_DEVICE_INDEX, MapFlags::DEVICE),
        ];
        for (set, flag) in bits {
            flags.set(flag, set);
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_core::paging::level_size;

    type F = Aarch64Format;

    /// Bits every normal leaf carries: AF, inner shareable, AttrIndx = normal.
    const NORMAL: u64 = (1 << 10) | (0b11 << 8) | (1 << 2);

    #[test]
    fn mair_matches_the_indices() {
        assert_eq!(MAIR_VALUE, 0xff00);
        assert_eq!((MAIR_VALUE >> (8 * MAIR_DEVICE_INDEX)) & 0xff, 0x00);
        assert_eq!((MAIR_VALUE >> (8 * MAIR_NORMAL_INDEX)) & 0xff, 0xff);
    }

    #[test]
    fn exact_encodings() {
        let r = MapFlags::READ;
        let (w, x, u) = (MapFlags::WRITE, MapFlags::EXECUTE, MapFlags::USER);
        let (g, d) = (MapFlags::GLOBAL, MapFlags::DEVICE);
        let (pxn, uxn, ng) = (1 << 53, 1 << 54, 1 << 11);
        // User data page: AP = 01 (EL0 RW), nG, PXN, UXN.
        assert_eq!(
            F::leaf_entry(0x1234_5000, r | w | u, 0),
            0x1234_5000 | 0b11 | NORMAL | (0b01 << 6) | ng | pxn | uxn
        );
        // User code page: AP = 11 (EL0 RO), nG, PXN, executable at EL0.
        assert_eq!(
            F::leaf_entry(0x1000, r | x | u, 0),
            0x1000 | 0b11 | NORMAL | (0b11 << 6) | ng | pxn
        );
        // Kernel text 2 MiB block, global: AP = 10 (EL1 RO), UXN, executable at EL1.
        assert_eq!(
            F::leaf_entry(0x20_0000, r | x | g, 1),
            0x20_0000 | 0b01 | NORMAL | (0b10 << 6) | uxn
        );
        // Kernel data 1 GiB block, global: AP = 00 (EL1 RW), PXN, UXN.
        assert_eq!(
            F::leaf_entry(0x4000_0000, r | w | g, 2),
            0x4000_0000 | 0b01 | NORMAL | pxn | uxn
        );
        // MMIO: Device-nGnRnE (AttrIndx 0), SH = 00, non-global, never executable.
        assert_eq!(
            F::leaf_entry(0x0900_0000, r | w | d, 0),
            0x0900_0000 | 0b11 | (1 << 10) | ng | pxn | uxn
        );
        // A global user page is still non-global.
        assert_ne!(F::leaf_entry(0x1000, r | u | g, 0) & ng, 0);
        // No READ, no mapping.
        assert_eq!(F::leaf_entry(0x1000, w | u, 0), 0);
        // Tables: 0b11 and nothing else.
        assert_eq!(F::table_entry(0xabc_d000), 0xabc_d003);
    }

    #[test]
    fn every_flag_combination_round_trips_at_every_level() {
        for level in 0..=2u8 {
            let size = level_size(level);
            for frame in [0, size, 0x1234 * size % F::PHYS_LIMIT, F::PHYS_LIMIT - size] {
                for bits in 0..64 {
                    let flags = MapFlags::from_bits_truncate(bits);
                    let entry = F::leaf_entry(frame, flags, level);
                    if !flags.contains(MapFlags::READ) {
                        assert!(!F::is_present(entry));
                        continue;
                    }
                    assert!(F::is_present(entry));
                    assert!(!F::is_table(entry, level), "{flags:?} at {level}");
                    assert_eq!(F::address(entry), frame);
                    assert_eq!(F::flags(entry, level), flags.effective(), "{entry:#x}");
                    // Invariants beyond the round trip.
                    assert_ne!(entry & F::ACCESS_FLAG, 0);
                    assert_eq!(entry & 0b11, if level == 0 { 0b11 } else { 0b01 });
                    if flags.contains(MapFlags::USER) {
                        assert_ne!(entry & F::PXN, 0, "the kernel never executes user memory");
                        assert_ne!(entry & F::NOT_GLOBAL, 0);
                    } else {
                        assert_ne!(entry & F::UXN, 0, "user mode never executes kernel memory");
                    }
                }
            }
        }
        for level in 1..=3 {
            let table = F::table_entry(F::PHYS_LIMIT - 4096);
            assert!(F::is_present(table) && F::is_table(table, level));
            assert_eq!(F::address(table), F::PHYS_LIMIT - 4096);
        }
    }

    #[test]
    fn ttbr0_and_ttbr1_halves() {
        assert_eq!(F::user_root_slots(), 0..512, "TTBR0's root is all user");
        for (va, canonical, user) in [
            (0, true, true),
            (0x0000_8000_0000_0000, true, true),
            (0x0000_ffff_ffff_f000, true, true),
            (0x0001_0000_0000_0000, false, false),
            (0xfffe_ffff_ffff_ffff, false, false),
            (0xffff_0000_0000_0000, true, false),
            (u64::MAX, true, false),
        ] {
            assert_eq!(F::is_canonical(va), canonical, "{va:#x}");
            assert_eq!(F::is_user(va), user, "{va:#x}");
        }
        // TTBR1 indexes with the same low 48 bits.
        assert_eq!(F::index(0xffff_0000_0000_0000, 3), 0);
        assert_eq!(F::index(u64::MAX, 3), 511);
    }
}

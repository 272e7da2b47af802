//! x86_64 4-level paging entries (PML4, PDPT, PD, PT).
//!
//! Owns the bit layout of a long-mode entry and the mapping from portable [`MapFlags`] to it.
//! It must never decide policy (W^X and the halves are the mapper's) nor touch CR3 or memory.
//! Requirements on the CPU setup, which the x86_64 arch crate owns: EFER.NXE = 1 (bit 63 is
//! reserved otherwise and every entry with it faults), CR4.PGE for global pages, and the
//! power-on PAT (PCD|PWT = uncacheable); the PAT bits are never set.

use kernel_core::paging::{MapFlags, PageTableFormat};

/// The x86_64 entry encoding (4 KiB pages, 2 MiB and 1 GiB huge pages).
///
/// Tables are `P|RW|US` (the leaf decides). Leaves: present exactly when [`MapFlags::READ`],
/// `WRITE` sets RW, no `EXECUTE` sets NX, `USER` sets US, `GLOBAL` sets G (never on a user
/// leaf), `DEVICE` sets PCD|PWT; PS marks a level 1 or 2 leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86_64Format;

impl X86_64Format {
    /// P: the entry is valid.
    pub const PRESENT: u64 = 1 << 0;
    /// R/W: writes allowed.
    pub const WRITABLE: u64 = 1 << 1;
    /// U/S: user mode allowed.
    pub const USER: u64 = 1 << 2;
    /// PWT: write-through.
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// PCD: cache disabled.
    pub const CACHE_DISABLE: u64 = 1 << 4;
    /// A: set by the CPU on access.
    pub const ACCESSED: u64 = 1 << 5;
    /// D: set by the CPU on write (leaves).
    pub const DIRTY: u64 = 1 << 6;
    /// PS: a 2 MiB (PD) or 1 GiB (PDPT) leaf instead of a table.
    pub const HUGE: u64 = 1 << 7;
    /// G: kept across CR3 switches (needs CR4.PGE).
    pub const GLOBAL: u64 = 1 << 8;
    /// XD/NX: no instruction fetch (needs EFER.NXE).
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Physical address bits 12..51.
    pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
}

impl PageTableFormat for X86_64Format {
    const USER_END: u64 = 0x0000_8000_0000_0000;
    const KERNEL_START: u64 = 0xffff_8000_0000_0000;
    const PHYS_LIMIT: u64 = 1 << 52;

    fn table_entry(table_phys: u64) -> u64 {
        (table_phys & Self::ADDRESS_MASK) | Self::PRESENT | Self::WRITABLE | Self::USER
    }

    fn leaf_entry(frame: u64, flags: MapFlags, level: u8) -> u64 {
        if !flags.contains(MapFlags::READ) {
            return 0;
        }
        let mut entry = (frame & Self::ADDRESS_MASK) | Self::PRESENT;
        if flags.contains(MapFlags::WRITE) {
            entry |= Self::WRITABLE;
        }
        if !flags.contains(MapFlags::EXECUTE) {
            entry |= Self::NO_EXECUTE;
        }
        if flags.contains(MapFlags::USER) {
            entry |= Self::USER;
        } else if flags.contains(MapFlags::GLOBAL) {
            // A global user page would outlive a CR3 switch into another address space.
            entry |= Self::GLOBAL;
        }
        if flags.contains(MapFlags::DEVICE) {
            entry |= Self::CACHE_DISABLE | Self::WRITE_THROUGH;
        }
        if level > 0 {
            entry |= Self::HUGE;
        }
        entry
    }

    fn is_present(entry: u64) -> bool {
        entry & Self::PRESENT != 0
    }

    fn is_table(entry: u64, level: u8) -> bool {
        // PS is reserved in a PML4 entry (always a table) and means PAT in a PT entry (always
        // a page).
        match level {
            0 => false,
            3 => true,
            _ => entry & Self::HUGE == 0,
        }
    }

    fn address(entry: u64) -> u64 {
        // For a huge leaf bit 12 is the PAT bit, which is never set, so the mask is exact.
        entry & Self::ADDRESS_MASK
    }

    fn flags(entry: u64, _level: u8) -> MapFlags {
        let mut flags = MapFlags::READ;
        let bits = [
            (entry & Self::WRITABLE != 0, MapFlags::WRITE),
            (entry & Self::NO_EXECUTE == 0, MapFlags::EXECUTE),
            (entry & Self::USER != 0, MapFlags::USER),
            (entry & Self::GLOBAL != 0, MapFlags::GLOBAL),
            (entry & Self::CACHE_DISABLE != 0, MapFlags::DEVICE),
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
    use x86_64_crate::structures::paging::PageTableFlags as Independent;

    type F = X86_64Format;

    #[test]
    fn bits_agree_with_the_x86_64_crate() {
        assert_eq!(F::PRESENT, Independent::PRESENT.bits());
        assert_eq!(F::WRITABLE, Independent::WRITABLE.bits());
        assert_eq!(F::USER, Independent::USER_ACCESSIBLE.bits());
        assert_eq!(F::WRITE_THROUGH, Independent::WRITE_THROUGH.bits());
        assert_eq!(F::CACHE_DISABLE, Independent::NO_CACHE.bits());
        assert_eq!(F::ACCESSED, Independent::ACCESSED.bits());
        assert_eq!(F::DIRTY, Independent::DIRTY.bits());
        assert_eq!(F::HUGE, Independent::HUGE_PAGE.bits());
        assert_eq!(F::GLOBAL, Independent::GLOBAL.bits());
        assert_eq!(F::NO_EXECUTE, Independent::NO_EXECUTE.bits());
    }

    #[test]
    fn exact_encodings() {
        let r = MapFlags::READ;
        let (w, x, u) = (MapFlags::WRITE, MapFlags::EXECUTE, MapFlags::USER);
        let (g, d) = (MapFlags::GLOBAL, MapFlags::DEVICE);
        // User data page: P|RW|US|NX.
        assert_eq!(
            F::leaf_entry(0x1234_5000, r | w | u, 0),
            0x8000_0000_1234_5007
        );
        // User code page: P|US, executable.
        assert_eq!(F::leaf_entry(0x1000, r | x | u, 0), 0x1005);
        // Kernel text 2 MiB, global: P|PS|G.
        assert_eq!(F::leaf_entry(0x20_0000, r | x | g, 1), 0x20_0181);
        // Kernel rodata 1 GiB: P|PS|NX.
        assert_eq!(F::leaf_entry(0x4000_0000, r, 2), 0x8000_0000_4000_0081);
        // MMIO: P|RW|PWT|PCD|NX.
        assert_eq!(
            F::leaf_entry(0xfee0_0000, r | w | d, 0),
            0x8000_0000_fee0_001b
        );
        // A global user page is not global.
        assert_eq!(F::leaf_entry(0x1000, r | u | g, 0), 0x8000_0000_0000_1005);
        // No READ, no mapping.
        assert_eq!(F::leaf_entry(0x1000, w | u, 0), 0);
        // Tables are permissive: P|RW|US, executable.
        assert_eq!(F::table_entry(0xabc_d000), 0xabc_d007);
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
    fn halves_follow_sign_extension_from_bit_47() {
        assert_eq!(F::user_root_slots(), 0..256);
        for (va, canonical, user) in [
            (0, true, true),
            (0x0000_7fff_ffff_f000, true, true),
            (0x0000_8000_0000_0000, false, false),
            (0x7fff_ffff_ffff_ffff, false, false),
            (0xffff_7fff_ffff_ffff, false, false),
            (0xffff_8000_0000_0000, true, false),
            (u64::MAX, true, false),
        ] {
            assert_eq!(F::is_canonical(va), canonical, "{va:#x}");
            assert_eq!(F::is_user(va), user, "{va:#x}");
            // The rule is "bits 63..47 all equal".
            let top = va >> 47;
            assert_eq!(canonical, top == 0 || top == (1 << 17) - 1);
        }
    }
}

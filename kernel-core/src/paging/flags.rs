//! The portable rights of one mapping.
//!
//! Owns the vocabulary that every caller of the page-table layer uses to say what a mapping may
//! do. It is a plain set of bits: it must never know how an architecture encodes them (that is
//! [`PageTableFormat`](super::PageTableFormat)'s job) and never enforce policy such as W^X (the
//! [`Mapper`](super::Mapper) does, so that no caller can bypass it).

use bitflags::bitflags;

bitflags! {
    /// What a mapping allows.
    ///
    /// Both MMUs can only map pages that are at least readable, and a user mapping must never be
    /// global; [`effective`](Self::effective) says what a requested set turns into.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MapFlags: u32 {
        /// The page can be read (implied for every present mapping).
        const READ = 1 << 0;
        /// The page can be written. Never together with [`EXECUTE`](Self::EXECUTE) (W^X).
        const WRITE = 1 << 1;
        /// Instructions can be fetched from the page.
        const EXECUTE = 1 << 2;
        /// User mode can access the page (the rights above then apply to user mode; the kernel
        /// never executes user memory).
        const USER = 1 << 3;
        /// The translation survives address-space switches (kernel mappings only).
        const GLOBAL = 1 << 4;
        /// Uncached device memory (MMIO): x86 PCD|PWT, AArch64 Device-nGnRnE.
        const DEVICE = 1 << 5;
    }
}

impl MapFlags {
    /// The rights a mapping requested with `self` actually gets on every supported MMU.
    ///
    /// `READ` is added: neither x86 nor AArch64 can map a page that is writable or executable
    /// but not readable, so a mapping without `READ` would silently be "not present" on one of
    /// them. `GLOBAL` is dropped from a `USER` mapping: a global user translation would survive
    /// a switch to another address space and let that space see this one's page.
    pub fn effective(self) -> Self {
        let mut flags = self | Self::READ;
        if flags.contains(Self::USER) {
            flags.remove(Self::GLOBAL);
        }
        flags
    }

    /// True when the set asks for a page that is both writable and executable (refused).
    pub fn violates_wx(self) -> bool {
        self.contains(Self::WRITE | Self::EXECUTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_adds_read_and_strips_global_from_user() {
        assert_eq!(MapFlags::empty().effective(), MapFlags::READ);
        assert_eq!(
            MapFlags::WRITE.effective(),
            MapFlags::READ | MapFlags::WRITE
        );
        assert_eq!(
            (MapFlags::USER | MapFlags::GLOBAL | MapFlags::EXECUTE).effective(),
            MapFlags::READ | MapFlags::USER | MapFlags::EXECUTE
        );
        assert_eq!(
            (MapFlags::GLOBAL | MapFlags::DEVICE).effective(),
            MapFlags::READ | MapFlags::GLOBAL | MapFlags::DEVICE
        );
        for bits in 0..64 {
            let flags = MapFlags::from_bits_truncate(bits).effective();
            assert_eq!(flags.effective(), flags, "effective is idempotent");
        }
    }

    #[test]
    fn write_and_execute_together_is_the_only_wx_violation() {
        for bits in 0..64 {
            let flags = MapFlags::from_bits_truncate(bits);
            assert_eq!(
                flags.violates_wx(),
                flags.contains(MapFlags::WRITE) && flags.contains(MapFlags::EXECUTE)
            );
        }
    }
}

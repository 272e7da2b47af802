//! The AArch64 hooks of the portable page-table layer: table access through the HHDM and the
//! TTBR0/ASID side of user address spaces.
//!
//! Owns [`HhdmTables`] (kernel-core's `TableMemory`: every table, user or kernel, is reached at
//! `HHDM_BASE + its physical address`) and [`Spaces`] (kernel-core's `AddressSpaceHal`: TTBR0
//! with an ASID, TLB maintenance by ASID and VA). The portable `AddressSpace` and `Mapper` do
//! the rest; this module must never walk tables itself.
//!
//! Single CPU for now: the invalidations are the inner-shareable forms, which already reach
//! every CPU, so [`Spaces::shootdown`] has nothing to add. With SMP it stays empty on AArch64
//! (unlike x86, which will send IPIs), as long as every CPU is in the inner-shareable domain.

use crate::layout::{HHDM_PHYS_LIMIT, phys_to_virt};
use crate::mmu;
use arch_paging::Aarch64Format;
use core::arch::asm;
use kernel_core::paging::{AddressSpaceHal, ENTRIES, PAGE_SIZE, Shootdown, TableMemory};

/// Page tables by physical address, through the HHDM.
///
/// Valid for tables in RAM the current tables map: before `init_kernel_space` the frames below
/// `BootInfo::hhdm_limit` (the only ones the frame allocator hands out then), afterwards all RAM.
#[derive(Debug, Clone, Copy)]
pub struct HhdmTables;

impl HhdmTables {
    fn entry(table: u64, index: usize) -> *mut u64 {
        debug_assert!(
            table.is_multiple_of(PAGE_SIZE) && table < HHDM_PHYS_LIMIT && index < ENTRIES,
            "bad table access {table:#x}[{index}]"
        );
        (phys_to_virt(table) + index as u64 * 8) as *mut u64
    }
}

impl TableMemory for HhdmTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a page-table frame (the mapper only passes frames it allocated or a
        // root), RAM mapped read-write through the HHDM; the entry is aligned and in the table.
        unsafe { core::ptr::read_volatile(Self::entry(table, index)) }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        let entry = Self::entry(table, index);
        // SAFETY: as in `read` (mapped, aligned table RAM the serialised caller owns); the two
        // `dsb ishst` order this store after the zeroed table and publish it, `isb` applies it.
        unsafe {
            asm!(
                "dsb ishst",
                "str {value}, [{entry}]",
                "dsb ishst",
                "isb",
                entry = in(reg) entry,
                value = in(reg) value,
                options(nostack, preserves_flags)
            )
        };
    }

    fn zero(&mut self, table: u64) {
        for index in 0..ENTRIES {
            // SAFETY: as in `write`; the table is new and not yet linked, so plain stores are
            // enough (the `dsb` of the `write` that links it orders them before the link).
            unsafe { core::ptr::write_volatile(Self::entry(table, index), 0) };
        }
    }
}

/// The AArch64 user address-space hooks (TTBR0 tagged with an ASID).
#[derive(Debug)]
pub struct Spaces;

impl AddressSpaceHal for Spaces {
    type Format = Aarch64Format;
    type Memory = HhdmTables;

    fn memory() -> HhdmTables {
        HhdmTables
    }

    /// 256 or 65536, as TCR_EL1.AS is configured (`init_kernel_space` selects 16-bit ASIDs when
    /// ID_AA64MMFR0_EL1.ASIDBits offers them). ASID 0 stays with the kernel's empty user half.
    fn asid_count() -> u32 {
        mmu::asid_count()
    }

    /// Nothing to do: TTBR1 holds the kernel, so a user root starts empty.
    fn init_root(_mem: &mut HhdmTables, _root: u64) {}

    fn flush_page(asid: u32, va: u64) {
        mmu::flush_user_page(asid, va);
    }

    fn flush_asid(asid: u32) {
        mmu::flush_asid(asid);
    }

    fn flush_all_non_global() {
        mmu::flush_all();
    }

    fn activate(root: u64, asid: u32, flush: bool) {
        mmu::activate_user_root(root, asid, flush);
    }

    /// Empty: the `tlbi ..is` forms above already reach every CPU (see the module docs).
    fn shootdown(_request: Shootdown) {}
}

//! The MMU's system registers and TLB maintenance, each with its barriers.
//!
//! Owns every `tlbi`, every TTBR0/TTBR1/TCR/SCTLR write after boot and the feature checks they
//! depend on, so that the barrier rules live in one file:
//!
//! - a table store is bracketed by `dsb ishst` (`spaces::HhdmTables`), so the walker sees it;
//! - an invalidation is `dsb ishst` (the table change is visible) + `tlbi ..is` + `dsb ish`
//!   (complete on every CPU of the inner-shareable domain) + `isb` (this CPU's later
//!   instructions use the result);
//! - a TTBR or TCR write is followed by `isb` before anything depends on it.
//!
//! Only the `vae1is`/`vaae1is`/`aside1is`/`vmalle1is` forms are used for tables that may be
//! freed: they drop the walk-cache entries too (the `..le1` "last level" forms would not). This
//! module must never decide *what* to map or flush; callers do.

use core::arch::asm;

/// TLBI operand: bits 43:0 hold VA[55:12].
const TLBI_VA_MASK: u64 = (1 << 44) - 1;
/// TLBI and TTBR operands: the ASID in bits 63:48.
const ASID_SHIFT: u32 = 48;

/// TCR_EL1.EPD0 (bit 7): TTBR0 walks disabled.
const TCR_EPD0: u64 = 1 << 7;
/// TCR_EL1.AS (bit 36): 16-bit ASIDs.
const TCR_AS: u64 = 1 << 36;
/// SCTLR_EL1.WXN (bit 19): writable memory is never executable.
const SCTLR_WXN: u64 = 1 << 19;
/// SCTLR_EL1.SPAN (bit 23): 0 = an exception taken to EL1 sets PSTATE.PAN.
const SCTLR_SPAN: u64 = 1 << 23;
/// The PAN bit in the `PAN` special register (S3_0_C4_C2_3).
const PAN_BIT: u64 = 1 << 22;

/// What the CPU offers that the memory setup depends on (from the ID registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// ID_AA64MMFR0_EL1.ASIDBits = 0b0010: 16-bit ASIDs.
    pub asid16: bool,
    /// ID_AA64MMFR1_EL1.PAN != 0: Privileged Access Never.
    pub pan: bool,
}

/// Reads the ID registers.
pub fn features() -> Features {
    let (mmfr0, mmfr1): (u64, u64);
    // SAFETY: reading ID registers has no side effects and is always permitted at EL1.
    unsafe {
        asm!(
            "mrs {0}, id_aa64mmfr0_el1",
            "mrs {1}, id_aa64mmfr1_el1",
            out(reg) mmfr0,
            out(reg) mmfr1,
            options(nomem, nostack, preserves_flags)
        )
    };
    Features {
        asid16: (mmfr0 >> 4) & 0xf == 0b0010,
        pan: (mmfr1 >> 20) & 0xf != 0,
    }
}

fn read_tcr() -> u64 {
    let tcr: u64;
    // SAFETY: reading TCR_EL1 has no side effects.
    unsafe { asm!("mrs {}, tcr_el1", out(reg) tcr, options(nomem, nostack, preserves_flags)) };
    tcr
}

/// The number of ASIDs the TLB distinguishes as configured: 65536 when TCR_EL1.AS is set (the
/// kernel sets it when the CPU has 16-bit ASIDs), else 256.
pub fn asid_count() -> u32 {
    if read_tcr() & TCR_AS != 0 {
        1 << 16
    } else {
        1 << 8
    }
}

/// Makes `root` the kernel's TTBR1 tables and drops every TLB entry of the old ones.
///
/// Break-before-make does not apply to a TTBR switch as such, but a CPU may hold old and new
/// translations of one address at once until the `tlbi`: the caller guarantees that the code
/// and stack in use here translate identically (same output address, same 4 KiB page size) in
/// both trees, and this sequence touches no other memory in between.
pub fn switch_kernel_root(root: u64) {
    // SAFETY: `root` is a complete kernel tree mapping this code and stack identically (caller
    // contract); the barriers publish the tables first and `tlbi vmalle1` drops the old entries.
    unsafe {
        asm!(
            "dsb ish",
            "msr ttbr1_el1, {root}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            root = in(reg) root,
            options(nostack, preserves_flags)
        )
    };
}

/// Points TTBR0 at `root` with ASID 0 (the kernel's empty user half), turns TTBR0 walks on and
/// selects 16-bit ASIDs when `asid16`; then drops every TLB entry (TCR fields may be cached).
pub fn enable_user_half(empty_root: u64, asid16: bool) {
    let mut tcr = read_tcr() & !TCR_EPD0;
    if asid16 {
        tcr |= TCR_AS;
    }
    // SAFETY: TTBR0 gets an all-invalid root first, so enabling walks can only produce
    // translation faults for user addresses; the kernel runs from TTBR1, which neither write
    // affects. The TLB is then invalidated, so no entry cached under the old TCR survives.
    unsafe {
        asm!(
            "msr ttbr0_el1, {root}",
            "isb",
            "msr tcr_el1, {tcr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            root = in(reg) empty_root,
            tcr = in(reg) tcr,
            options(nostack, preserves_flags)
        )
    };
}

/// Sets SCTLR_EL1.WXN, and clears SPAN when `pan` (exceptions then set PSTATE.PAN); then drops
/// every TLB entry, since WXN may be cached in them.
///
/// Must run on the final tables only, where no kernel text is writable: on the boot tables WXN
/// would make the RWX kernel image non-executable.
pub fn harden_sctlr(pan: bool) {
    let mut sctlr: u64;
    // SAFETY: reading SCTLR_EL1 has no side effects.
    unsafe { asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack, preserves_flags)) };
    sctlr |= SCTLR_WXN;
    if pan {
        sctlr &= !SCTLR_SPAN;
    }
    // SAFETY: WXN only removes execute permission from writable pages, and no executable page of
    // the live tables is writable (W^X is enforced by the mapper); SPAN only changes PSTATE.PAN
    // on exception entry. The TLB is invalidated afterwards so the new rules apply everywhere.
    unsafe {
        asm!(
            "msr sctlr_el1, {sctlr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            sctlr = in(reg) sctlr,
            options(nostack, preserves_flags)
        )
    };
}

/// Sets PSTATE.PAN (the CPU must have PAN) and reports whether it reads back set.
pub fn enable_pan() -> bool {
    set_pan(true);
    pan_set()
}

/// Whether PSTATE.PAN is set (the CPU must have PAN).
pub fn pan_set() -> bool {
    let pan: u64;
    // SAFETY: reading PAN (S3_0_C4_C2_3) has no side effects.
    unsafe { asm!("mrs {}, S3_0_C4_C2_3", out(reg) pan, options(nomem, nostack, preserves_flags)) };
    pan & PAN_BIT != 0
}

/// Sets or clears PSTATE.PAN (the CPU must have PAN). Setting it is always safe: it only makes
/// EL1 data accesses to EL0 pages fault, and the user-copy path uses `ldtrb`/`sttrb`, which PAN
/// does not affect. Clearing it is for the trap-entry test only.
pub fn set_pan(on: bool) {
    let value = if on { PAN_BIT } else { 0 };
    // SAFETY: PAN only decides whether EL1 data accesses to EL0 pages fault (S3_0_C4_C2_3 is
    // PAN by its generic name); the one caller that clears it touches no user memory meanwhile.
    unsafe {
        asm!(
            "msr S3_0_C4_C2_3, {}",
            "isb",
            in(reg) value,
            options(nostack, preserves_flags)
        )
    };
}

/// Makes `root` the user half of this CPU under `asid`; with `flush`, first drops whatever this
/// CPU's TLB holds for `asid`. Makes sure TTBR0 walks are enabled.
pub fn activate_user_root(root: u64, asid: u32, flush: bool) {
    let tag = u64::from(asid) << ASID_SHIFT;
    if flush {
        // SAFETY: invalidating TLB entries of one ASID only costs refills. The current TTBR0 holds
        // another ASID, so nothing can refill `asid` before the switch below.
        unsafe {
            asm!(
                "dsb ishst",
                "tlbi aside1, {tag}",
                "dsb nsh",
                tag = in(reg) tag,
                options(nostack, preserves_flags)
            )
        };
    }
    let tcr = read_tcr();
    if tcr & TCR_EPD0 != 0 {
        // Only before `init_kernel_space`, which clears it for good (the boot code sets it).
        // SAFETY: enabling TTBR0 walks exposes exactly the tables written next, with a TLB
        // flushed of stale TCR state.
        unsafe {
            asm!(
                "msr tcr_el1, {tcr}",
                "isb",
                "tlbi vmalle1",
                "dsb nsh",
                tcr = in(reg) tcr & !TCR_EPD0,
                options(nostack, preserves_flags)
            )
        };
    }
    // SAFETY: TTBR0 translates only the user half, where the kernel keeps no code, stack or data
    // of its own; the caller passes a root built by the mapper (a valid table), and the ASID
    // travels in the same register write, so root and tag change together.
    unsafe {
        asm!(
            "msr ttbr0_el1, {value}",
            "isb",
            value = in(reg) root | tag,
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidates the translation of user page `va` under `asid`, on every CPU.
pub fn flush_user_page(asid: u32, va: u64) {
    let operand = (u64::from(asid) << ASID_SHIFT) | ((va >> 12) & TLBI_VA_MASK);
    // SAFETY: TLB invalidation has no effect but refills.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vae1is, {op}",
            "dsb ish",
            "isb",
            op = in(reg) operand,
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidates every translation of `asid`, on every CPU.
pub fn flush_asid(asid: u32) {
    let operand = u64::from(asid) << ASID_SHIFT;
    // SAFETY: TLB invalidation has no effect but refills.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi aside1is, {op}",
            "dsb ish",
            "isb",
            op = in(reg) operand,
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidates every translation (there is no "non-global only" form), on every CPU.
pub fn flush_all() {
    // SAFETY: TLB invalidation has no effect but refills.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Invalidates the kernel (global) translations of the pages `[start, end)`, on every CPU.
pub fn flush_kernel_range(start: u64, end: u64) {
    // SAFETY: ordering the table stores before the invalidations has no other effect.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
    let mut va = start;
    while va < end {
        // SAFETY: TLB invalidation has no effect but refills; `vaae1is` matches every ASID, so
        // it drops global entries and the walk caches for `va`.
        unsafe {
            asm!(
                "tlbi vaae1is, {op}",
                op = in(reg) (va >> 12) & TLBI_VA_MASK,
                options(nostack, preserves_flags)
            )
        };
        va += 4096;
    }
    // SAFETY: waiting for the invalidations to complete has no other effect.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

//! The kernel GDT and TSS.
//!
//! Owns the segment selectors and the interrupt stack table. Long mode ignores segmentation
//! except for the code segment's privilege level and the TSS, which supplies the stack the CPU
//! switches to for double faults (IST1), so that a fault on a broken stack still gets reported,
//! and the stack an interrupt or exception from user mode lands on (RSP0, the running thread's
//! kernel stack, set at every switch by [`set_rsp0`]). The order of the user segments is the one
//! SYSRET requires (user data, then user code, see `user.rs`). It must be loaded exactly once
//! per CPU, before the IDT.

use core::cell::UnsafeCell;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (0-based, as the TSS table is indexed) of the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;
const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; DOUBLE_FAULT_STACK_SIZE]>);

// SAFETY: Rust code never reads or writes the stack; only its address is taken, and the CPU
// alone writes to it when it delivers a double fault.
unsafe impl Sync for Stack {}

/// Interior-mutable so that it lands in writable `.bss`: the CPU pushes onto it.
static DOUBLE_FAULT_STACK: Stack = Stack(UnsafeCell::new([0; DOUBLE_FAULT_STACK_SIZE]));

/// The user data selector (RPL 3) that [`init`]'s GDT order produces; the syscall entry pushes it
/// and SYSRET loads it, so it is a constant rather than looked up on every system call.
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
/// The user code selector (RPL 3), directly after the user data one as SYSRET requires.
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;

/// The selectors of the GDT built by [`init`].
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    /// Ring-0 64-bit code.
    pub code: SegmentSelector,
    /// Ring-0 data.
    pub data: SegmentSelector,
    /// Ring-3 data (RPL 3); directly after `data`, as SYSRET expects.
    pub user_data: SegmentSelector,
    /// Ring-3 64-bit code (RPL 3); directly after `user_data`, as SYSRET expects.
    pub user_code: SegmentSelector,
    tss: SegmentSelector,
}

/// The TSS, written by the CPU's reads only, and by [`set_rsp0`] with interrupts masked.
struct TssCell(UnsafeCell<TaskStateSegment>);

// SAFETY: one CPU runs; `set_rsp0` writes one field with interrupts masked (from the scheduler's
// switch path), and the CPU reads it only on a privilege change, which cannot happen mid-write.
unsafe impl Sync for TssCell {}

static TSS: TssCell = TssCell(UnsafeCell::new(TaskStateSegment::new()));
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// The selectors (after [`init`]).
pub fn selectors() -> Selectors {
    GDT.get().expect("GDT used before gdt::init").1
}

/// Sets the stack the CPU switches to on an interrupt or exception from user mode.
pub fn set_rsp0(top: u64) {
    // SAFETY: see `TssCell`: the only writer, with interrupts masked, of a field the CPU reads
    // only on a ring change.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
}

/// Builds and loads the GDT and TSS, reloading every segment register.
pub fn init() {
    let stack_start = VirtAddr::from_ptr(DOUBLE_FAULT_STACK.0.get());
    let tss_cell = TSS.0.get();
    // SAFETY: `init` runs once, on the boot CPU, before anything else uses the TSS.
    unsafe {
        (*tss_cell).interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack_start + DOUBLE_FAULT_STACK_SIZE as u64
    };
    // SAFETY: the TSS is a static that lives forever; from here on only `set_rsp0` writes it
    // (one field, see `TssCell`).
    let tss: &'static TaskStateSegment = unsafe { &*tss_cell };
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (
            gdt,
            Selectors {
                code,
                data,
                user_data,
                user_code,
                tss,
            },
        )
    });
    // The constants above are what the entry code relies on; the GDT order must produce them.
    assert!(
        selectors.user_data.0 == USER_DATA_SELECTOR && selectors.user_code.0 == USER_CODE_SELECTOR,
        "the GDT's user selectors moved: {selectors:?}"
    );
    gdt.load();
    // SAFETY: (this and the four below) the selectors index the static GDT just loaded: ring-0
    // 64-bit code, ring-0 data, and the never-freed TSS, so execution continues unchanged.
    unsafe { CS::set_reg(selectors.code) };
    // SAFETY: see above.
    unsafe { SS::set_reg(selectors.data) };
    // SAFETY: see above.
    unsafe { DS::set_reg(selectors.data) };
    // SAFETY: see above.
    unsafe { ES::set_reg(selectors.data) };
    // SAFETY: see above.
    unsafe { load_tss(selectors.tss) };
}

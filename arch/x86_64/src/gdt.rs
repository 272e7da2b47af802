//! The kernel GDT and TSS.
//!
//! Owns the segment selectors and the interrupt stack table. Long mode ignores segmentation
//! except for the code segment's privilege level and the TSS, which supplies the stack the CPU
//! switches to for double faults (IST1), so that a fault on a broken stack still gets reported.
//! It must be loaded exactly once per CPU, before the IDT.

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

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Builds and loads the GDT and TSS, reloading every segment register.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let stack_start = VirtAddr::from_ptr(DOUBLE_FAULT_STACK.0.get());
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] =
            stack_start + DOUBLE_FAULT_STACK_SIZE as u64;
        tss
    });
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
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

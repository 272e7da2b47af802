//! The Strait kernel executable.
//!
//! Owns the boot sequence: it wires one architecture crate to `kernel-core` and walks the boot
//! stages in order (`serial`, `bootinfo`, `frames`, `heap`, `traps`, `paging`, `hhdm`,
//! `addrspace`, `timer`, `sched`), printing one `[stage]` line
//! for each, then runs the in-kernel tests the command line selects. Each stage either succeeds
//! or stops the boot with its reason; nothing here may fail silently.
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod klog;
mod ktrace;
mod memory;
mod panic;
mod platform;
mod sched;
mod selftests;
mod tlb_tags;
mod user;

use console::Console;
use kernel_core::boot_info::BootInfo;
use kernel_core::cmdline::{Cmdline, TestSelection};
use kernel_core::console as protocol;
use kernel_core::hal::{BOOT_STACK_OWNER, ExitStatus, KernelStack, Platform};
use kernel_core::selftest;
use platform::Machine;
use spin::Once;

platform::entry_point!(kernel_main);

fn kernel_main() -> ! {
    kprintln!("Strait microkernel ({}) booting", Machine::NAME);
    let _ = protocol::stage(&mut Console::new(), "serial", Ok(()));

    let info = Machine::boot_info();
    report_boot_info(info);
    let cmdline = Cmdline::parse(info.cmdline);
    for word in &cmdline.rejected {
        kprintln!("[cmdline] ignored {:?}: not a known option", word);
    }
    if cmdline.rejected_overflow {
        kprintln!("[cmdline] ignored more words than listed above");
    }
    let testing = cmdline.tests != TestSelection::None;
    if info.usable_bytes() == 0 {
        fail_stage("bootinfo", &"the memory map has no usable RAM", testing);
    }
    let _ = protocol::stage(&mut Console::new(), "bootinfo", Ok(()));

    match memory::init_frames(info) {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "frames", Ok(()));
        }
        Err(reason) => fail_stage("frames", &reason, testing),
    }
    match memory::init_heap() {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "heap", Ok(()));
        }
        Err(reason) => fail_stage("heap", &reason, testing),
    }
    match Machine::init_traps() {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "traps", Ok(()));
        }
        Err(reason) => fail_stage("traps", &reason, testing),
    }

    let report = {
        let mut frames = memory::FRAMES.lock_irqsave();
        let frames = frames.as_mut().expect("the frames stage succeeded");
        Machine::init_kernel_space(info, frames)
    };
    match report {
        Ok(report) => {
            kprintln!(
                "[paging] kernel tables live: {} MiB direct-mapped, {} TLB tags, \
                 user pages not executable by the kernel: {}, not accessible outside user copies: {}",
                report.hhdm_bytes >> 20,
                report.tlb_tags,
                report.user_execute_blocked,
                report.user_access_blocked
            );
            memory::init_address_spaces(report);
            let _ = protocol::stage(&mut Console::new(), "paging", Ok(()));
        }
        Err(reason) => fail_stage("paging", &reason, testing),
    }
    // From here on the boot CPU runs on a stack with a guard page.
    let stack = {
        let mut frames = memory::FRAMES.lock_irqsave();
        let frames = frames.as_mut().expect("the frames stage succeeded");
        Machine::new_kernel_stack(frames, BOOT_STACK_OWNER)
    };
    match stack {
        Ok(stack) => {
            BOOT_TESTS.call_once(|| cmdline.tests);
            BOOT_BENCH.call_once(|| cmdline.bench);
            BOOT_INIT.call_once(|| cmdline.init);
            BOOT_STACK.call_once(|| stack);
            Machine::run_on_stack(&stack, continue_on_guarded_stack)
        }
        Err(error) => fail_stage("paging", &error, testing),
    }
}

/// The test selection, carried across the switch to the guarded boot stack.
static BOOT_TESTS: Once<TestSelection<'static>> = Once::new();
/// Whether this is a benchmark boot (`bench` on the command line).
static BOOT_BENCH: Once<bool> = Once::new();
/// The initrd entry to start first (`init=NAME`), if not `init`.
static BOOT_INIT: Once<Option<&'static str>> = Once::new();
/// The guarded boot stack, which becomes the boot thread's.
static BOOT_STACK: Once<KernelStack> = Once::new();

/// The rest of the boot, on a guarded stack: the `hhdm` and `addrspace` stages, then the tests.
fn continue_on_guarded_stack() -> ! {
    let tests = *BOOT_TESTS.get().expect("set before the stack switch");
    let testing = tests != TestSelection::None;
    match memory::release_and_check_hhdm(Machine::boot_info()) {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "hhdm", Ok(()));
        }
        Err(reason) => fail_stage("hhdm", &reason, testing),
    }
    match memory::address_space_smoke_test() {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "addrspace", Ok(()));
        }
        Err(reason) => fail_stage("addrspace", &reason, testing),
    }
    match sched::start_timer() {
        Ok(report) => {
            kprintln!(
                "[timer] {} Hz tick from a {} Hz event timer, monotonic clock at {} Hz",
                report.tick_hz,
                report.event_hz,
                report.clock_hz
            );
            let _ = protocol::stage(&mut Console::new(), "timer", Ok(()));
        }
        Err(reason) => fail_stage("timer", &reason, testing),
    }
    let boot_stack = *BOOT_STACK.get().expect("set before the stack switch");
    match sched::start(boot_stack) {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "sched", Ok(()));
        }
        Err(reason) => fail_stage("sched", &reason, testing),
    }

    let bench = BOOT_BENCH.get().copied().unwrap_or(false);
    match user::init()
        .map_err(alloc::string::String::from)
        .and_then(|()| user::loader::probe())
    {
        Ok(()) => {
            let _ = protocol::stage(&mut Console::new(), "user", Ok(()));
        }
        Err(reason) => fail_stage("user", &reason, testing || bench),
    }
    let init_name = BOOT_INIT.get().copied().flatten();
    let before_user = resources_in_use();
    let init = match user::loader::load_init(Machine::boot_info(), init_name) {
        Ok(thread) => {
            let _ = protocol::stage(&mut Console::new(), "init", Ok(()));
            thread
        }
        Err(reason) => fail_stage("init", &reason, testing || bench),
    };

    let loaded = resources_in_use();
    let summary = if testing {
        selftest::run_selected(
            selftests::ALL,
            &tests,
            user::USER_TESTS,
            &mut (),
            &mut Console::new(),
        )
    } else {
        selftest::Summary::default()
    };
    // What the kernel tests themselves kept for good (kernel page tables grown for new stack
    // slots), so that the user-space check below compares like with like.
    let kernel_tests = resources_in_use();
    let expected = (
        before_user.0 + kernel_tests.0 - loaded.0,
        before_user.1 + kernel_tests.1 - loaded.1,
    );
    // User space runs after the kernel's own tests, so that their timing is not disturbed.
    user::loader::start(init);
    let exit = sched::join(init);
    let (user_passed, user_failed) = user::loader::user_test_counts();
    let mut failed = summary.failed + user_failed;
    // Every process is gone once init has ended: each thread slot, frame and page table of user
    // space must be back (threads killed while blocked in IPC included).
    let after_user = resources_in_use();
    if after_user == expected {
        kprintln!(
            "[init] every user thread slot and frame came back ({} free slots, {} free frames)",
            after_user.0,
            after_user.1
        );
    } else if testing || bench {
        let reason = alloc::format!(
            "user space leaked: free thread slots {} (expected {}), free frames {} (expected {})",
            after_user.0,
            expected.0,
            after_user.1,
            expected.1
        );
        let _ = protocol::test(&mut Console::new(), "user_resources", Err(&reason));
        failed += 1;
    }
    match exit {
        Ok(0) => kprintln!("[init] exited with code 0"),
        other => {
            kprintln!("[init] ended with {other:?}");
            if testing || bench {
                let reason = alloc::format!("init ended with {other:?}");
                let _ = protocol::test(&mut Console::new(), "init_exit", Err(&reason));
                failed += 1;
            }
        }
    }
    if !(testing || bench) {
        kprintln!("[boot] init has exited; halting this CPU");
        Machine::halt_forever();
    }
    let passed = summary.passed + user_passed;
    let _ = protocol::done(&mut Console::new(), passed, failed);
    Machine::exit(if failed == 0 {
        ExitStatus::Passed
    } else {
        ExitStatus::Failed
    })
}

/// Free thread slots and free frames, after reclaiming what is pending (dead kernel stacks,
/// retired processes).
fn resources_in_use() -> (usize, usize) {
    sched::reap();
    user::objects::bury();
    let frames = memory::FRAMES
        .lock_irqsave()
        .as_ref()
        .map_or(0, |f| f.free_frames());
    (sched::THREADS.free_count(), frames)
}

/// Prints the `[stage] NAME FAILED reason` line and stops: a test boot exits with a failure
/// status, a normal boot halts so the console stays readable.
fn fail_stage(name: &str, reason: &dyn core::fmt::Display, testing: bool) -> ! {
    let _ = protocol::stage(&mut Console::new(), name, Err(reason));
    if testing {
        Machine::exit(ExitStatus::Failed);
    }
    Machine::halt_forever()
}

fn report_boot_info(info: &BootInfo) {
    kprintln!(
        "[bootinfo] source {:?}, {} memory regions, {} MiB usable, {} reserved ranges, {} cpu(s)",
        info.source,
        info.memory.len(),
        info.usable_bytes() >> 20,
        info.reserved.len(),
        info.cpu_count
    );
    kprintln!(
        "[bootinfo] kernel image {}, hhdm at {:#x}",
        info.kernel_image,
        info.hhdm_offset
    );
    kprintln!("[bootinfo] cmdline {:?}", info.cmdline);
    if let Some(initrd) = info.initrd {
        kprintln!("[bootinfo] initrd {}", initrd);
    }
    if let Some(rsdp) = info.acpi_rsdp {
        kprintln!("[bootinfo] acpi rsdp {:#x}", rsdp);
    }
    if let Some(dtb) = info.device_tree {
        kprintln!("[bootinfo] device tree {}", dtb);
    }
    if let Some(console) = info.console {
        kprintln!("[bootinfo] console {:?}", console);
    }
    if let Some(ic) = info.interrupt_controller {
        kprintln!("[bootinfo] interrupt controller {:?}", ic);
    }
    if let Some(timer) = info.timer {
        kprintln!("[bootinfo] timer {:?}", timer);
    }
    if let Some(psci) = info.psci {
        kprintln!("[bootinfo] psci via {:?}", psci);
    }
    for warning in &info.warnings {
        kprintln!("[bootinfo] warning: {}", warning);
    }
}

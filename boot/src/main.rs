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

mod census;
mod console;
mod klog;
mod ktrace;
mod memory;
mod panic;
mod percpu;
mod platform;
mod sched;
#[cfg(feature = "testing")]
mod selftests;
mod tcb;
#[cfg(feature = "testing")]
mod testing;
mod tlb_tags;
mod user;

use census::Census;
use console::Console;
use kernel_core::boot_info::BootInfo;
use kernel_core::cmdline::{Cmdline, TestSelection};
use kernel_core::console as protocol;
use kernel_core::hal::{BOOT_STACK_OWNER, ExitStatus, KernelStack, Platform};
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
    if cmdline.tests.is_test_boot() && !cfg!(feature = "testing") {
        kprintln!(
            "[cmdline] ignored the test selection: this kernel is built without tests \
             (`cargo xtask test` builds and boots a test image)"
        );
    }
    let testing = test_boot(cmdline.tests);
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
            BOOT_EXACT_CLOCK.call_once(|| cmdline.exact_clock);
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
/// Whether guest time counts instructions (`clock=icount`): timing bounds in tests hold exactly.
static BOOT_EXACT_CLOCK: Once<bool> = Once::new();

/// Whether this boot runs tests: a `test=` selection on a kernel built with them.
fn test_boot(selection: TestSelection<'_>) -> bool {
    cfg!(feature = "testing") && selection.is_test_boot()
}
/// The initrd entry to start first (`init=NAME`), if not `init`.
static BOOT_INIT: Once<Option<&'static str>> = Once::new();
/// The guarded boot stack, which becomes the boot thread's.
static BOOT_STACK: Once<KernelStack> = Once::new();

/// The rest of the boot, on a guarded stack: the `hhdm` and `addrspace` stages, then the tests.
fn continue_on_guarded_stack() -> ! {
    let tests = *BOOT_TESTS.get().expect("set before the stack switch");
    let testing = test_boot(tests);
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
    #[cfg(feature = "testing")]
    if testing {
        testing::begin(tests);
    }
    let before_user = Census::take();
    let init = match user::loader::load_init(Machine::boot_info(), init_name) {
        Ok(init) => {
            let _ = protocol::stage(&mut Console::new(), "init", Ok(()));
            init
        }
        Err(reason) => fail_stage("init", &reason, testing || bench),
    };

    let loaded = Census::take();
    #[cfg(feature = "testing")]
    if testing {
        testing::set_init(init.process);
        let exact_clock = BOOT_EXACT_CLOCK.get().copied().unwrap_or(false);
        testing::run_kernel_tests(testing::TestEnv { exact_clock });
    }
    // What the kernel tests themselves kept for good (kernel page tables grown for new stack
    // slots), so that the user-space check below compares like with like.
    let kernel_tests = Census::take();
    let expected = before_user.minus_frames_kept(loaded, kernel_tests);
    // User space runs after the kernel's own tests, so that their timing is not disturbed.
    user::loader::start(init.thread);
    let exit = sched::join(init.thread);
    // Every process is gone once init has ended: each thread slot, frame, page table, endpoint,
    // notification, process and heap byte of user space must be back (threads killed while
    // blocked in IPC included).
    let after_user = Census::take();
    let resources = match expected.and_then(|expected| {
        after_user
            .compare(&expected)
            .map_err(|differences| alloc::format!("user space leaked: {differences}"))
    }) {
        Ok(()) => {
            let (slots, frames) = after_user.slots_and_frames();
            kprintln!(
                "[init] every user thread slot, frame, kernel object and heap byte came back \
                 ({slots} free slots, {frames} free frames)"
            );
            Ok(())
        }
        Err(reason) => Err(reason),
    };
    let init_exit = match exit {
        Ok(0) => {
            kprintln!("[init] exited with code 0");
            Ok(())
        }
        other => {
            kprintln!("[init] ended with {other:?}");
            Err(alloc::format!("init ended with {other:?}"))
        }
    };
    #[cfg(feature = "testing")]
    if testing {
        let status = testing::finish(|check| match check {
            "user_resources" => resources.clone(),
            "init_exit" => init_exit.clone(),
            other => Err(alloc::format!("no after-init check called {other}")),
        });
        Machine::exit(status);
    }
    if bench {
        // A benchmark boot ends with a status the harness checks: a leak or a failed init
        // fails the run.
        let mut failed = 0;
        for reason in [&resources, &init_exit]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
        {
            kprintln!("[boot] benchmark boot failed: {reason}");
            failed += 1;
        }
        let _ = protocol::done(&mut Console::new(), 0, failed, 0);
        Machine::exit(if failed == 0 {
            ExitStatus::Passed
        } else {
            ExitStatus::Failed
        });
    }
    // A normal boot ends with init (until there is a shell): QEMU exits with init's status.
    let status = ExitStatus::init_status(exit.ok());
    kprintln!("[boot] init has ended; exiting with its status {status}");
    Machine::exit(ExitStatus::InitExited(status))
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

//! In-kernel tests for the foundation: frames, heap, backtraces and the deliberate crashes.
//!
//! Owns the list of tests `test=` can name. Each test checks real kernel state and fails with a
//! reason; the boot-ending ones (`fault_unmapped`, `fault_undefined`, `panic`) exist so the
//! harness can prove that a trap or panic produces a symbolized report. Tests must leave the
//! kernel as they found it (every frame and heap byte returned), because later tests run after
//! them in the same boot.

mod mm;
mod threads;

use crate::memory::{self, FRAMES};
use crate::platform::Machine;
use crate::testing::TestEnv;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kernel_core::backtrace;
use kernel_core::frame_alloc::FrameError;
use kernel_core::hal::{DeliberateFault, Platform};
use kernel_core::memory_map::FRAME_SIZE;
use kernel_core::selftest::{self, KernelTest};

/// Every in-kernel test, in the test catalog's order (checked when this is compiled: a test
/// added here and not to `tests/catalog`, or the other way round, does not build).
pub const ALL: [KernelTest<TestEnv>; 22] = [
    KernelTest::new("frames_alloc_free", frames_alloc_free),
    KernelTest::new("frames_exhaust", frames_exhaust),
    KernelTest::new("heap_alloc", heap_alloc),
    KernelTest::new("heap_realloc_no_leak", heap_realloc_no_leak),
    KernelTest::new("backtrace_walk", backtrace_walk),
    KernelTest::new("mm_wx", mm::wx),
    KernelTest::new("mm_two_spaces", mm::two_spaces),
    KernelTest::new("mm_teardown_leak", mm::teardown_leak),
    KernelTest::new("mm_error_paths", mm::error_paths),
    KernelTest::new("mm_asid_rollover", mm::asid_rollover).skip_when(mm::asid_rollover_unsupported),
    KernelTest::new("kthread_join", threads::kthread_join),
    KernelTest::new("sched_fairness", threads::sched_fairness),
    KernelTest::new("sleep_accuracy", threads::sleep_accuracy),
    KernelTest::new("log_from_irq", threads::log_from_irq),
    KernelTest::new("lock_diagnostics", threads::lock_diagnostics),
    KernelTest::new("watchdog_stall", threads::watchdog_stall),
    KernelTest::new(
        "user_access_closed_in_traps",
        mm::user_access_closed_in_traps,
    )
    .skip_when(mm::no_user_access_guard),
    KernelTest::new("mm_guard_page", mm::guard_page),
    KernelTest::new("mm_user_access", mm::direct_user_access),
    KernelTest::new("fault_unmapped", fault_unmapped),
    KernelTest::new("fault_undefined", fault_undefined),
    KernelTest::new("panic", deliberate_panic),
];

const _: () = assert!(
    selftest::matches_catalog(&ALL),
    "boot/src/selftests.rs ALL and the kernel tests of tests/catalog differ"
);

pub(crate) fn check(condition: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(reason()) }
}

/// Writes `value` into the first word of frame `phys` through the HHDM.
fn write_frame_word(phys: u64, value: u64) {
    // SAFETY: the callers only pass frames they hold from the frame allocator, which are RAM
    // below the boot HHDM limit, mapped read-write, frame aligned and owned by nobody else.
    unsafe { core::ptr::write_volatile(memory::phys_to_virt(phys) as *mut u64, value) }
}

/// Reads the first word of frame `phys` through the HHDM.
fn read_frame_word(phys: u64) -> u64 {
    // SAFETY: as in `write_frame_word`: an allocated, mapped, aligned frame the caller owns.
    unsafe { core::ptr::read_volatile(memory::phys_to_virt(phys) as *const u64) }
}

/// Allocates 256 frames, checks they are distinct, aligned and writable, frees them, and checks
/// that the free count returns exactly and that freeing twice is refused.
fn frames_alloc_free(_: &mut TestEnv) -> Result<(), String> {
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    let before = frames.free_frames();
    let mut taken = Vec::new();
    for i in 0..256u64 {
        let frame = frames
            .allocate()
            .ok_or_else(|| format!("out of frames after {i}"))?;
        check(frame % FRAME_SIZE == 0, || {
            format!("frame {frame:#x} is not aligned")
        })?;
        write_frame_word(frame, frame ^ 0x5a5a_5a5a);
        taken.push(frame);
    }
    for &frame in &taken {
        let seen = read_frame_word(frame);
        check(seen == frame ^ 0x5a5a_5a5a, || {
            format!("frame {frame:#x} handed out twice")
        })?;
    }
    check(frames.free_frames() == before - 256, || {
        "free count did not drop by 256".into()
    })?;
    for &frame in &taken {
        frames
            .free(frame)
            .map_err(|e| format!("free {frame:#x}: {e:?}"))?;
    }
    let again = frames.free(taken[0]);
    check(again == Err(FrameError::DoubleFree), || {
        format!("double free gave {again:?}")
    })?;
    check(frames.free_frames() == before, || {
        format!(
            "free count {} after, {} before",
            frames.free_frames(),
            before
        )
    })
}

/// Takes every free frame, chaining them through their first word, then walks the chain to
/// free them all. A frame handed out twice would break the chain; a leak would show in the count.
fn frames_exhaust(_: &mut TestEnv) -> Result<(), String> {
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    let before = frames.free_frames();
    let mut head = 0u64; // 0 ends the chain: frame 0 is never free (reserved on both machines).
    let mut count = 0usize;
    while let Some(frame) = frames.allocate() {
        check(frame != 0, || "frame 0 was handed out".into())?;
        write_frame_word(frame, head);
        head = frame;
        count += 1;
    }
    check(count == before, || {
        format!("allocated {count} frames, {before} were free")
    })?;
    check(frames.free_frames() == 0, || {
        "allocator still reports free frames".into()
    })?;
    let mut freed = 0usize;
    while head != 0 {
        let next = read_frame_word(head);
        frames
            .free(head)
            .map_err(|e| format!("free {head:#x} after {freed}: {e:?}"))?;
        head = next;
        freed += 1;
    }
    check(freed == count, || {
        format!("chain held {freed} frames, {count} were taken")
    })?;
    check(frames.free_frames() == before, || {
        "free count did not return".into()
    })
}

/// Exercises the heap with many small, a few large and structured allocations, and checks that
/// every byte comes back.
fn heap_alloc(_: &mut TestEnv) -> Result<(), String> {
    let before = memory::heap_bytes_in_use();
    {
        let numbers: Vec<u64> = (0..10_000).collect();
        check(numbers.iter().sum::<u64>() == 49_995_000, || {
            "vector contents wrong".into()
        })?;
        let big = alloc::vec![0xa5u8; 512 * 1024];
        check(big.iter().all(|&b| b == 0xa5), || {
            "large block contents wrong".into()
        })?;
        let mut map = BTreeMap::new();
        for i in 0..1000u32 {
            map.insert(i, Box::new(i * 3));
        }
        check(map.get(&999).map(|b| **b) == Some(2997), || {
            "map lookup wrong".into()
        })?;
    }
    let after = memory::heap_bytes_in_use();
    check(after == before, || {
        format!("heap leaked {} bytes", after as i64 - before as i64)
    })
}

/// Grows and shrinks buffers through `realloc` many times (an earlier kernel leaked the old
/// block on every grow) and checks that the heap returns to where it started.
fn heap_realloc_no_leak(_: &mut TestEnv) -> Result<(), String> {
    let before = memory::heap_bytes_in_use();
    for round in 0..200usize {
        let mut buffer: Vec<u8> = Vec::with_capacity(1);
        for i in 0..(round * 37 % 4096 + 1) {
            buffer.push(i as u8);
        }
        buffer.shrink_to_fit();
        let expected = (0..buffer.len()).all(|i| buffer[i] == i as u8);
        check(expected, || {
            format!("round {round}: contents lost in realloc")
        })?;
    }
    let after = memory::heap_bytes_in_use();
    check(after == before, || {
        format!("heap leaked {} bytes", after as i64 - before as i64)
    })
}

// SAFETY: the linker scripts (boot/linker/*.ld) define both symbols, page aligned, around the
// kernel's text on both machines; only their addresses are taken, never their bytes read.
unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
}

/// The kernel's text section `[start, end)`: where every kernel return address must lie.
fn kernel_text() -> (u64, u64) {
    (&raw const __text_start as u64, &raw const __text_end as u64)
}

/// How far past its first byte each function of the walk below may hold the return address of
/// its call one level deeper. A return address lies just past its call instruction, inside the
/// caller. A window that starts at the caller's first byte and is shorter than the caller lies
/// inside it and holds no other function's code, so a return address in it belongs to that
/// function's frame and to no other.
///
/// `backtrace_depth_1` and `backtrace_depth_2` are a frame-pointer prologue, the call and an
/// epilogue: 35 bytes on x86_64 (return address at +0x11), 44 on AArch64 (+0x14). Their window
/// is 32 bytes: past the call, inside the function. `backtrace_walk` makes its call right after
/// saving its callee-saved registers (return address at +0x41 on x86_64, +0x30 on AArch64) and
/// is over 700 bytes long: 128. A compiler that moves a call past its window fails the test,
/// with the offsets printed; it cannot make a wrong frame pass.
const DEPTH_CALL_WINDOW: u64 = 32;
const WALK_CALL_WINDOW: u64 = 128;

#[inline(never)]
fn backtrace_depth_3(out: &mut Vec<u64>) {
    backtrace::walk(
        Machine::frame_pointer(),
        Machine::read_stack_word,
        |_, ra| out.push(ra),
    );
}

#[inline(never)]
fn backtrace_depth_2(out: &mut Vec<u64>) {
    backtrace_depth_3(out);
    core::hint::black_box(&out);
}

#[inline(never)]
fn backtrace_depth_1(out: &mut Vec<u64>) {
    backtrace_depth_2(out);
    core::hint::black_box(&out);
}

/// Walks the stack from three calls deep (the walk starts from `backtrace_depth_3`'s own frame,
/// `Machine::frame_pointer` being inlined, so its first frame is the return into
/// `backtrace_depth_2`): every return address must lie in the kernel's
/// text, and the first three must be the calls of `backtrace_depth_2`, `backtrace_depth_1` and
/// this test, in that order, each inside its function's call window.
fn backtrace_walk(_: &mut TestEnv) -> Result<(), String> {
    let mut frames = Vec::new();
    backtrace_depth_1(&mut frames);
    let depth_2 = backtrace_depth_2 as fn(&mut Vec<u64>) as usize as u64;
    let depth_1 = backtrace_depth_1 as fn(&mut Vec<u64>) as usize as u64;
    let walk = backtrace_walk as fn(&mut TestEnv) -> Result<(), String> as usize as u64;
    let expected = [
        ("backtrace_depth_2", depth_2, DEPTH_CALL_WINDOW),
        ("backtrace_depth_1", depth_1, DEPTH_CALL_WINDOW),
        ("backtrace_walk", walk, WALK_CALL_WINDOW),
    ];
    // Past this test's frame at least its caller (the test runner) must follow.
    check(frames.len() > expected.len(), || {
        format!("only {} frames: {frames:x?}", frames.len())
    })?;
    let (text_start, text_end) = kernel_text();
    if let Some(ra) = frames
        .iter()
        .find(|&&ra| !(text_start..text_end).contains(&ra))
    {
        return Err(format!(
            "return address {ra:#x} outside the kernel text {text_start:#x}..{text_end:#x}: {frames:x?}"
        ));
    }
    for (depth, ((name, start, window), &ra)) in expected.iter().zip(&frames).enumerate() {
        let offset = ra.wrapping_sub(*start);
        check(offset > 0 && offset <= *window, || {
            format!(
                "frame {depth}: return address {ra:#x} is {:+} bytes from {name} at {start:#x}, expected 1..={window}: {frames:x?}",
                offset as i64
            )
        })?;
    }
    let offsets: Vec<u64> = expected
        .iter()
        .zip(&frames)
        .map(|(f, ra)| ra - f.1)
        .collect();
    crate::kprintln!(
        "[backtrace_walk] {} frames; return addresses at {offsets:x?} into their functions",
        frames.len()
    );
    Ok(())
}

fn fault_unmapped(_: &mut TestEnv) -> Result<(), String> {
    Machine::provoke(DeliberateFault::UnmappedRead)
}

fn fault_undefined(_: &mut TestEnv) -> Result<(), String> {
    Machine::provoke(DeliberateFault::UndefinedInstruction)
}

#[inline(never)]
fn deliberate_panic(_: &mut TestEnv) -> Result<(), String> {
    panic!("deliberate panic requested by test=panic");
}

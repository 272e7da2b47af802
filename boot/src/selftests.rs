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
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kernel_core::backtrace;
use kernel_core::frame_alloc::FrameError;
use kernel_core::hal::{DeliberateFault, Platform};
use kernel_core::memory_map::FRAME_SIZE;
use kernel_core::selftest::KernelTest;

/// Every in-kernel test, in the order `test=all` runs them.
pub static ALL: &[KernelTest<()>] = &[
    KernelTest {
        name: "frames_alloc_free",
        ends_boot: false,
        run: frames_alloc_free,
    },
    KernelTest {
        name: "frames_exhaust",
        ends_boot: false,
        run: frames_exhaust,
    },
    KernelTest {
        name: "heap_alloc",
        ends_boot: false,
        run: heap_alloc,
    },
    KernelTest {
        name: "heap_realloc_no_leak",
        ends_boot: false,
        run: heap_realloc_no_leak,
    },
    KernelTest {
        name: "backtrace_walk",
        ends_boot: false,
        run: backtrace_walk,
    },
    KernelTest {
        name: "mm_wx",
        ends_boot: false,
        run: mm::wx,
    },
    KernelTest {
        name: "mm_two_spaces",
        ends_boot: false,
        run: mm::two_spaces,
    },
    KernelTest {
        name: "mm_teardown_leak",
        ends_boot: false,
        run: mm::teardown_leak,
    },
    KernelTest {
        name: "mm_error_paths",
        ends_boot: false,
        run: mm::error_paths,
    },
    KernelTest {
        name: "mm_asid_rollover",
        ends_boot: false,
        run: mm::asid_rollover,
    },
    KernelTest {
        name: "kthread_join",
        ends_boot: false,
        run: threads::kthread_join,
    },
    KernelTest {
        name: "sched_fairness",
        ends_boot: false,
        run: threads::sched_fairness,
    },
    KernelTest {
        name: "sleep_accuracy",
        ends_boot: false,
        run: threads::sleep_accuracy,
    },
    KernelTest {
        name: "log_from_irq",
        ends_boot: false,
        run: threads::log_from_irq,
    },
    KernelTest {
        name: "lock_diagnostics",
        ends_boot: false,
        run: threads::lock_diagnostics,
    },
    KernelTest {
        name: "watchdog_stall",
        ends_boot: false,
        run: threads::watchdog_stall,
    },
    KernelTest {
        name: "mm_guard_page",
        ends_boot: true,
        run: mm::guard_page,
    },
    KernelTest {
        name: "mm_user_access",
        ends_boot: true,
        run: mm::direct_user_access,
    },
    KernelTest {
        name: "fault_unmapped",
        ends_boot: true,
        run: fault_unmapped,
    },
    KernelTest {
        name: "fault_undefined",
        ends_boot: true,
        run: fault_undefined,
    },
    KernelTest {
        name: "panic",
        ends_boot: true,
        run: deliberate_panic,
    },
];

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
fn frames_alloc_free(_: &mut ()) -> Result<(), String> {
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
fn frames_exhaust(_: &mut ()) -> Result<(), String> {
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
fn heap_alloc(_: &mut ()) -> Result<(), String> {
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
fn heap_realloc_no_leak(_: &mut ()) -> Result<(), String> {
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

/// Walks the stack from three calls deep and checks the chain reaches past all three callers.
fn backtrace_walk(_: &mut ()) -> Result<(), String> {
    let mut frames = Vec::new();
    backtrace_depth_1(&mut frames);
    check(frames.len() >= 4, || {
        format!("only {} frames: {frames:x?}", frames.len())
    })?;
    let kernel = Machine::boot_info().kernel_image;
    let in_image = |ra: u64| Machine::read_stack_word(ra & !7).is_some();
    check(frames.iter().all(|&ra| in_image(ra)), || {
        format!("return address outside the kernel image {kernel}: {frames:x?}")
    })
}

fn fault_unmapped(_: &mut ()) -> Result<(), String> {
    Machine::provoke(DeliberateFault::UnmappedRead)
}

fn fault_undefined(_: &mut ()) -> Result<(), String> {
    Machine::provoke(DeliberateFault::UndefinedInstruction)
}

#[inline(never)]
fn deliberate_panic(_: &mut ()) -> Result<(), String> {
    panic!("deliberate panic requested by test=panic");
}

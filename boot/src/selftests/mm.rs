//! In-kernel tests of the memory layer: W^X, user address spaces, teardown, error paths, guard
//! pages and user-access protection.
//!
//! Owns the `mm_*` tests. Each one drives the real page tables of this machine through the same
//! portable `AddressSpace` the kernel uses, and checks the frame count afterwards: a test that
//! leaks a frame fails. The two boot-ending tests prove that a stack overflow and a stray kernel
//! access to user memory are reported, not survived silently.

use super::check;
use crate::memory::{FRAMES, UserSpace, phys_to_virt};
use crate::platform::Machine;
use crate::sched;
use crate::testing::TestEnv;
use crate::tlb_tags::TLB_TAGS;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel_core::frame_alloc::FrameAllocator;
use kernel_core::hal::{Access, Platform, UserMode};
use kernel_core::paging::{AddressSpaceHal, FrameSource, MapError, MapFlags, PageTableFormat};

type Format = <<Machine as Platform>::Spaces as kernel_core::paging::AddressSpaceHal>::Format;

const RW: MapFlags = MapFlags::READ.union(MapFlags::WRITE);

/// A return instruction in writable data: executing it must fault (data is never executable).
static RETURN_IN_DATA: AtomicU32 = AtomicU32::new(u32::from_le_bytes(Machine::RETURN_INSTRUCTION));
/// Read-only data: writing it must fault.
static READ_ONLY: [u8; 8] = *b"rodata!!";

/// A function in kernel text: calling it through the execute probe must work.
#[inline(never)]
extern "C" fn returns_zero() -> u64 {
    0
}

/// W^X: text is executable and not writable, rodata is not writable, data is not executable.
pub fn wx(_: &mut TestEnv) -> Result<(), String> {
    let text = returns_zero as *const () as u64;
    let rodata = READ_ONLY.as_ptr() as u64;
    let data = RETURN_IN_DATA.as_ptr() as u64;
    let heap = alloc::boxed::Box::new(Machine::RETURN_INSTRUCTION);
    // A RAM frame holding a return instruction, reached through the direct map.
    let frame = FRAMES
        .lock()
        .as_mut()
        .and_then(|f| f.allocate())
        .ok_or("out of frames")?;
    let direct = phys_to_virt(frame);
    // SAFETY: `frame` was just allocated and is owned by this test; the HHDM maps all RAM.
    unsafe { core::ptr::write_volatile(direct as *mut [u8; 4], Machine::RETURN_INSTRUCTION) };
    let cases = [
        ("execute kernel text", Access::Execute, text, true),
        ("write kernel text", Access::Write, text, false),
        ("write rodata", Access::Write, rodata, false),
        ("read rodata", Access::Read, rodata, true),
        ("write data", Access::Write, data, true),
        ("execute data", Access::Execute, data, false),
        ("execute heap", Access::Execute, heap.as_ptr() as u64, false),
        (
            "execute the direct map",
            Access::Execute,
            phys_to_virt(0x1000),
            false,
        ),
    ];
    for (what, access, addr, allowed) in cases {
        let happened = Machine::probe(access, addr).is_ok();
        check(happened == allowed, || {
            format!(
                "{what} at {addr:#x}: {}",
                if happened { "allowed" } else { "faulted" }
            )
        })?;
    }
    Ok(())
}

/// Frees `frames_to_free` and checks that the allocator is back at `before`.
fn give_back(
    frames: &mut FrameAllocator<'static>,
    taken: &[u64],
    before: usize,
) -> Result<(), String> {
    for &frame in taken {
        frames
            .free(frame)
            .map_err(|e| format!("free {frame:#x}: {e:?}"))?;
    }
    let now = frames.free_frames();
    check(now == before, || {
        format!("{} frames leaked", before as i64 - now as i64)
    })
}

/// Two spaces map the same user address to different frames; switching between them, the
/// kernel reads each one's data through the user mapping.
pub fn two_spaces(_: &mut TestEnv) -> Result<(), String> {
    const VA: u64 = 0x1234_5000;
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    let before = frames.free_frames();
    let mut taken = Vec::new();
    let mut spaces = Vec::new();
    let mut result = Ok(());
    for pattern in [0x1111_1111_1111_1111u64, 0x2222_2222_2222_2222] {
        let space = UserSpace::create(frames).map_err(|e| format!("create: {e}"))?;
        let frame = frames.allocate().ok_or("out of frames")?;
        taken.push(frame);
        // SAFETY: `frame` was just allocated and is owned by this test; the HHDM maps all RAM.
        unsafe { core::ptr::write_volatile(phys_to_virt(frame) as *mut u64, pattern) };
        if let Err(e) = space.map(frames, VA, frame, RW) {
            result = Err(format!("map: {e}"));
        }
        spaces.push((space, pattern));
    }
    for round in 0..3 {
        for (space, pattern) in &spaces {
            if result.is_err() {
                break;
            }
            TLB_TAGS.switch_to(space);
            let mut word = [0u8; 8];
            result = Machine::copy_from_user(&mut word, VA)
                .map_err(|e| format!("copy_from_user: {e:?}"))
                .and_then(|()| {
                    let seen = u64::from_le_bytes(word);
                    check(seen == *pattern, || {
                        format!("round {round}: read {seen:#x}, expected {pattern:#x}")
                    })
                });
        }
    }
    Machine::activate_kernel_space();
    for (space, _) in spaces {
        space.destroy(frames, |_| {});
    }
    result?;
    give_back(frames, &taken, before)
}

/// 1,000 create / map / destroy cycles, with mappings spread over different tables at every
/// level: the free-frame count must return exactly to where it started.
pub fn teardown_leak(_: &mut TestEnv) -> Result<(), String> {
    let addresses = [
        0x1000,
        0x20_0000,
        0x4000_0000,
        0x80_0000_0000,
        Format::USER_END - 0x1000,
    ];
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    let before = frames.free_frames();
    let data = frames.allocate().ok_or("out of frames")?;
    for cycle in 0..1000 {
        let space = UserSpace::create(frames).map_err(|e| format!("cycle {cycle}: {e}"))?;
        let mapped = addresses
            .iter()
            .try_for_each(|&va| space.map(frames, va, data, RW));
        if cycle % 100 == 0 {
            TLB_TAGS.switch_to(&space);
            Machine::activate_kernel_space();
        }
        space.destroy(frames, |_| {});
        mapped.map_err(|e| format!("cycle {cycle}: map: {e}"))?;
    }
    give_back(frames, &[data], before)
}

/// Frames that refuse to allocate after `budget` allocations: drives out-of-frames at every
/// point of a page-table walk.
struct Budget<'a> {
    inner: &'a mut FrameAllocator<'static>,
    budget: usize,
}

impl FrameSource for Budget<'_> {
    fn allocate(&mut self) -> Option<u64> {
        if self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        self.inner.allocate()
    }

    fn free(&mut self, frame: u64) {
        let _ = self.inner.free(frame);
    }
}

fn expect_error(what: &str, got: Result<(), MapError>, want: MapError) -> Result<(), String> {
    check(got == Err(want), || {
        format!("{what}: got {got:?}, expected {want:?}")
    })
}

/// Every error path of the page-table layer on the real tables: each returns its error, leaves
/// the space's lock free and leaks no frame.
pub fn error_paths(_: &mut TestEnv) -> Result<(), String> {
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    let before = frames.free_frames();
    let data = frames.allocate().ok_or("out of frames")?;
    let space = UserSpace::create(frames).map_err(|e| format!("create: {e}"))?;
    let free_after_create = frames.free_frames();
    let mut result: Result<(), String> = (|| {
        // Out of frames at every depth of a fresh walk: nothing may stay allocated.
        let va = 0x7f_1234_5000;
        for budget in 0.. {
            let mut limited = Budget {
                inner: &mut *frames,
                budget,
            };
            match space.map(&mut limited, va, data, RW) {
                Err(MapError::OutOfFrames) => {
                    check(!space.is_locked(), || {
                        "lock held after out-of-frames".into()
                    })?;
                    let now = frames.free_frames();
                    check(now == free_after_create, || {
                        format!("budget {budget}: {} frames leaked", free_after_create - now)
                    })?;
                }
                Ok(()) => break,
                Err(other) => return Err(format!("budget {budget}: unexpected {other:?}")),
            }
        }
        let cases = [
            (
                "map over a mapping",
                space.map(frames, va, data, RW),
                MapError::AlreadyMapped,
            ),
            (
                "unaligned address",
                space.map(frames, 0x1001, data, RW),
                MapError::Unaligned,
            ),
            (
                "unaligned frame",
                space.map(frames, 0x2000, data + 8, RW),
                MapError::Unaligned,
            ),
            (
                "kernel address as user address",
                space.map(frames, phys_to_virt(data), data, RW),
                MapError::NotUserAddress,
            ),
            (
                "write and execute",
                space.map(frames, 0x3000, data, RW | MapFlags::EXECUTE),
                MapError::WriteAndExecute,
            ),
            (
                "unmap of nothing",
                space.unmap(frames, 0x5000).map(|_| ()),
                MapError::NotMapped,
            ),
            (
                "protect of nothing",
                space.protect(frames, 0x5000, RW),
                MapError::NotMapped,
            ),
        ];
        for (what, got, want) in cases {
            expect_error(what, got, want)?;
            check(!space.is_locked(), || {
                format!("{what}: lock held afterwards")
            })?;
        }
        let unmapped = space.unmap(frames, va).map_err(|e| format!("unmap: {e}"))?;
        check(unmapped == data, || format!("unmap returned {unmapped:#x}"))?;
        let now = frames.free_frames();
        check(now == free_after_create, || {
            format!("unmap left {} tables", free_after_create - now)
        })
    })();
    space.destroy(frames, |_| {});
    if let Err(e) = give_back(frames, &[data], before) {
        result = result.and(Err(e));
    }
    drop(guard);
    check(!FRAMES.is_locked(), || {
        "frame allocator lock still held".into()
    })?;
    result
}

/// Recurses with a 512-byte frame until the stack runs out; `limit` only exists so the
/// compiler sees a way out (it is far deeper than any kernel stack).
#[inline(never)]
fn recurse_until_overflow(depth: u64, limit: u64) -> u64 {
    let buffer = core::hint::black_box([depth; 64]);
    if depth == limit {
        return buffer[0];
    }
    recurse_until_overflow(depth + 1, limit).wrapping_add(buffer[3])
}

/// Runs the boot stack into its guard page: the trap handler must report "kernel stack
/// overflow in thread boot" and end the boot.
pub fn guard_page(_: &mut TestEnv) -> Result<(), String> {
    let depth = recurse_until_overflow(0, core::hint::black_box(1 << 40));
    Err(format!(
        "recursion returned ({depth}) instead of hitting the guard page"
    ))
}

#[inline(never)]
fn deliberate_user_access(va: u64) -> u64 {
    // SAFETY: not sound on purpose: a direct kernel read of a mapped user page, which SMAP/PAN
    // must turn into a fault (the test ends the boot either way).
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

/// Reads a mapped user page directly, bypassing the user-copy path: SMAP (x86_64) or PAN
/// (AArch64) must fault. Needs a CPU that has them (`-cpu max`).
pub fn direct_user_access(_: &mut TestEnv) -> Result<(), String> {
    const VA: u64 = 0x60_0000;
    let space = {
        let mut guard = FRAMES.lock_irqsave();
        let frames = guard.as_mut().ok_or("no frame allocator")?;
        let space = UserSpace::create(frames).map_err(|e| format!("create: {e}"))?;
        let frame = frames.allocate().ok_or("out of frames")?;
        space
            .map(frames, VA, frame, RW)
            .map_err(|e| format!("map: {e}"))?;
        space
    };
    TLB_TAGS.switch_to(&space);
    let value = deliberate_user_access(VA);
    Machine::activate_kernel_space();
    Err(format!(
        "read {value:#x} from user memory without a fault: no SMAP/PAN on this CPU?"
    ))
}

/// Why `asid_rollover` cannot run here: a CPU without TLB tags (x86_64 without PCID, which no
/// CPU model of QEMU 7.2's TCG offers) flushes on every switch and has no generation to roll over.
pub fn asid_rollover_unsupported(_: &TestEnv) -> Option<&'static str> {
    if TLB_TAGS.snapshot().0 {
        None
    } else {
        Some("this CPU has no TLB tags (no PCID), so there is no tag generation to roll over")
    }
}

/// Creates an empty address space, runs it (a tag is handed out only to a space that runs) and
/// destroys it: one fresh tag used up. Returns the allocator's generation afterwards.
fn use_up_one_tag() -> Result<u64, String> {
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    let space = UserSpace::create(frames).map_err(|e| format!("create: {e}"))?;
    TLB_TAGS.switch_to(&space);
    Machine::activate_kernel_space();
    space.destroy(frames, |_| {});
    Ok(TLB_TAGS.snapshot().1)
}

/// Switches to each space and reads its data word through the user mapping at `va`: space `i`
/// must see `i`.
fn read_each(spaces: &[UserSpace], va: u64, round: &str) -> Result<(), String> {
    for (i, space) in spaces.iter().enumerate() {
        TLB_TAGS.switch_to(space);
        let mut word = [0u8; 8];
        Machine::copy_from_user(&mut word, va).map_err(|e| format!("{round}, space {i}: {e:?}"))?;
        let seen = u64::from_le_bytes(word);
        check(seen == i as u64, || {
            format!("{round}: space {i} read the data of space {seen}")
        })?;
    }
    Ok(())
}

/// Address spaces across a tag-generation rollover: 300 spaces (more than the 255 tags of a CPU
/// with 8-bit ASIDs) each read their own data; then empty spaces use up the rest of the
/// generation (a CPU with 16-bit ASIDs has 65,535 tags, far more than spaces worth keeping),
/// and the 300 must still read their own data under their new tags, twice.
pub fn asid_rollover(_: &mut TestEnv) -> Result<(), String> {
    const SPACES: usize = 300;
    const VA: u64 = 0x7000;
    // Tags the CPU has; a generation hands out all but tag 0 (the kernel's).
    let tags = <<Machine as Platform>::Spaces as AddressSpaceHal>::asid_count();
    let (tagged, generation_before) = TLB_TAGS.snapshot();
    let mut spaces = Vec::with_capacity(SPACES);
    let mut taken = Vec::with_capacity(SPACES);
    let before;
    let mut result = Ok(());
    {
        let mut guard = FRAMES.lock_irqsave();
        let frames = guard.as_mut().ok_or("no frame allocator")?;
        before = frames.free_frames();
        for i in 0..SPACES as u64 {
            let (Ok(space), Some(frame)) = (UserSpace::create(frames), frames.allocate()) else {
                result = Err(format!("out of frames at space {i}"));
                break;
            };
            taken.push(frame);
            // SAFETY: `frame` was just allocated and is owned by this test; the HHDM maps all
            // RAM.
            unsafe { core::ptr::write_volatile(phys_to_virt(frame) as *mut u64, i) };
            if let Err(e) = space.map(frames, VA, frame, RW) {
                result = Err(format!("map {i}: {e}"));
            }
            spaces.push(space);
        }
        // Interrupts stay masked while a user space is active: a thread switch would replace
        // it with the kernel's.
        result = result.and_then(|()| read_each(&spaces, VA, "first round"));
        Machine::activate_kernel_space();
    }
    // The rest of the generation, one fresh tag at a time; a generation can hold no more than
    // `tags` of them, so more without a rollover is a failure.
    let mut used_up = 0u32;
    let mut generation = TLB_TAGS.snapshot().1;
    while result.is_ok() && generation == generation_before && used_up < tags {
        match use_up_one_tag() {
            Ok(now) => generation = now,
            Err(e) => result = Err(format!("after {used_up} empty spaces: {e}")),
        }
        used_up += 1;
    }
    let mut guard = FRAMES.lock_irqsave();
    let frames = guard.as_mut().ok_or("no frame allocator")?;
    if result.is_ok() {
        result = read_each(&spaces, VA, "after the rollover")
            .and_then(|()| read_each(&spaces, VA, "again under the new tags"));
    }
    let generations = TLB_TAGS.snapshot().1 - generation_before;
    Machine::activate_kernel_space();
    for space in spaces {
        space.destroy(frames, |_| {});
    }
    result?;
    crate::kprintln!(
        "[mm] {SPACES} spaces and {used_up} empty ones on {tags} tags: {generations} TLB tag generation rollovers"
    );
    // The premise: the spaces were switched to across a new generation.
    check(tagged && generations >= 1, || {
        format!(
            "{SPACES} spaces and {used_up} empty ones on {tags} tags did not roll the tag generation over (tagged: {tagged})"
        )
    })?;
    give_back(frames, &taken, before)
}

/// Trap entries seen by [`user_access_closed_in_traps`]'s tick hook while the test held user
/// access open, and how many of them still found it open inside the handler.
static TICKS_IN_WINDOW: AtomicU64 = AtomicU64::new(0);
static OPEN_IN_HANDLER: AtomicU64 = AtomicU64::new(0);
static WINDOW_OPEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn count_open_in_tick() {
    if WINDOW_OPEN.load(Ordering::Relaxed) {
        TICKS_IN_WINDOW.fetch_add(1, Ordering::Relaxed);
        if Machine::user_access_open() {
            OPEN_IN_HANDLER.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every trap entry closes kernel access to user memory: the test opens it (`stac`, or clears
/// PAN) as user code can (`popf` sets RFLAGS.AC in ring 3), waits for timer interrupts, and the
/// tick handler must find it closed each time (x86_64: `clac` in the trap entry; AArch64: an
/// exception sets PAN because SCTLR_EL1.SPAN is 0). Needs SMAP or PAN (`-cpu max`).
pub fn user_access_closed_in_traps(_: &mut TestEnv) -> Result<(), String> {
    const WINDOW_TICKS: u64 = 5;
    TICKS_IN_WINDOW.store(0, Ordering::Relaxed);
    OPEN_IN_HANDLER.store(0, Ordering::Relaxed);
    // No switch inside the window: the open state belongs to this thread's code only.
    sched::PREEMPT_OFF.fetch_add(1, Ordering::Relaxed);
    sched::set_tick_hook(Some(count_open_in_tick));
    let deadline = Machine::now_ns() + 10 * 1_000_000_000;
    Machine::set_user_access_open(true);
    let opened = Machine::user_access_open();
    WINDOW_OPEN.store(true, Ordering::Relaxed);
    while TICKS_IN_WINDOW.load(Ordering::Relaxed) < WINDOW_TICKS && Machine::now_ns() < deadline {
        core::hint::spin_loop();
    }
    WINDOW_OPEN.store(false, Ordering::Relaxed);
    Machine::set_user_access_open(false);
    sched::set_tick_hook(None);
    sched::PREEMPT_OFF.fetch_sub(1, Ordering::Relaxed);
    let (ticks, open) = (
        TICKS_IN_WINDOW.load(Ordering::Relaxed),
        OPEN_IN_HANDLER.load(Ordering::Relaxed),
    );
    if !opened {
        return Err("opening user access had no effect (the test cannot tell anything)".into());
    }
    if ticks < WINDOW_TICKS {
        return Err(format!(
            "only {ticks} timer interrupts in 10 s with user access open"
        ));
    }
    if open > 0 {
        return Err(format!(
            "{open} of {ticks} timer interrupts ran their handler with user access open (the trap entry does not close it)"
        ));
    }
    Ok(())
}

/// Why `user_access_closed_in_traps` cannot run here.
pub fn no_user_access_guard(_: &TestEnv) -> Option<&'static str> {
    Machine::set_user_access_open(false);
    if Machine::user_access_open() {
        Some("this CPU has no SMAP/PAN (it needs -cpu max)")
    } else {
        None
    }
}

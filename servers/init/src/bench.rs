//! The benchmarks: the cost of the kernel's hot paths, in cycle-counter ticks.
//!
//! Owns the measurement rule, the benchmarks' self-checks and the output format. Each benchmark
//! runs one warm-up batch, then [`BATCHES`] batches of [`BATCH`] operations, reading
//! [`rt::cycles::cycles`] around each batch; the value is the median over the batches of ticks
//! per operation, printed as `[bench] NAME VALUE ticks`. Under QEMU with `-icount shift=0` a tick
//! is an executed instruction. A benchmark that fails, including one whose self-check finds that
//! it did not measure what its name says, prints `init: bench NAME failed: REASON` instead (and
//! `cargo xtask bench` fails the run).
//!
//! - `counter_check`: no kernel path; the counter itself, checked exactly against a loop of a
//!   known instruction count (see [`counter_check`]). Fails unless a tick is one instruction.
//! - `null_syscall`: one `Null`.
//! - `ipc_call_reply`: one `Call` to a `BENCH_SERVER` helper in another address space and its
//!   `ReplyRecv` answer (four words each way).
//! - `ipc_call_reply_same_space`: the same, served by a second thread in init's own address
//!   space ([`rt::thread::spawn_local`]; it shares init's table, so it gets the endpoint handle
//!   in its argument).
//! - `notify_wait`: one `Signal` then one `Wait` on the same notification, in one thread.
//! - `yield_switch`: init and a `YIELD_PARTNER` helper yield to each other; the value is per
//!   yield (each batch of [`BATCH`] yields by init contains as many by the partner, so the batch
//!   is divided by 2 × [`BATCH`]). The partner counts its turns in a page init maps read-only,
//!   and init checks after each of its yields that the partner had exactly one more turn: a
//!   dead partner (each yield returns at once) or one that does not alternate fails it. The
//!   check costs a few instructions per yield on each side, inside the measured batches.
//! - `fault_roundtrip`: a `FAULT_BENCH` helper reads fresh pages; init, its pager, maps one
//!   shared frame at each page and replies. The helper times its own batches (ticks per fault as
//!   the faulting thread sees them) and sends the median in a `BENCH_RESULT` message on the
//!   pager endpoint, which init receives in its pager loop (chosen over an exit code so the value
//!   keeps 64 bits and an error stays distinguishable from a result). If the kernel refuses to
//!   map the shared frame again, or any fault is not a plain page fault in the window, it fails.
//! - `thread_create_join`: one thread in init's own address space created (`ThreadCreate`),
//!   started, ended (its body returns at once), joined and its handle deleted, on a stack mapped
//!   once and reused ([`rt::thread::ReusableStack`]). Each thread returns a code derived from its
//!   argument, and the join must collect exactly that code: a thread that did not run fails it.
//! - `frame_alloc_empty`: one `FrameAlloc` of one frame and the `CapDelete` that frees it, with
//!   RAM nearly empty (what the boot and the earlier benchmarks hold).
//! - `frame_alloc_full`: the same with 95% of the frames init can get held, all of the lowest
//!   addresses (see [`frame_alloc_full`]): init takes every frame it can in runs of
//!   [`MAX_FRAME_RUN`] frames, halving the size on `OutOfMemory` down to one frame, frees
//!   full-size runs from the highest down until 5% is free and takes back the excess; every run
//!   is freed afterwards. A lowest-fit search would walk the 95% on every frame here. The
//!   allocator's cost must not grow with the frames in use, so `cargo xtask bench` fails unless
//!   this is within 10% of `frame_alloc_empty`.
//! - `frame_alloc_run_empty` / `frame_alloc_run_full`: the same for a run of [`SMALL_RUN`]
//!   frames (the contiguous path, which searches from the lowest address), empty and 95% full;
//!   `cargo xtask bench` checks that they too agree within 10%.
//!
//! It must never print inside a measured batch, never report a number from a run in which an
//! operation or a self-check failed, and never switch to another method when the one a
//! benchmark's name promises is unavailable.

use crate::Env;
use crate::child::{Spawned, spawn_utest};
use crate::tests::{Context, Owned, Reason, WAIT, fail, owned};
use abi::fault::{FAULT_LABEL, FaultKind, RESUME};
use abi::{CapHandle, Rights, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::cycles::{
    CHECK_LOOP_BODY, CHECK_LOOP_ITERATIONS, CHECK_LOOP_TICKS, CHECK_READ_OVERHEAD, cycles,
    time_check_loop,
};
use rt::println;
use rt::process::PAGE_SIZE;
use rt::roles::{
    BENCH_RESULT, BENCH_SERVER, FAULT_BENCH, FAULT_BENCH_BATCH, FAULT_BENCH_BATCHES,
    FAULT_BENCH_VA, SHUTDOWN, YIELD_PARTNER, YIELD_TURNS_VA,
};
use rt::syscall::{
    Message, call, cap_copy, cap_delete, endpoint_create, frame_alloc, map, notification_create,
    null, recv, reply, send, set_pager, signal, unmap, wait, yield_now,
};

/// Operations per batch.
pub const BATCH: u64 = 1000;
/// Timed batches (after one warm-up batch); the median is reported.
pub const BATCHES: usize = 11;
/// Where init maps the stack of its same-address-space server thread (a guard page below it
/// stays unmapped; far from the spawn scratch window).
const LOCAL_STACK_VA: u64 = crate::va::BENCH_LOCAL_STACK;
/// Pages of that stack.
const LOCAL_STACK_PAGES: usize = 16;
/// Where init maps (read-only) the page in which the yield partner counts its turns.
const TURNS_VA: u64 = crate::va::BENCH_TURNS;

/// Runs `batch(BATCH)` once to warm up, then [`BATCHES`] times timed; returns the median of
/// (ticks per batch) / (`BATCH` × `per_op`).
fn measure(per_op: u64, mut batch: impl FnMut(u64) -> Result<(), Reason>) -> Result<u64, Reason> {
    batch(BATCH)?;
    let mut samples = [0u64; BATCHES];
    for sample in &mut samples {
        let start = cycles();
        batch(BATCH)?;
        *sample = cycles().wrapping_sub(start) / (BATCH * per_op);
    }
    samples.sort_unstable();
    Ok(samples[BATCHES / 2])
}

/// Prints one benchmark's result line.
fn report(name: &str, result: Result<u64, Reason>) -> bool {
    match result {
        Ok(ticks) => {
            println!("[bench] {name} {ticks} ticks");
            true
        }
        Err(reason) => {
            println!("init: bench {name} failed: {reason}");
            false
        }
    }
}

/// Runs every benchmark, printing one line each; returns how many failed (init then exits with
/// a non-zero code, so the boot itself ends as failed, not only the harness's reading of it).
pub fn run_all(env: &Env) -> usize {
    let first = [
        report("counter_check", counter_check()),
        report("null_syscall", null_syscall()),
        report("ipc_call_reply", ipc_call_reply(env)),
        report("ipc_call_reply_same_space", ipc_call_reply_same_space(env)),
        report("notify_wait", notify_wait()),
        report("yield_switch", yield_switch(env)),
        report("fault_roundtrip", fault_roundtrip(env)),
        report("thread_create_join", thread_create_join(env)),
        report("frame_alloc_empty", measure_frame_alloc(1)),
        report("frame_alloc_run_empty", measure_frame_alloc(SMALL_RUN)),
    ];
    // Last: it holds 95% of RAM while it measures (and gives every frame back after).
    let full = frame_alloc_full();
    let last = [
        report("frame_alloc_full", full.map(|(one, _)| one)),
        report("frame_alloc_run_full", full.map(|(_, run)| run)),
    ];
    first.iter().chain(&last).filter(|passed| !**passed).count()
}

/// The cycle counter checked against a loop of a known instruction count, exactly: the benchmark
/// clock must make a tick one executed instruction, or no other number here means what it says.
///
/// [`time_check_loop`] runs, between two counter reads in one `asm!` block, 1,000 iterations of a
/// two-instruction loop plus a fixed number of read instructions ([`CHECK_READ_OVERHEAD`]: 5 on
/// x86_64, 2 on AArch64, each instruction named there), so the expected value is
/// [`CHECK_LOOP_TICKS`] (2,005 and 2,002). The loop is far shorter than a timer tick
/// (1,000,000 instructions at 1 kHz), so the median of [`BATCHES`] runs is a run no interrupt
/// landed in; such a run must be exact. No run may count less: an interrupt only adds ticks.
///
/// It is not timed like the others, in batches of 1,000 loops divided by 1,000: a 2 ms batch
/// always holds two or three timer interrupts, and the division would hide their handler's
/// instructions in the result (a few hundred ticks each, more than a whole tick per loop on
/// AArch64) instead of making the check exact.
fn counter_check() -> Result<u64, Reason> {
    let _warm_up = time_check_loop();
    let mut samples = [0u64; BATCHES];
    for sample in &mut samples {
        *sample = time_check_loop();
    }
    samples.sort_unstable();
    let median = samples[BATCHES / 2];
    let expected = CHECK_LOOP_TICKS;
    if median != expected || samples[0] < expected {
        fail!(
            "median {median} ticks (lowest {}), expected exactly {expected} = \
             {CHECK_LOOP_ITERATIONS} x {CHECK_LOOP_BODY} loop + {CHECK_READ_OVERHEAD} read \
             instructions (a tick must be one executed instruction)",
            samples[0]
        );
    }
    Ok(median)
}

fn null_syscall() -> Result<u64, Reason> {
    measure(1, |ops| {
        for _ in 0..ops {
            null().context("null")?;
        }
        Ok(())
    })
}

/// Calls an echo server (delta 0) on `endpoint` in batches; checks a first call with a timeout
/// (so a dead server fails the benchmark instead of hanging it), then measures with `FOREVER`
/// (the fast path, no timer).
fn measure_calls(endpoint: CapHandle) -> Result<u64, Reason> {
    let first = call(endpoint, &Message::new(1, [1, 2, 3, 4]), WAIT).context("first call")?;
    if first.words != [1, 2, 3, 4] {
        fail!(
            "first call: reply words {:x?}, expected [1, 2, 3, 4]",
            first.words
        );
    }
    let mut i = 0u64;
    measure(1, |ops| {
        for _ in 0..ops {
            i += 1;
            let answer = call(endpoint, &Message::new(1, [i, 0, 0, 0]), Timeout::FOREVER)
                .context(format_args!("call #{i}"))?;
            if answer.words[0] != i {
                fail!("call #{i}: reply word {:#x}", answer.words[0]);
            }
        }
        Ok(())
    })
}

fn ipc_call_reply(env: &Env) -> Result<u64, Reason> {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let mut server = spawn_utest(env, BENCH_SERVER, 0, &[(endpoint.get(), Rights::RECEIVE)])?;
    server.start()?;
    let ticks = measure_calls(endpoint.get())?;
    send(endpoint.get(), &Message::label_only(SHUTDOWN), WAIT).context("send shutdown")?;
    server.expect_clean_exit(WAIT)?;
    Ok(ticks)
}

/// The same-address-space server thread: serves echo calls (delta 0) on the endpoint whose raw
/// handle is `arg` until shutdown.
fn local_server(arg: u64) -> i64 {
    match rt::echo::serve(CapHandle::from_raw(arg), 0) {
        Ok(_) => 0,
        Err(error) => {
            println!("init: same-space bench server: {error}");
            rt::roles::EXIT_SYSCALL_FAILED
        }
    }
}

fn ipc_call_reply_same_space(env: &Env) -> Result<u64, Reason> {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let server = rt::thread::spawn_local(
        env.own_space,
        LOCAL_STACK_VA,
        LOCAL_STACK_PAGES,
        local_server,
        endpoint.get().into_raw(),
    )
    .context("spawn_local")?;
    let measured = measure_calls(endpoint.get());
    let shutdown = send(endpoint.get(), &Message::label_only(SHUTDOWN), WAIT);
    if measured.is_err() || shutdown.is_err() {
        // Make sure the thread is gone before its stack is unmapped by join.
        let _ = rt::syscall::thread_kill(server.thread);
    }
    let joined = server.join(WAIT);
    let ticks = measured?;
    shutdown.context("send shutdown")?;
    match joined.context("join")? {
        0 => Ok(ticks),
        code => fail!("server thread exited with code {code}"),
    }
}

/// The body of each `thread_create_join` thread: ends at once with a code only its argument
/// gives.
fn short_thread(arg: u64) -> i64 {
    (arg & 0xffff) as i64 ^ 0x5a5a
}

fn thread_create_join(env: &Env) -> Result<u64, Reason> {
    let mut stack =
        rt::thread::ReusableStack::new(env.own_space, LOCAL_STACK_VA, LOCAL_STACK_PAGES)
            .context("reusable stack")?;
    // A first thread with a timeout (a thread that never ends fails the benchmark instead of
    // hanging it), then the measured ones with `FOREVER`: no timer in the join.
    let first = stack.run(short_thread, 0, WAIT).context("first run")?;
    if i64::from(first) != short_thread(0) {
        fail!(
            "thread 0 ended with {first:#x}, expected {:#x}",
            short_thread(0)
        );
    }
    let mut next = 0u64;
    measure(1, |ops| {
        for _ in 0..ops {
            next += 1;
            let code = stack
                .run(short_thread, next, Timeout::FOREVER)
                .context("run")?;
            if i64::from(code) != short_thread(next) {
                fail!(
                    "thread {next} ended with {code:#x}, expected {:#x}",
                    short_thread(next)
                );
            }
        }
        Ok(())
    })
}

fn notify_wait() -> Result<u64, Reason> {
    let n = owned("notification_create", notification_create())?;
    measure(1, |ops| {
        for _ in 0..ops {
            signal(n.get(), 1).context("signal")?;
            let bits = wait(n.get(), Timeout::FOREVER).context("wait")?;
            if bits != 1 {
                fail!("wait returned {bits:#x}, expected 0x1");
            }
        }
        Ok(())
    })
}

/// A page init maps read-only to watch a helper's progress; unmapped when dropped.
struct Watched {
    space: CapHandle,
    va: u64,
}

impl Watched {
    /// Maps `frame` (one page) read-only at `va` in init's own space.
    fn map(space: CapHandle, frame: CapHandle, va: u64) -> Result<Self, Reason> {
        map(space, frame, va, Rights::READ).context(format_args!("map {va:#x} in init"))?;
        Ok(Self { space, va })
    }

    /// The page's first word.
    fn word(&self) -> &AtomicU64 {
        // Only the helper writes the page (through its own mapping), so an atomic type describes
        // it; init only loads.
        // SAFETY: `va` is mapped readable while `self` lives (the reference cannot outlive it),
        // 4 KiB-aligned, and every bit pattern is a valid AtomicU64.
        unsafe { &*(self.va as *const AtomicU64) }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // SAFETY: nothing refers to the page any more: the only references come from `word`,
        // which borrows `self`.
        let _ = unsafe { unmap(self.space, self.va, 1) };
    }
}

/// Most yields init makes waiting for the yield partner's first turn.
const PARTNER_START_YIELDS: u64 = 100;

fn yield_switch(env: &Env) -> Result<u64, Reason> {
    // Drop order (reverse): the partner is killed first, then init's view is unmapped, then the
    // frame handle goes.
    let frame = owned("frame_alloc(1)", frame_alloc(1))?;
    let watched = Watched::map(env.own_space, frame.get(), TURNS_VA)?;
    // Param 0: the partner yields forever; dropping `partner` kills it.
    let mut partner = spawn_utest(env, YIELD_PARTNER, 0, &[])?;
    map(
        partner.child.space,
        frame.get(),
        YIELD_TURNS_VA,
        Rights::READ | Rights::WRITE,
    )
    .context("map the turn counter in the partner")?;
    let turns = watched.word();
    partner.start()?;
    // Whatever the partner's state (it may already have had a turn if a timer tick preempted init
    // after the start), wait for its first counted turn; from then on each of init's yields
    // must give it exactly one more.
    let mut yields = 0;
    while turns.load(Ordering::Relaxed) == 0 {
        if yields == PARTNER_START_YIELDS {
            return Err(partner_stalled(&partner, 0, 1, yields));
        }
        yield_now().context("yield")?;
        yields += 1;
    }
    let mut expected = turns.load(Ordering::Relaxed);
    let first = expected;
    measure(2, |ops| {
        for _ in 0..ops {
            expected += 1;
            yield_now().context("yield")?;
            if turns.load(Ordering::Relaxed) != expected {
                return Err(partner_stalled(
                    &partner,
                    turns.load(Ordering::Relaxed),
                    expected,
                    expected - first,
                ));
            }
        }
        Ok(())
    })
}

/// The failure of `yield_switch` when the partner's turn count is `turns` after init's yield
/// number `yields`, where strict alternation needs `expected`; says whether the partner is gone
/// (a dead partner makes every yield return at once).
fn partner_stalled(partner: &Spawned, turns: u64, expected: u64, yields: u64) -> Reason {
    let what = format_args!(
        "partner turn count {turns} after init's yield #{yields}, expected {expected} (one turn \
         per yield)"
    );
    match partner.join(Timeout::POLL) {
        Ok(code) => Reason::format(format_args!("{what}; the partner exited with code {code}")),
        Err(abi::Error::Killed) => Reason::format(format_args!("{what}; the partner was killed")),
        Err(_) => Reason::format(format_args!("{what}; the partner is still running")),
    }
}

fn fault_roundtrip(env: &Env) -> Result<u64, Reason> {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let pager = owned(
        "cap_copy SEND|CALL",
        cap_copy(endpoint.get(), Rights::SEND | Rights::CALL, 0),
    )?;
    let mut client = spawn_utest(env, FAULT_BENCH, 0, &[(endpoint.get(), Rights::SEND)])?;
    set_pager(client.child.space, pager.get()).context("set_pager")?;
    // One frame mapped (read-only) at every faulting page: the cheapest pager, so the value is
    // the fault path itself. It relies on a frame being mappable at several places at once; if
    // the kernel refuses, the benchmark fails (another pager would measure something else).
    let shared = owned("frame_alloc(1)", frame_alloc(1))?;
    client.start()?;
    let total = FAULT_BENCH_BATCH * (FAULT_BENCH_BATCHES as u64 + 1);
    let window_end = FAULT_BENCH_VA + total * PAGE_SIZE;
    let mut faults = 0u64;
    let median = loop {
        let msg =
            recv(endpoint.get(), WAIT).context(format_args!("recv (after {faults} faults)"))?;
        if msg.msg.label() == BENCH_RESULT {
            break msg.msg.words[0];
        }
        let [kind, address, ip, _] = msg.msg.words;
        if msg.msg.label() != FAULT_LABEL
            || FaultKind::from_raw(kind) != Some(FaultKind::Page)
            || !(FAULT_BENCH_VA..window_end).contains(&address)
        {
            if !msg.reply.is_none() {
                let _ = reply(&Message::label_only(SHUTDOWN), msg.reply);
            }
            fail!(
                "unexpected message after {faults} faults: label {:#x}, kind {kind}, address {address:#x}, ip {ip:#x}",
                msg.msg.label()
            );
        }
        let page = address & !(PAGE_SIZE - 1);
        if let Err(error) = map(client.child.space, shared.get(), page, Rights::READ) {
            fail!(
                "map the shared frame at {page:#x} (fault #{}, the frame mapped {faults} times \
                 already): {error}",
                faults + 1
            );
        }
        reply(&Message::label_only(RESUME), msg.reply).context("reply RESUME")?;
        faults += 1;
    };
    client.expect_clean_exit(WAIT)?;
    if faults != total {
        fail!("{faults} faults served, expected {total}");
    }
    Ok(median)
}

/// Most frames one `FrameAlloc` may ask for.
const MAX_FRAME_RUN: usize = 4096;
/// Most runs [`frame_alloc_full`] holds at once (enough for 4 GiB of RAM in full runs).
const MAX_RUNS: usize = 256;
/// Share of the frames init can get that [`frame_alloc_full`] holds while measuring, in percent.
const FULL_PERCENT: usize = 95;

/// Frames of the small run `frame_alloc_run_*` allocate: the contiguous path (the one-frame
/// path resumes where the last allocation stopped; a run searches from the lowest address, so
/// with RAM 95% full a search that walked the used frames would show here).
const SMALL_RUN: usize = 16;

/// Times `FrameAlloc(frames)` + `CapDelete` of it, per pair.
fn measure_frame_alloc(frames: usize) -> Result<u64, Reason> {
    measure(1, |ops| {
        for _ in 0..ops {
            let range = frame_alloc(frames).context(format_args!("frame_alloc({frames})"))?;
            cap_delete(range).context("cap_delete")?;
        }
        Ok(())
    })
}

/// Frame runs held by [`frame_alloc_full`], in the order taken; each is freed when dropped.
struct Runs {
    caps: [Option<Owned>; MAX_RUNS],
    frames: [usize; MAX_RUNS],
    len: usize,
}

impl Runs {
    fn new() -> Self {
        Runs {
            caps: [const { None }; MAX_RUNS],
            frames: [0; MAX_RUNS],
            len: 0,
        }
    }

    /// Takes runs (of [`MAX_FRAME_RUN`] frames, halving on `OutOfMemory`) until `limit` frames
    /// are held in all or no single frame is left; returns the frames taken.
    fn take(&mut self, limit: usize) -> Result<usize, Reason> {
        let mut taken = 0;
        let mut size = MAX_FRAME_RUN;
        while size > 0 && taken < limit {
            let want = size.min(limit - taken);
            match frame_alloc(want) {
                Ok(cap) => {
                    let owned = Owned(cap);
                    if self.len == MAX_RUNS {
                        fail!("more than {MAX_RUNS} runs of frames needed (too much RAM)");
                    }
                    self.caps[self.len] = Some(owned);
                    self.frames[self.len] = want;
                    self.len += 1;
                    taken += want;
                }
                Err(abi::Error::OutOfMemory) => size /= 2,
                Err(error) => fail!("frame_alloc({want}): {error}"),
            }
        }
        Ok(taken)
    }

    /// Frees run `i` (if still held); returns its frames.
    fn free(&mut self, i: usize) -> usize {
        match self.caps[i].take() {
            Some(_) => self.frames[i],
            None => 0,
        }
    }
}

/// Holds 95% of the frames init can get, all of the lowest addresses: takes every frame (the
/// kernel hands runs out lowest fit first, so the full-size runs come in rising address order
/// and the smaller ones then fill the holes between), frees full-size runs from the highest
/// down until 5% is free, and takes back what was freed beyond 5%.
fn frame_alloc_full() -> Result<(u64, u64), Reason> {
    let mut runs = Runs::new();
    let available = runs.take(usize::MAX)?;
    let target_free = available * (100 - FULL_PERCENT) / 100;
    let full_size = runs.frames[..runs.len]
        .iter()
        .take_while(|&&frames| frames == MAX_FRAME_RUN)
        .count();
    let mut freed = 0;
    for i in (0..full_size).rev() {
        if freed >= target_free {
            break;
        }
        freed += runs.free(i);
    }
    if freed < target_free {
        fail!("freed only {freed} of {target_free} frames ({available} held)");
    }
    let back = freed - target_free;
    let taken = runs.take(back)?;
    if taken != back {
        fail!("took back {taken} of {back} frames");
    }
    // 95% held; the batches reuse one frame, then one small run, at a time out of the 5% left.
    Ok((measure_frame_alloc(1)?, measure_frame_alloc(SMALL_RUN)?))
}

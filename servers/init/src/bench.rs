//! The benchmarks: the cost of the kernel's hot paths, in cycle-counter ticks.
//!
//! Owns the measurement rule and the output format. Each benchmark runs one warm-up batch, then
//! [`BATCHES`] batches of [`BATCH`] operations, reading [`rt::cycles::cycles`] around each batch;
//! the value is the median over the batches of ticks per operation, printed as
//! `[bench] NAME VALUE ticks`. Under QEMU with `-icount shift=0` a tick is an executed
//! instruction. A benchmark that fails prints `init: bench NAME failed: REASON` instead.
//!
//! - `null_syscall`: one `Null`.
//! - `ipc_call_reply`: one `Call` to a `BENCH_SERVER` helper in another address space and its
//!   `ReplyRecv` answer (four words each way).
//! - `ipc_call_reply_same_space`: the same, served by a second thread in init's own address
//!   space ([`rt::thread::spawn_local`]; it shares init's table, so it gets the endpoint handle
//!   in its argument).
//! - `notify_wait`: one `Signal` then one `Wait` on the same notification, in one thread.
//! - `yield_switch`: init and a `YIELD_PARTNER` helper yield to each other; the value is per
//!   yield (each batch of [`BATCH`] yields by init contains as many by the partner, so the batch
//!   is divided by 2 × [`BATCH`]).
//! - `fault_roundtrip`: a `FAULT_BENCH` helper reads fresh pages; init, its pager, maps each
//!   page and replies. The helper times its own batches (ticks per fault as the faulting thread
//!   sees them) and sends the median in a `BENCH_RESULT` message on the pager endpoint, which
//!   init receives in its pager loop (chosen over an exit code so the value keeps 64 bits and
//!   an error stays distinguishable from a result).
//!
//! It must never print inside a measured batch, and never report a number from a run in which
//! an operation failed.

use crate::Env;
use crate::child::spawn_utest;
use crate::tests::{Context, Owned, Reason, WAIT, fail, owned};
use abi::fault::{FAULT_LABEL, FaultKind, RESUME};
use abi::{CapHandle, Rights, Timeout};
use rt::cycles::cycles;
use rt::println;
use rt::process::PAGE_SIZE;
use rt::roles::{
    BENCH_RESULT, BENCH_SERVER, FAULT_BENCH, FAULT_BENCH_BATCH, FAULT_BENCH_BATCHES,
    FAULT_BENCH_VA, SHUTDOWN, YIELD_PARTNER,
};
use rt::syscall::{
    Message, call, cap_copy, cap_delete, endpoint_create, frame_alloc, map, notification_create,
    null, recv, reply, send, set_pager, signal, wait, yield_now,
};

/// Operations per batch.
pub const BATCH: u64 = 1000;
/// Timed batches (after one warm-up batch); the median is reported.
pub const BATCHES: usize = 11;
/// Where init maps the stack of its same-address-space server thread (a guard page below it
/// stays unmapped; far from the spawn scratch window).
const LOCAL_STACK_VA: u64 = 0x0000_6100_0000_0000;
/// Pages of that stack.
const LOCAL_STACK_PAGES: usize = 16;

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
fn report(name: &str, result: Result<u64, Reason>) {
    match result {
        Ok(ticks) => println!("[bench] {name} {ticks} ticks"),
        Err(reason) => println!("init: bench {name} failed: {reason}"),
    }
}

/// Runs every benchmark, printing one line each.
pub fn run_all(env: &Env) {
    report("counter_check", counter_check());
    report("null_syscall", null_syscall());
    report("ipc_call_reply", ipc_call_reply(env));
    report("ipc_call_reply_same_space", ipc_call_reply_same_space(env));
    report("notify_wait", notify_wait());
    report("yield_switch", yield_switch(env));
    report("fault_roundtrip", fault_roundtrip(env));
}

/// The cycle counter checked against a loop of a known instruction count: 1,000 iterations of
/// a two-instruction loop (decrement, branch), so under `-icount shift=0` the value is 2,000 if a
/// tick is one executed instruction.
fn counter_check() -> Result<u64, Reason> {
    measure(1, |ops| {
        for _ in 0..ops {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a register-only loop; it touches no memory and leaves rcx at zero.
            unsafe {
                core::arch::asm!(
                    "2:", "dec {n}", "jnz 2b",
                    n = inout(reg) 1000u64 => _,
                    options(nomem, nostack)
                );
            }
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as above.
            unsafe {
                core::arch::asm!(
                    "2:", "subs {n}, {n}, #1", "b.ne 2b",
                    n = inout(reg) 1000u64 => _,
                    options(nomem, nostack)
                );
            }
        }
        Ok(())
    })
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

fn yield_switch(env: &Env) -> Result<u64, Reason> {
    // Param 0: the partner yields forever; dropping `partner` kills it.
    let mut partner = spawn_utest(env, YIELD_PARTNER, 0, &[])?;
    partner.start()?;
    measure(2, |ops| {
        for _ in 0..ops {
            yield_now().context("yield")?;
        }
        Ok(())
    })
}

/// How the pager backs each faulting page.
enum Backing {
    /// One frame mapped (read-only) at every faulting page: the cheapest pager, measuring the
    /// fault path itself. Relies on a frame range being mappable at several places at once.
    Shared(Owned),
    /// A fresh frame per fault (used if the kernel refuses to map the shared frame twice).
    Fresh,
}

fn fault_roundtrip(env: &Env) -> Result<u64, Reason> {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let pager = owned(
        "cap_copy SEND|CALL",
        cap_copy(endpoint.get(), Rights::SEND | Rights::CALL, 0),
    )?;
    let mut client = spawn_utest(env, FAULT_BENCH, 0, &[(endpoint.get(), Rights::SEND)])?;
    set_pager(client.child.space, pager.get()).context("set_pager")?;
    let mut backing = Backing::Shared(owned("frame_alloc(1)", frame_alloc(1))?);
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
        let mapped = match &backing {
            Backing::Shared(frame) => map(client.child.space, frame.get(), page, Rights::READ),
            Backing::Fresh => Err(abi::Error::Unknown),
        };
        if let Err(error) = mapped {
            if let Backing::Shared(_) = backing {
                println!(
                    "init: bench fault_roundtrip: shared frame refused ({error}), using a fresh frame per fault"
                );
                backing = Backing::Fresh;
            }
            let frame = frame_alloc(1).context("frame_alloc(1) for a fault")?;
            let mapped = map(client.child.space, frame, page, Rights::READ);
            let _ = cap_delete(frame);
            mapped.context(format_args!("map page {page:#x}"))?;
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

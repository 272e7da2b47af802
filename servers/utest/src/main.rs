//! `utest`: the helper process of Strait's user tests and benchmarks.
//!
//! Owns the child side of every test scenario that needs a second address space. One binary
//! plays every role; the spawner (init) picks the role in the start-up argument and passes
//! capabilities through the bootstrap page (the whole protocol is in [`rt::roles`]). Each role
//! ends with an exit code the spawner checks ([`rt::roles`]`::EXIT_*`) and, on failure, prints one
//! line `utest[ROLE]: STEP: ERROR` so the console says what went wrong.
//!
//! It must never run unless spawned by a program following [`rt::roles`] (it trusts the
//! bootstrap page), never report test results itself (the spawner does, so that every test
//! reports exactly once), and never print in benchmark roles.
#![no_std]
#![no_main]

use abi::fault::FAULT_LABEL;
use abi::{CapHandle, ObjectType, Rights, Timeout};
use rt::roles::{self, split_arg};
use rt::syscall::{Message, cap_delete, cap_identify, recv, reply_recv, send, signal, yield_now};
use rt::{cycles::cycles, println};

rt::entry!(main);

/// Dispatches on the role in the start-up argument.
fn main(arg: u64) -> i64 {
    let (role, param) = split_arg(arg);
    let code = match role {
        roles::ECHO_SERVER => echo_server(role, 1),
        roles::BENCH_SERVER => echo_server(role, 0),
        roles::NOTIFY_SIGNALER => notify_signaler(role, param),
        roles::CAP_RECEIVER => cap_receiver(role),
        roles::FAULT_NULL
        | roles::FAULT_WRITE_RO
        | roles::FAULT_KERNEL
        | roles::FAULT_UNDEFINED
        | roles::FAULT_PRIVILEGED
        | roles::FAULT_BREAKPOINT => fault(role),
        roles::PAGER_CLIENT => pager_client(role),
        roles::FP_WORKER => fp_worker(role, param),
        roles::YIELD_PARTNER => yield_partner(param),
        roles::FAULT_BENCH => fault_bench(role),
        roles::EXIT_WITH => exit_with(param),
        roles::PARKED => parked(role),
        roles::MANY_CLIENT => many_client(role, param),
        roles::HOLDING_SERVER => holding_server(role, param),
        roles::RECORDER => recorder(role),
        roles::REPORT_PROBE => report_probe(),
        roles::USERCOPY_CLIENT => usercopy_client(role),
        roles::SPACE_KILL_VICTIM => space_kill_victim(role),
        roles::SPACE_KILL_SELF => space_kill_self(role),
        _ => {
            println!("utest: unknown role {role} (argument {arg:#x})");
            roles::EXIT_UNKNOWN_ROLE
        }
    };
    if code != 0 {
        println!(
            "utest[{}]: exiting with code {code}",
            roles::role_name(role)
        );
    }
    code
}

/// The `index`th bootstrap handle, or the exit code to end with (after printing why).
fn handle(role: u16, index: usize) -> Result<CapHandle, i64> {
    // SAFETY: utest is only ever started through rt::process::spawn by a spawner that follows
    // the rt::roles protocol, which maps the bootstrap page before starting the thread.
    let handles = unsafe { roles::bootstrap() }.map_err(|error| {
        println!("utest[{}]: {error}", roles::role_name(role));
        roles::EXIT_BAD_BOOTSTRAP
    })?;
    handles.get(index).copied().ok_or_else(|| {
        println!(
            "utest[{}]: bootstrap page has {} handles, needed index {index}",
            roles::role_name(role),
            handles.len()
        );
        roles::EXIT_BAD_BOOTSTRAP
    })
}

/// Prints `utest[ROLE]: STEP: ERROR` and returns [`roles::EXIT_SYSCALL_FAILED`].
fn syscall_failed(role: u16, step: &str, error: impl core::fmt::Display) -> i64 {
    println!("utest[{}]: {step}: {error}", roles::role_name(role));
    roles::EXIT_SYSCALL_FAILED
}

/// `ECHO_SERVER` (`delta` 1) and `BENCH_SERVER` (`delta` 0).
fn echo_server(role: u16, delta: u64) -> i64 {
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    match rt::echo::serve(endpoint, delta) {
        Ok(_) => 0,
        Err(error) => syscall_failed(role, "serve", error),
    }
}

/// `NOTIFY_SIGNALER`: signals bits `1 << 1 ..= 1 << n` in order, yielding after each.
fn notify_signaler(role: u16, n: u64) -> i64 {
    let notification = match handle(role, 0) {
        Ok(notification) => notification,
        Err(code) => return code,
    };
    if !(1..=62).contains(&n) {
        println!("utest[notify_signaler]: parameter {n} is not in 1..=62");
        return roles::EXIT_CHECK_FAILED;
    }
    for bit in 1..=n {
        if let Err(error) = signal(notification, 1 << bit) {
            return syscall_failed(role, "signal", error);
        }
        if let Err(error) = yield_now() {
            return syscall_failed(role, "yield", error);
        }
    }
    0
}

/// `CAP_RECEIVER`: serves capability-carrying calls until `SHUTDOWN`.
fn cap_receiver(role: u16) -> i64 {
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    let mut received = match recv(endpoint, Timeout::FOREVER) {
        Ok(received) => received,
        Err(error) => return syscall_failed(role, "recv", error),
    };
    loop {
        let msg = received.msg;
        if msg.label() == roles::SHUTDOWN {
            if !received.reply.is_none() {
                let _ = rt::syscall::reply(&Message::label_only(roles::SHUTDOWN), received.reply);
            }
            return 0;
        }
        let answer = use_received_cap(&msg);
        received = match reply_recv(endpoint, &answer, received.reply, Timeout::FOREVER) {
            Ok(received) => received,
            Err(error) => return syscall_failed(role, "reply_recv", error),
        };
    }
}

/// Checks and uses the capability a `CAP_RECEIVER` request carried; returns the answer.
fn use_received_cap(msg: &Message) -> Message {
    let answer = |label: u32, detail: u64, extra: u64| Message::new(label, [detail, extra, 0, 0]);
    if !msg.info.has_cap() || msg.cap.is_null() {
        return answer(roles::CAP_NO_CAP, msg.info.into_raw(), msg.cap.into_raw());
    }
    let cap = msg.cap;
    let info = match cap_identify(cap) {
        Ok(info) => info,
        Err(error) => return answer(roles::CAP_USE_FAILED, error.into_raw() as u64, 0),
    };
    let expected = match msg.label() {
        roles::CAP_NOTIFICATION => ObjectType::Notification,
        _ => ObjectType::Endpoint,
    };
    let result = if info.object != expected {
        answer(
            roles::CAP_WRONG_TYPE,
            info.object.into_raw(),
            info.rights.into_raw(),
        )
    } else if expected == ObjectType::Notification {
        if !info.rights.contains(Rights::SEND) {
            answer(
                roles::CAP_WRONG_TYPE,
                info.object.into_raw(),
                info.rights.into_raw(),
            )
        } else {
            match signal(cap, msg.words[0]) {
                Ok(()) => answer(roles::CAP_OK, 0, 0),
                Err(error) => answer(roles::CAP_USE_FAILED, error.into_raw() as u64, 0),
            }
        }
    } else {
        answer(roles::CAP_OK, info.rights.into_raw(), info.badge)
    };
    // The capability was only needed for this request.
    let _ = cap_delete(cap);
    result
}

// The instructions whose faults the tests check, each the first instruction of a routine, so
// that the spawner can be told exactly which pc must fault (the symbol's address). Each routine
// returns if its instruction did not fault.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".section .text.utest_probes,\"ax\",@progbits",
    ".global utest_load",
    "utest_load:",
    "    mov rax, qword ptr [rdi]",
    "    ret",
    ".global utest_store",
    "utest_store:",
    "    mov qword ptr [rdi], rsi",
    "    ret",
    ".global utest_store_byte",
    "utest_store_byte:",
    "    mov byte ptr [rdi], sil",
    "    ret",
    ".global utest_undefined",
    "utest_undefined:",
    "    ud2",
    "    ret",
    ".global utest_privileged",
    "utest_privileged:",
    "    hlt",
    "    ret",
    ".global utest_breakpoint",
    "utest_breakpoint:",
    "    int3",
    "    ret",
    // DebugWrite(rdi, rsi) with the `syscall` at a symbol of its own. r12..r14 are slots the
    // kernel may write (abi::regs) but callee-saved here, so they are kept.
    ".global utest_debug_write",
    "utest_debug_write:",
    "    push r12",
    "    push r13",
    "    push r14",
    "    mov eax, 2",
    ".global utest_debug_write_syscall",
    "utest_debug_write_syscall:",
    "    syscall",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    ret",
);
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text.utest_probes,\"ax\",%progbits",
    ".global utest_load",
    "utest_load:",
    "    ldr x0, [x0]",
    "    ret",
    ".global utest_store",
    "utest_store:",
    "    str x1, [x0]",
    "    ret",
    ".global utest_store_byte",
    "utest_store_byte:",
    "    strb w1, [x0]",
    "    ret",
    ".global utest_undefined",
    "utest_undefined:",
    "    udf #0",
    "    ret",
    ".global utest_privileged",
    "utest_privileged:",
    "    msr daifset, #0xf",
    "    ret",
    ".global utest_breakpoint",
    "utest_breakpoint:",
    "    brk #0",
    "    ret",
    // DebugWrite(x0, x1) with the `svc #0` at a symbol of its own; the result comes back in x0.
    // Every slot register the kernel may write (x0..x7, x9) is caller-saved here.
    ".global utest_debug_write",
    "utest_debug_write:",
    "    mov x8, #2",
    ".global utest_debug_write_syscall",
    "utest_debug_write_syscall:",
    "    svc #0",
    "    ret",
);

unsafe extern "C" {
    /// Loads the word at `address` (first instruction).
    fn utest_load(address: u64) -> u64;
    /// Stores `value` at `address` (first instruction).
    fn utest_store(address: u64, value: u64);
    /// Stores the low byte of `value` at `address` (first instruction).
    fn utest_store_byte(address: u64, value: u64);
    /// Executes the undefined instruction (first instruction).
    fn utest_undefined();
    /// Executes a privileged instruction (first instruction).
    fn utest_privileged();
    /// Executes a breakpoint (first instruction).
    fn utest_breakpoint();
    /// `DebugWrite(ptr, len)`; returns the raw result register.
    fn utest_debug_write(ptr: u64, len: u64) -> u64;
    /// The system-call instruction of [`utest_debug_write`] (only its address is used).
    fn utest_debug_write_syscall();
}

/// `FAULT_*`: tells the spawner which instruction will fault and on what address, then makes the
/// fault the role names; the kernel must kill the process.
fn fault(role: u16) -> i64 {
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    // Any byte of this program's text: the write stores back the byte already there.
    let text = main as *const () as u64;
    let (pc, address) = match role {
        roles::FAULT_NULL => (utest_load as *const () as u64, 0),
        roles::FAULT_KERNEL => (utest_load as *const () as u64, roles::KERNEL_PROBE_VA),
        roles::FAULT_WRITE_RO => (utest_store_byte as *const () as u64, text),
        roles::FAULT_UNDEFINED => (utest_undefined as *const () as u64, 0),
        roles::FAULT_BREAKPOINT => (utest_breakpoint as *const () as u64, 0),
        _ => (utest_privileged as *const () as u64, 0),
    };
    let plan = Message::new(roles::FAULT_PLAN, [pc, address, 0, 0]);
    if let Err(error) = send(endpoint, &plan, Timeout::FOREVER) {
        return syscall_failed(role, "send the fault plan", error);
    }
    // Each routine's first instruction is meant to fault and end the process. Were the kernel to
    // resume it anyway, no Rust-visible memory changes (each SAFETY below says why).
    match role {
        roles::FAULT_NULL | roles::FAULT_KERNEL => {
            // SAFETY: a load; the value is discarded.
            let _ = unsafe { utest_load(address) };
        }
        roles::FAULT_WRITE_RO => {
            let text_byte = core::ptr::with_exposed_provenance::<u8>(text as usize);
            // SAFETY: program text is mapped readable for the process's whole life.
            let byte = unsafe { text_byte.read_volatile() };
            // SAFETY: stores back the byte that is already there: the code is unchanged.
            unsafe { utest_store_byte(text, u64::from(byte)) };
        }
        // SAFETY: `ud2` / `udf` touch no memory.
        roles::FAULT_UNDEFINED => unsafe { utest_undefined() },
        // SAFETY: `int3` / `brk` touch no memory.
        roles::FAULT_BREAKPOINT => unsafe { utest_breakpoint() },
        // SAFETY: `hlt` / `msr daifset` touch no memory.
        _ => unsafe { utest_privileged() },
    }
    println!(
        "utest[{}]: survived its fault (the kernel resumed it)",
        roles::role_name(role)
    );
    roles::EXIT_SURVIVED_FAULT
}

/// The pattern word `word` of page `page` of the pager window.
fn pattern(page: u64, word: u64) -> u64 {
    0xA5A5_0000_0000_0000 ^ (page << 32) ^ (word * 0x0101)
}

/// Words of each page the pager client writes and checks (spread over the page).
const PATTERN_WORDS: u64 = 8;

/// `PAGER_CLIENT`: tells its pager which load and store touch the window first, touches every
/// data page (a load on even pages, a store on odd ones; each first touch faults to the pager)
/// and writes a pattern into it, runs the code page, then checks the patterns.
fn pager_client(role: u16) -> i64 {
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    let plan = Message::new(
        roles::PAGER_PLAN,
        [
            utest_load as *const () as u64,
            utest_store as *const () as u64,
            0,
            0,
        ],
    );
    if let Err(error) = send(endpoint, &plan, Timeout::FOREVER) {
        return syscall_failed(role, "send the pager plan", error);
    }
    let word_address = |page: u64, word: u64| {
        roles::PAGER_WINDOW_VA + page * rt::process::PAGE_SIZE + word * (rt::process::PAGE_SIZE / 8)
    };
    for page in 0..roles::PAGER_CODE_PAGE {
        let first = word_address(page, 0);
        // The window is reserved for this test: nothing in this program lives there, and the
        // pager maps each page read-write on its first touch (the access faults until then and
        // is re-executed after the pager's reply). The address is 8-byte aligned.
        if page.is_multiple_of(2) {
            // SAFETY: see above; the value is discarded.
            let _ = unsafe { utest_load(first) };
        } else {
            // SAFETY: see above; the word is the one the loop below writes there anyway.
            unsafe { utest_store(first, pattern(page, 0)) };
        }
        for word in 0..PATTERN_WORDS {
            let ptr =
                core::ptr::with_exposed_provenance_mut::<u64>(word_address(page, word) as usize);
            // SAFETY: as above; the page is mapped by now.
            unsafe { ptr.write_volatile(pattern(page, word)) };
        }
    }
    let code = word_address(roles::PAGER_CODE_PAGE, 0) as usize;
    // SAFETY: the pager protocol (rt::roles::PAGER_CLIENT) has the pager map the code page
    // readable and executable with a return instruction at its start, on the first fetch; so the
    // call returns at once, touching nothing. A pager that maps anything else fails the test.
    unsafe { core::mem::transmute::<usize, extern "C" fn()>(code)() };
    let mut bad = 0u64;
    for page in 0..roles::PAGER_CODE_PAGE {
        for word in 0..PATTERN_WORDS {
            let ptr = core::ptr::with_exposed_provenance::<u64>(word_address(page, word) as usize);
            // SAFETY: as above; every data page is mapped by now (written in the loop above).
            let found = unsafe { ptr.read_volatile() };
            if found != pattern(page, word) {
                if bad == 0 {
                    println!(
                        "utest[{}]: page {page} word {word}: expected {:#x}, found {found:#x}",
                        roles::role_name(role),
                        pattern(page, word)
                    );
                }
                bad += 1;
            }
        }
    }
    if bad == 0 {
        0
    } else {
        roles::EXIT_CHECK_FAILED
    }
}

/// `FP_WORKER`: the vector-register test, seeded with `seed`.
fn fp_worker(role: u16, seed: u64) -> i64 {
    match rt::fpu::torture(seed, roles::FP_ITERATIONS) {
        Ok(()) => 0,
        Err(mismatch) => {
            println!("utest[{}] seed {seed}: {mismatch}", roles::role_name(role));
            roles::EXIT_CHECK_FAILED
        }
    }
}

/// `YIELD_PARTNER`: yields `count` times, or forever when `count` is 0 (the spawner kills it),
/// counting its turns in the page at [`roles::YIELD_TURNS_VA`]: the spawner checks that each of
/// its own yields gave this partner exactly one turn. A failed yield ends it (the count stops,
/// which the spawner sees); it prints nothing itself, being a benchmark role.
fn yield_partner(count: u64) -> i64 {
    // SAFETY: the spawner maps a read-write page at YIELD_TURNS_VA before starting this role and
    // leaves it for the process's whole life (rt::roles); it is page-aligned, and every bit
    // pattern is a valid AtomicU64. The spawner maps it read-only on its side and only loads.
    let turns = unsafe { &*(roles::YIELD_TURNS_VA as *const core::sync::atomic::AtomicU64) };
    // One bound check per turn (no separate test for "forever"): the loop is measured.
    let last = if count == 0 { u64::MAX } else { count + 1 };
    let mut turn = 0u64;
    loop {
        turn += 1;
        turns.store(turn, core::sync::atomic::Ordering::Relaxed);
        if turn == last {
            return 0;
        }
        if yield_now().is_err() {
            return roles::EXIT_SYSCALL_FAILED;
        }
    }
}

/// `FAULT_BENCH`: times batches of page faults (each served by the pager) and sends the median
/// cycles per fault to the pager endpoint.
fn fault_bench(role: u16) -> i64 {
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    let mut samples = [0u64; roles::FAULT_BENCH_BATCHES];
    let mut next_page = 0u64;
    for batch in 0..=roles::FAULT_BENCH_BATCHES {
        let start = cycles();
        for _ in 0..roles::FAULT_BENCH_BATCH {
            let address = roles::FAULT_BENCH_VA + next_page * rt::process::PAGE_SIZE;
            next_page += 1;
            let ptr = core::ptr::with_exposed_provenance::<u64>(address as usize);
            // SAFETY: the window is reserved for this benchmark: nothing in this program lives
            // there, and the pager maps each page (readable) on its first touch.
            let _ = unsafe { ptr.read_volatile() };
        }
        let elapsed = cycles().wrapping_sub(start);
        if batch > 0 {
            samples[batch - 1] = elapsed / roles::FAULT_BENCH_BATCH;
        }
    }
    samples.sort_unstable();
    let median = samples[roles::FAULT_BENCH_BATCHES / 2];
    let result = Message::new(roles::BENCH_RESULT, [median, 0, 0, 0]);
    match send(endpoint, &result, Timeout::FOREVER) {
        Ok(()) => 0,
        Err(error) => syscall_failed(role, "send result", error),
    }
}

// The fault label is what the pager sees; keep the benchmark's result label distinct from it.
const _: () = assert!(roles::BENCH_RESULT != FAULT_LABEL);

/// `EXIT_WITH`: ends with `EXIT_CODES[index]` through `ThreadExit` directly (not through `main`,
/// which would print a line for every non-zero code).
fn exit_with(index: u64) -> i64 {
    match usize::try_from(index)
        .ok()
        .and_then(|i| roles::EXIT_CODES.get(i))
    {
        Some(&code) => rt::syscall::thread_exit(code),
        None => {
            println!("utest[exit_with]: no exit code number {index}");
            roles::EXIT_UNKNOWN_ROLE
        }
    }
}

/// `PARKED`: waits for ever on its notification (bootstrap handle 0); it must be killed.
fn parked(role: u16) -> i64 {
    let notification = match handle(role, 0) {
        Ok(notification) => notification,
        Err(code) => return code,
    };
    match rt::syscall::wait(notification, Timeout::FOREVER) {
        Ok(bits) => {
            println!("utest[parked]: woken with bits {bits:#x}, expected to be killed");
            roles::EXIT_CHECK_FAILED
        }
        Err(error) => syscall_failed(role, "wait", error),
    }
}

/// `MANY_CLIENT`: calls the server through its badged endpoint and checks that every reply is
/// its own (computed from its own badge), or, with no calls to make, that its one call fails with
/// `Killed`.
fn many_client(role: u16, param: u64) -> i64 {
    let (id, calls) = roles::split_many_param(param);
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    let badge = roles::many_badge(id);
    if calls == 0 {
        let request = Message::new(roles::MANY_CALL, roles::many_request(badge, 0));
        return match rt::syscall::call(endpoint, &request, Timeout::FOREVER) {
            Err(abi::Error::Killed) => roles::many_exit(roles::MANY_EXIT_KILLED, id),
            Ok(answer) => {
                println!(
                    "utest[many_client {id}]: the held call was answered ({:?}), expected Killed",
                    answer.info
                );
                roles::many_exit(roles::MANY_EXIT_WRONG_REPLY, id)
            }
            Err(error) => {
                println!("utest[many_client {id}]: held call: {error}, expected Killed");
                roles::many_exit(roles::MANY_EXIT_CALL_FAILED, id)
            }
        };
    }
    for seq in 0..calls {
        let words = roles::many_request(badge, seq);
        let answer = match rt::syscall::call(
            endpoint,
            &Message::new(roles::MANY_CALL, words),
            Timeout::FOREVER,
        ) {
            Ok(answer) => answer,
            Err(error) => {
                println!("utest[many_client {id}]: call {seq}: {error}");
                return roles::many_exit(roles::MANY_EXIT_CALL_FAILED, id);
            }
        };
        let want = Message::new(roles::MANY_REPLY, roles::many_reply(badge, words));
        if answer != want {
            println!(
                "utest[many_client {id}]: call {seq}: reply {:?} {:x?}, expected {:x?} (not its own)",
                answer.info, answer.words, want.words
            );
            return roles::many_exit(roles::MANY_EXIT_WRONG_REPLY, id);
        }
    }
    roles::many_exit(roles::MANY_EXIT_DONE, id)
}

/// `HOLDING_SERVER`: receives `held` messages without answering, reports their badges to the
/// spawner with a call that is never answered, and is killed there.
fn holding_server(role: u16, held: u64) -> i64 {
    let (endpoint, report) = match (handle(role, 0), handle(role, 1)) {
        (Ok(endpoint), Ok(report)) => (endpoint, report),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let Some(count) = usize::try_from(held)
        .ok()
        .filter(|count| (1..=abi::MSG_WORDS).contains(count))
    else {
        println!("utest[holding_server]: cannot hold {held} calls");
        return roles::EXIT_BAD_BOOTSTRAP;
    };
    let mut badges = [0u64; abi::MSG_WORDS];
    for badge in badges.iter_mut().take(count) {
        // The reply token is dropped on purpose: the call stays unanswered until this thread
        // dies, and then the kernel must fail it with `Killed`.
        match recv(endpoint, Timeout::FOREVER) {
            Ok(received) => *badge = received.badge,
            Err(error) => return syscall_failed(role, "recv", error),
        }
    }
    let info = match abi::MessageInfo::new(roles::HELD, count, false) {
        Ok(info) => info,
        Err(error) => return syscall_failed(role, "report info", error),
    };
    let report_msg = Message {
        info,
        words: badges,
        cap: CapHandle::NULL,
    };
    match rt::syscall::call(report, &report_msg, Timeout::FOREVER) {
        Ok(_) => {
            println!("utest[holding_server]: its report was answered, expected to be killed");
            roles::EXIT_CHECK_FAILED
        }
        Err(error) => syscall_failed(role, "report call", error),
    }
}

/// `RECORDER`: answers every call with what it received and how many messages it has received.
fn recorder(role: u16) -> i64 {
    let endpoint = match handle(role, 0) {
        Ok(endpoint) => endpoint,
        Err(code) => return code,
    };
    let mut count = 0u32;
    loop {
        let received = match recv(endpoint, Timeout::FOREVER) {
            Ok(received) => received,
            Err(error) => return syscall_failed(role, "recv", error),
        };
        let msg = received.msg;
        if msg.label() == roles::SHUTDOWN {
            if !received.reply.is_none() {
                let _ = rt::syscall::reply(&Message::label_only(roles::SHUTDOWN), received.reply);
            }
            return 0;
        }
        count += 1;
        if !msg.cap.is_null() {
            // Only what arrived matters; the capability itself is not kept.
            let _ = cap_delete(msg.cap);
        }
        if !received.reply.is_none() {
            let answer = Message::new(
                count,
                [msg.info.into_raw(), msg.cap.into_raw(), received.badge, 0],
            );
            if let Err(error) = rt::syscall::reply(&answer, received.reply) {
                return syscall_failed(role, "reply", error);
            }
        }
    }
}

/// `REPORT_PROBE`: tries to report an init test from a process that is not init. The report
/// says the test failed, so that a kernel that wrongly accepts it can never make that test pass
/// (`utest` reports no results of its own: this one exists only to be refused).
fn report_probe() -> i64 {
    match rt::syscall::test_report(
        roles::REPORT_PROBE_TEST,
        abi::syscall::TestStatus::Failed,
        roles::REPORT_PROBE_REASON,
    ) {
        Ok(()) => roles::REPORT_PROBE_ACCEPTED,
        Err(error) => error.into_raw() as i64,
    }
}

/// `USERCOPY_CLIENT`: makes the `DebugWrite`s of [`roles::USERCOPY_CASES`] one by one, each
/// after its spawner answered the previous call, and reports each raw result.
fn usercopy_client(role: u16) -> i64 {
    let report = match handle(role, 0) {
        Ok(report) => report,
        Err(code) => return code,
    };
    let plan = Message::new(
        roles::USERCOPY_PLAN,
        [utest_debug_write_syscall as *const () as u64, 0, 0, 0],
    );
    let mut answer = rt::syscall::call(report, &plan, Timeout::FOREVER);
    for (index, &(ptr, len)) in roles::USERCOPY_CASES.iter().enumerate() {
        match answer {
            Ok(go) if go.label() == 0 => {}
            Ok(go) => {
                println!(
                    "utest[usercopy_client]: told {:#x} before case {index}",
                    go.label()
                );
                return roles::EXIT_CHECK_FAILED;
            }
            Err(error) => return syscall_failed(role, "report call", error),
        }
        // SAFETY: DebugWrite only reads `len` bytes at `ptr` (never writes this program's
        // memory); the cases point at memory nothing in this program uses, or at none at all.
        let raw = unsafe { utest_debug_write(ptr, len) };
        let result = Message::new(roles::USERCOPY_RESULT, [index as u64, raw, 0, 0]);
        answer = rt::syscall::call(report, &result, Timeout::FOREVER);
    }
    match answer {
        Ok(go) if go.label() == 0 => 0,
        Ok(_) => roles::EXIT_CHECK_FAILED,
        Err(error) => syscall_failed(role, "last report call", error),
    }
}

/// A victim's receiver: takes one call and keeps it unanswered, then receives for ever.
fn victim_receiver(endpoint: u64) -> i64 {
    let endpoint = CapHandle::from_raw(endpoint);
    // The reply token is dropped on purpose: the caller waits until this thread dies.
    if recv(endpoint, Timeout::FOREVER).is_err() {
        return roles::EXIT_SYSCALL_FAILED;
    }
    let _ = recv(endpoint, Timeout::FOREVER);
    roles::EXIT_CHECK_FAILED
}

/// A victim's waiter: waits on the notification for ever.
fn victim_waiter(notification: u64) -> i64 {
    let _ = rt::syscall::wait(CapHandle::from_raw(notification), Timeout::FOREVER);
    roles::EXIT_CHECK_FAILED
}

/// A victim's spinner: runs in user mode for ever, never entering the kernel itself.
fn victim_spinner(_: u64) -> i64 {
    let mut turns = 0u64;
    loop {
        turns = core::hint::black_box(turns.wrapping_add(1));
        core::hint::spin_loop();
    }
}

/// A victim's joiner: joins the spinner for ever.
fn victim_joiner(spinner: u64) -> i64 {
    let _ = rt::syscall::thread_join(CapHandle::from_raw(spinner), Timeout::FOREVER);
    roles::EXIT_CHECK_FAILED
}

/// A victim's faulter: reads a page nobody maps (its pager holds the fault).
fn victim_faulter(_: u64) -> i64 {
    let ptr = core::ptr::with_exposed_provenance::<u64>(roles::VICTIM_FAULT_VA as usize);
    // SAFETY: nothing in this program lives at VICTIM_FAULT_VA; the read faults to the pager,
    // which never answers (rt::roles::SPACE_KILL_VICTIM), and the value would be discarded.
    let _ = unsafe { ptr.read_volatile() };
    roles::EXIT_CHECK_FAILED
}

/// Where a victim's never-started thread would begin: it never does (only the kernel's kill
/// ever starts it, and that ends it before user mode).
extern "C" fn victim_never_runs() -> ! {
    rt::syscall::thread_exit(roles::EXIT_CHECK_FAILED)
}

/// Starts local thread `index` of a victim running `main(arg)`; its handle.
fn victim_thread(
    own_space: CapHandle,
    index: u64,
    main: fn(u64) -> i64,
    arg: u64,
) -> Result<CapHandle, rt::syscall::StepError> {
    let stack = roles::VICTIM_STACKS_VA + index * roles::VICTIM_STACK_STRIDE;
    rt::thread::spawn_local(own_space, stack, roles::VICTIM_STACK_PAGES, main, arg)
        .map(|local| local.thread)
}

/// Sends a copy of `thread` (`CONTROL`, `GRANT`) to `report`, labelled with its index.
fn send_thread(report: CapHandle, index: u64, thread: CapHandle) -> Result<(), abi::Error> {
    let copy = rt::syscall::cap_copy(thread, Rights::CONTROL | Rights::GRANT, 0)?;
    let msg = Message::new(roles::VICTIM_THREAD, [index, 0, 0, 0]).with_cap(copy);
    send(report, &msg, Timeout::FOREVER).inspect_err(|_| {
        let _ = cap_delete(copy);
    })
}

/// `SPACE_KILL_VICTIM`: threads blocked everywhere, then a call that is never answered.
fn space_kill_victim(role: u16) -> i64 {
    let handles = (
        handle(role, 0),
        handle(role, 1),
        handle(role, 2),
        handle(role, 3),
    );
    let (own_space, endpoint, notification, report) = match handles {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(code), ..) | (_, Err(code), ..) | (_, _, Err(code), _) | (.., Err(code)) => {
            return code;
        }
    };
    let mut threads = [CapHandle::NULL; roles::VICTIM_THREADS.len()];
    let spawned = (|| {
        threads[roles::VICTIM_RECEIVER as usize] = victim_thread(
            own_space,
            roles::VICTIM_RECEIVER,
            victim_receiver,
            endpoint.into_raw(),
        )?;
        threads[roles::VICTIM_WAITER as usize] = victim_thread(
            own_space,
            roles::VICTIM_WAITER,
            victim_waiter,
            notification.into_raw(),
        )?;
        let spinner = victim_thread(own_space, roles::VICTIM_SPINNER, victim_spinner, 0)?;
        threads[roles::VICTIM_SPINNER as usize] = spinner;
        threads[roles::VICTIM_JOINER as usize] = victim_thread(
            own_space,
            roles::VICTIM_JOINER,
            victim_joiner,
            spinner.into_raw(),
        )?;
        threads[roles::VICTIM_FAULTER as usize] =
            victim_thread(own_space, roles::VICTIM_FAULTER, victim_faulter, 0)?;
        // SAFETY: the thread is never started by this program (rt::roles): it never runs, so
        // its entry and its null stack are never used.
        threads[roles::VICTIM_UNSTARTED as usize] = unsafe {
            rt::syscall::thread_create(own_space, victim_never_runs as *const () as u64, 0, 0)
        }
        .map_err(rt::syscall::step("thread_create (never started)"))?;
        Ok::<(), rt::syscall::StepError>(())
    })();
    if let Err(error) = spawned {
        return syscall_failed(role, error.step, error.error);
    }
    for (index, &thread) in (0u64..).zip(&threads) {
        if let Err(error) = send_thread(report, index, thread) {
            return syscall_failed(role, "send a thread", error);
        }
    }
    let ready = Message::label_only(roles::VICTIM_READY);
    match rt::syscall::call(report, &ready, Timeout::FOREVER) {
        Ok(_) => {
            println!("utest[space_kill_victim]: its last call was answered, expected to be killed");
            roles::EXIT_CHECK_FAILED
        }
        Err(error) => syscall_failed(role, "ready call", error),
    }
}

/// `SPACE_KILL_SELF`: a waiter, then `SpaceKill` of its own space.
fn space_kill_self(role: u16) -> i64 {
    let (own_space, notification, report) =
        match (handle(role, 0), handle(role, 1), handle(role, 2)) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            (Err(code), ..) | (_, Err(code), _) | (.., Err(code)) => return code,
        };
    let waiter = match victim_thread(own_space, 0, victim_waiter, notification.into_raw()) {
        Ok(waiter) => waiter,
        Err(error) => return syscall_failed(role, error.step, error.error),
    };
    if let Err(error) = send_thread(report, 0, waiter) {
        return syscall_failed(role, "send the waiter", error);
    }
    loop {
        match rt::syscall::thread_state(waiter) {
            Ok(rt::syscall::ThreadState::Waiting) => break,
            Ok(_) => {}
            Err(error) => return syscall_failed(role, "thread_state of the waiter", error),
        }
        if let Err(error) = yield_now() {
            return syscall_failed(role, "yield", error);
        }
    }
    let result = rt::syscall::space_kill(own_space);
    println!("utest[space_kill_self]: SpaceKill of its own space returned {result:?}");
    roles::EXIT_CHECK_FAILED
}

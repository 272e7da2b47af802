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
        | roles::FAULT_UNDEFINED => fault(role),
        roles::PAGER_CLIENT => pager_client(role),
        roles::FP_WORKER => fp_worker(role, param),
        roles::YIELD_PARTNER => yield_partner(param),
        roles::FAULT_BENCH => fault_bench(role),
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

/// `FAULT_*`: makes the fault the role names; the kernel must kill the process.
fn fault(role: u16) -> i64 {
    match role {
        roles::FAULT_NULL => read_address(0),
        roles::FAULT_KERNEL => {
            #[cfg(target_arch = "x86_64")]
            read_address(0xffff_8000_0000_0000);
            #[cfg(target_arch = "aarch64")]
            read_address(0xffff_0000_0000_0000);
        }
        roles::FAULT_WRITE_RO => write_own_text(),
        _ => undefined_instruction(),
    }
    println!(
        "utest[{}]: survived its fault (the kernel resumed it)",
        roles::role_name(role)
    );
    roles::EXIT_SURVIVED_FAULT
}

/// Loads a word from `address` in assembly (so that the compiler does not treat the access as
/// undefined behaviour and remove it).
fn read_address(address: u64) {
    // SAFETY: the access is meant to fault and end the process; if the kernel resumed it anyway
    // the loaded value is discarded and no Rust-visible memory was written.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("mov {tmp}, qword ptr [{addr}]", addr = in(reg) address, tmp = out(reg) _, options(nostack, readonly));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("ldr {tmp}, [{addr}]", addr = in(reg) address, tmp = out(reg) _, options(nostack, readonly));
    }
}

/// Stores a byte over this function's own code (a read+execute page).
fn write_own_text() {
    let address = write_own_text as *const () as u64;
    // SAFETY: the store is meant to fault (text is mapped without WRITE) and end the process. If
    // the kernel wrongly allowed it, the byte written equals the one already there, so the code
    // is unchanged.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!(
            "mov {tmp:l}, byte ptr [{addr}]",
            "mov byte ptr [{addr}], {tmp:l}",
            addr = in(reg) address, tmp = out(reg) _, options(nostack),
        );
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!(
            "ldrb {tmp:w}, [{addr}]",
            "strb {tmp:w}, [{addr}]",
            addr = in(reg) address, tmp = out(reg) _, options(nostack),
        );
    }
}

/// Executes the architecture's undefined instruction.
fn undefined_instruction() {
    // SAFETY: `ud2` / `udf #0` only raise an exception; they touch no memory.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("ud2", options(nomem, nostack));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("udf #0", options(nomem, nostack));
    }
}

/// The pattern word `word` of page `page` of the pager window.
fn pattern(page: u64, word: u64) -> u64 {
    0xA5A5_0000_0000_0000 ^ (page << 32) ^ (word * 0x0101)
}

/// Words of each page the pager client writes and checks (spread over the page).
const PATTERN_WORDS: u64 = 8;

/// `PAGER_CLIENT`: writes then checks a pattern in every page of the window; each first touch
/// faults to the pager.
fn pager_client(role: u16) -> i64 {
    let word_address = |page: u64, word: u64| {
        roles::PAGER_WINDOW_VA + page * rt::process::PAGE_SIZE + word * (rt::process::PAGE_SIZE / 8)
    };
    for page in 0..roles::PAGER_WINDOW_PAGES {
        for word in 0..PATTERN_WORDS {
            let ptr =
                core::ptr::with_exposed_provenance_mut::<u64>(word_address(page, word) as usize);
            // SAFETY: the window is reserved for this test: nothing in this program lives there,
            // and the pager maps each page read-write on its first touch (the access faults until
            // then and is re-executed after the pager's reply). The address is 8-byte aligned.
            unsafe { ptr.write_volatile(pattern(page, word)) };
        }
    }
    let mut bad = 0u64;
    for page in 0..roles::PAGER_WINDOW_PAGES {
        for word in 0..PATTERN_WORDS {
            let ptr = core::ptr::with_exposed_provenance::<u64>(word_address(page, word) as usize);
            // SAFETY: as above; every page is mapped by now (written in the loop above).
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

/// `YIELD_PARTNER`: yields `count` times, or forever when `count` is 0 (the spawner kills it).
fn yield_partner(count: u64) -> i64 {
    if count == 0 {
        loop {
            let _ = yield_now();
        }
    }
    for _ in 0..count {
        let _ = yield_now();
    }
    0
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

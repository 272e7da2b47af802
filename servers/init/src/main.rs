//! `init`: the first user program.
//!
//! Owns what happens at the start of user space: it checks the info page the kernel mapped
//! ([`abi::init::InitInfo`]), finds the initrd, and, as the kernel command line asks, runs the
//! user tests (`test=all` or `test=a,b,c`; see [`tests`]) and the benchmarks (`bench`; see
//! [`bench`](mod@bench)). It then exits with 0, after which the kernel prints its closing `[done]` line.
//!
//! It must never report a test twice or not at all (each selected test reports exactly one result
//! through `TestReport`, whatever happens inside it), never depend on test order for
//! correctness (every test creates and deletes its own objects), and never allocate (there is no
//! allocator: text is built in fixed buffers).
#![no_std]
#![no_main]
// Failure reasons are fixed 200-byte buffers (`tests::Reason`): without an allocator there is no
// way to box them, and they only travel on the failure path, where a larger return value costs
// nothing that matters.
#![allow(clippy::result_large_err)]

mod bench;
mod child;
mod cmdline;
mod tests;
mod va;

use abi::init::{INIT_INFO_VA, INIT_MAGIC, INITRD_VA, InitInfo};
use rt::println;

rt::entry!(main);

/// What every test and benchmark needs from init's start-up state.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    /// Init's own address space (`MAP`, `CONTROL`, `GRANT`).
    pub own_space: abi::CapHandle,
    /// The initrd (a cpio archive), mapped read-only for init's whole life.
    pub initrd: &'static [u8],
    /// Guest time counts instructions (`clock=icount`): tests may assert timing bounds. Without
    /// it they check correctness only.
    #[allow(dead_code)] // Read by the timing checks of the tests.
    pub exact_clock: bool,
}

/// Exit code when the info page is not what this version of init understands.
const EXIT_BAD_INFO: i64 = 1;
/// Exit code when a benchmark failed (its reason is on the console).
const EXIT_BENCH_FAILED: i64 = 2;
/// Exit code when the kernel accepted a second report of a test (see `tests::run_selected`).
const EXIT_REPORTS_NOT_ENFORCED: i64 = 3;

fn main(info_va: u64) -> i64 {
    if info_va != INIT_INFO_VA {
        println!(
            "init: started with argument {info_va:#x}, expected the info page at {INIT_INFO_VA:#x}"
        );
        return EXIT_BAD_INFO;
    }
    // SAFETY: the kernel maps the info page read-only at INIT_INFO_VA for init's whole life
    // (abi::init) and starts init with its address in a0 (checked above); InitInfo is repr(C)
    // plain data for which every bit pattern is valid, and the page is 4 KiB-aligned.
    let info: &'static InitInfo = unsafe { &*(INIT_INFO_VA as *const InitInfo) };
    if info.magic != INIT_MAGIC {
        println!(
            "init: info page magic is {:#x}, expected {INIT_MAGIC:#x}",
            info.magic
        );
        return EXIT_BAD_INFO;
    }
    let Ok(initrd_len) = usize::try_from(info.initrd_len) else {
        println!("init: initrd length {:#x} does not fit", info.initrd_len);
        return EXIT_BAD_INFO;
    };
    // SAFETY: the kernel maps the whole initrd, `initrd_len` bytes, read-only at INITRD_VA for
    // init's whole life (abi::init); nothing ever writes it.
    let initrd: &'static [u8] =
        unsafe { core::slice::from_raw_parts(INITRD_VA as *const u8, initrd_len) };
    let cmdline = cmdline::Cmdline::new(info.cmdline());
    println!(
        "init: started, initrd {} bytes, cmdline \"{}\"",
        initrd.len(),
        cmdline.as_str()
    );
    let env = Env {
        own_space: info.own_space,
        initrd,
        exact_clock: cmdline.exact_clock(),
    };
    if cmdline.has_tests() && !tests::run_selected(&env, &cmdline) {
        return EXIT_REPORTS_NOT_ENFORCED;
    }
    if cmdline.bench() && bench::run_all(&env) > 0 {
        return EXIT_BENCH_FAILED;
    }
    0
}

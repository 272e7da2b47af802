//! Program entry and exit: `_start`, [`entry!`](crate::entry!), and the panic handler.
//!
//! Owns the first instructions a user thread runs (`_start`, which the kernel or a spawner
//! starts with slot `a0` = the start-up argument and the stack pointer at the top of a fresh
//! stack), the hand-off to the program's `main`, and the way a program ends: `ThreadExit` with
//! `main`'s return value, or with [`PANIC_EXIT_CODE`] after a panic.
//!
//! It must never return into nothing: `_start` has no caller, so after `main` the thread always
//! ends with `ThreadExit`, and the instruction after the call is a trap. It must never assume
//! more about the initial stack than the ABI gives (it re-aligns the stack itself).

use core::panic::PanicInfo;

/// The exit code of a thread that panicked (as Rust's test harness uses).
pub const PANIC_EXIT_CODE: i64 = 101;

// The kernel (for init) and `rt::process::spawn` (for every other program) start the first thread
// here with slot a0 = the start-up argument, which is also the first C argument register on both
// architectures (rdi, x0), and the stack pointer at a 16-byte-aligned stack top.
//
// x86_64: rbp = 0 ends the frame-pointer chain; `and rsp, -16` then `call` leaves rsp = 8 mod 16
// at rt_start's entry, as the System V ABI requires. AArch64: x29 = x30 = 0 end the frame chain
// and the link-register chain; sp must be 16-byte aligned at all times.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".section .text._start,\"ax\",@progbits",
    ".global _start",
    ".type _start,@function",
    "_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {rt_start}",
    "    ud2",
    ".size _start, . - _start",
    rt_start = sym rt_start,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".section .text._start,\"ax\",%progbits",
    ".global _start",
    ".type _start,%function",
    "_start:",
    "    mov x29, #0",
    "    mov x30, #0",
    "    mov x9, sp",
    "    and x9, x9, #~15",
    "    mov sp, x9",
    "    bl {rt_start}",
    "    udf #0",
    ".size _start, . - _start",
    rt_start = sym rt_start,
);

unsafe extern "C" {
    /// The program's main, defined by [`entry!`](crate::entry!).
    fn strait_main(arg: u64) -> i64;
}

unsafe extern "Rust" {
    /// The program's name (its Cargo binary name), defined by [`entry!`](crate::entry!).
    fn strait_program_name() -> &'static str;
}

/// Called by `_start` with the start-up argument: runs the program's `main` and ends the thread
/// with its return value.
extern "C" fn rt_start(arg: u64) -> ! {
    // SAFETY: `strait_main` is defined by the program's `rt::entry!` invocation with exactly this
    // signature (`extern "C" fn(u64) -> i64`); a program without it does not link.
    let code = unsafe { strait_main(arg) };
    crate::syscall::thread_exit(code)
}

/// The program's name, for messages (`"?"` is never returned: every program has one).
pub fn program_name() -> &'static str {
    // SAFETY: `strait_program_name` is defined by the program's `rt::entry!` invocation with
    // exactly this signature; it only returns a string literal.
    unsafe { strait_program_name() }
}

/// Declares the program's main function: `rt::entry!(main);` with `fn main(arg: u64) -> i64`.
///
/// `arg` is the start-up argument (slot `a0` of the first thread: the info-page address for init,
/// the spawner's argument for every other program); the return value becomes the exit code
/// (`ThreadExit`; a joiner sees its low 32 bits).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The entry point `rt_start` calls (defined by `rt::entry!`).
        #[unsafe(no_mangle)]
        pub extern "C" fn strait_main(arg: u64) -> i64 {
            let main: fn(u64) -> i64 = $main;
            main(arg)
        }

        /// The program's name for panic messages (defined by `rt::entry!`).
        #[unsafe(no_mangle)]
        pub extern "Rust" fn strait_program_name() -> &'static str {
            env!("CARGO_BIN_NAME")
        }
    };
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    match info.location() {
        Some(location) => crate::println!(
            "panic in {}: {} at {}:{}",
            program_name(),
            info.message(),
            location.file(),
            location.line()
        ),
        None => crate::println!("panic in {}: {}", program_name(), info.message()),
    }
    crate::syscall::thread_exit(PANIC_EXIT_CODE)
}

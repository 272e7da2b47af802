//! Init's address-space layout: one window of its own for each test and benchmark that maps
//! something into init (a thread's stack, a scratch page, a shared page).
//!
//! Owns the windows: window `i` starts at [`FIRST_WINDOW`] + `i` TiB, so two users can never
//! overlap as long as each stays inside its own terabyte, and the indices below are distinct by
//! construction (checked). Window 0 is the spawn scratch window of `rt::process`. A collision
//! would fail loudly (`Busy` from `Map`) but blame the wrong test. It must never hand out an
//! address outside user space or inside the program's own image.

/// Where window 0 starts: `rt::process`'s spawn scratch window.
const FIRST_WINDOW: u64 = rt::process::SCRATCH_VA;
/// The size of a window (1 TiB).
const WINDOW_BYTES: u64 = 1 << 40;

const fn window(index: u64) -> u64 {
    FIRST_WINDOW + index * WINDOW_BYTES
}

/// `bench`: the stack of the same-address-space server thread.
pub const BENCH_LOCAL_STACK: u64 = window(1);
/// `user_fault_kill`: the page a helper's fault plan is written to.
pub const FAULT_KILL_SCRATCH: u64 = window(2);
/// `ipc_kill`: the stacks of its local threads.
pub const IPC_KILL_STACKS: u64 = window(3);
/// `ipc_timeout`: the stack of its server thread.
pub const IPC_TIMEOUT_STACK: u64 = window(4);
/// `ipc_pingpong`: the stack of its short-message thread.
pub const PINGPONG_STACK: u64 = window(5);
/// `thread_exit_codes`: the stacks of its local threads.
pub const EXIT_CODES_STACKS: u64 = window(6);
/// `user_fault_pager`: the scratch page its pager fills.
pub const FAULT_PAGER_SCRATCH: u64 = window(7);
/// `ipc_cap_return`: the stacks of its local threads.
pub const CAP_RETURN_STACKS: u64 = window(8);
/// `bench` (`yield_switch`): the partner's turn counter, mapped read-only.
pub const BENCH_TURNS: u64 = window(9);
/// `ipc_many_clients`: the stacks of its local threads.
pub const MANY_CLIENTS_STACKS: u64 = window(10);
/// `usercopy_demand_fault`: the scratch page its pager fills.
pub const USERCOPY_SCRATCH: u64 = window(11);
/// `space_kill_all`: the stack of its caller thread.
pub const SPACE_KILL_STACK: u64 = window(12);

const _: () = {
    assert!(window(0) == rt::process::SCRATCH_VA);
    assert!(rt::process::SCRATCH_BYTES <= WINDOW_BYTES);
    // The last window ends below the spawn stack top, the highest thing init maps.
    assert!(window(13) <= rt::process::STACK_TOP);
};

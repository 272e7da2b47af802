//! Kernel threads on this CPU: creation, the scheduler glue, the timer tick, sleeping, joining.
//!
//! Owns the order of operations around a context switch and the scheduling fields of each
//! thread's control block (`crate::tcb`: saved stack pointer, kernel stack, priority, body). Policy lives in
//! kernel-core (`thread::ThreadTable` decides who may move between states, `sched::CpuScheduler`
//! who runs next); this module only does what they decide, with interrupts masked.
//!
//! Rules that keep it deadlock-free:
//! - `SCHED`, `TIMERS` and `DEAD_STACKS` are only ever locked with interrupts masked, so the tick
//!   (which runs with them masked) can never find one held by the code it interrupted.
//! - Nothing in the tick or the switch path allocates, logs through a lock that code with
//!   interrupts enabled may hold, or touches the frame allocator: stacks of reclaimed threads
//!   are parked in `DEAD_STACKS` and freed later in thread context ([`reap`]).
//! - The scheduling fields of a slot's control block are written only by its claimer while the
//!   slot is `Initializing`, and read by whoever reclaims it before the reclaiming call (after
//!   which a new claimer may overwrite them).
//! - It never imports the user-mode layer: what it needs from there ([`UserHooks`]) is
//!   registered at start-up.

use crate::ktrace::{self, KLock};
use crate::memory::FRAMES;
use crate::platform::{Machine, context};
use crate::tcb::{TCBS, ThreadBlock, tcb};
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel_core::hal::{KernelStack, Platform, UserMode};
use kernel_core::sched::{CpuScheduler, TimerQueue};
use kernel_core::thread::{JoinOutcome, MAX_THREADS, ThreadError, ThreadId, ThreadTable};
use kernel_core::trace::EventKind;
use kernel_core::watchdog::Watchdog;

/// Timer interrupts per second.
pub const TICK_HZ: u32 = 1000;
/// Priority of ordinary kernel threads (and of the boot thread).
pub const NORMAL_PRIORITY: u8 = 4;

/// The thread table: every thread's state and generation.
pub static THREADS: ThreadTable = ThreadTable::new();
/// This CPU's run queues and current thread. Locked with interrupts masked only.
static SCHED: KLock<CpuScheduler> = KLock::new_quiet("run queues", CpuScheduler::new());
/// Sleeping threads by deadline. Locked with interrupts masked only.
static TIMERS: KLock<TimerQueue> = KLock::new("timer queue", TimerQueue::new());
/// Stacks of reclaimed threads and process references of ended ones, waiting to be given back in
/// thread context.
/// Interrupts masked only.
static DEAD_STACKS: KLock<ArrayVec<(Option<KernelStack>, u64), MAX_THREADS>> =
    KLock::new("dead stacks", ArrayVec::new_const());
/// Kernel stacks of reclaimed threads, still mapped, for the next threads: creating a thread
/// then maps nothing and exiting one unmaps nothing (no page-table writes, no TLB flush). A
/// stack holds nothing of its previous thread that the next one can see: a user thread's
/// registers are built afresh on its first entry. Interrupts masked only.
static STACK_CACHE: KLock<ArrayVec<KernelStack, STACK_CACHE_SIZE>> =
    KLock::new("kernel stack cache", ArrayVec::new_const());
/// Most stacks the cache keeps (each is 4 frames).
const STACK_CACHE_SIZE: usize = 8;
/// Notices a CPU that stops scheduling while threads are ready.
pub static WATCHDOG: Watchdog<1> = Watchdog::new();

/// The process whose address space is active on this CPU (a `Process` pointer; 0: the kernel's).
static ACTIVE_PROCESS: AtomicU64 = AtomicU64::new(0);

/// What the scheduler needs from user mode. Registered once at start-up by `user::init`, so
/// that the scheduler never imports the layer above it.
#[derive(Debug)]
pub struct UserHooks {
    /// Activates the address space of a process (a `Process` pointer from `Arc::into_raw`) on
    /// this CPU. The switch path, interrupts masked: no lock, no allocation.
    pub activate_process: fn(u64),
    /// Gives back one strong count of a process pointer (thread context: the last count tears
    /// the address space down).
    pub release_process: fn(u64),
    /// Ends the current user thread as killed.
    pub exit_killed: fn() -> !,
    /// Called once per user thread just before its first user instruction.
    pub first_entry: fn(),
}

static USER_HOOKS: spin::Once<UserHooks> = spin::Once::new();

/// Registers what the scheduler calls into user mode for (once, before any user thread exists).
pub fn register_user_hooks(hooks: UserHooks) {
    USER_HOOKS.call_once(|| hooks);
}

/// The user-mode hooks. Only user threads need them, and none exists before they are registered.
#[inline(always)]
fn user_hooks() -> &'static UserHooks {
    USER_HOOKS
        .get()
        .expect("user threads exist only after user::init registered the hooks")
}

/// Raw ID of this CPU's idle thread.
static IDLE: AtomicU64 = AtomicU64::new(0);
/// Raw ID of the thread this CPU just switched away from, for `finish_switch`.
static LEFT: AtomicU64 = AtomicU64::new(0);
/// The process reference of the thread in `LEFT` if it ended (moved there by [`exit`] just
/// before its last switch; 0: none). An ended thread no longer needs its process, so the
/// reference goes back as soon as the thread is off its CPU, not when a join or detach frees the
/// slot: a thread nobody joins does not keep its address space alive.
static LEFT_PROCESS: AtomicU64 = AtomicU64::new(0);
/// Set once the scheduler runs; the tick does nothing before.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// While non-zero the tick does not preempt (test hook: the watchdog test stalls a CPU with it).
#[cfg(feature = "testing")]
pub static PREEMPT_OFF: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The preemption-off count the tick obeys (always 0 in a kernel built without tests).
fn preemption_off() -> u32 {
    #[cfg(feature = "testing")]
    return PREEMPT_OFF.load(Ordering::Relaxed);
    #[cfg(not(feature = "testing"))]
    0
}
/// Ticks taken since the timer started.
pub static TICKS: AtomicU64 = AtomicU64::new(0);
/// Optional per-tick hook (tests); 0 = none. Holds a `fn()` address.
#[cfg(feature = "testing")]
static TICK_HOOK: AtomicU64 = AtomicU64::new(0);
/// Watchdog reports printed so far (a statistic kept in every kernel; the tests read it).
pub static WATCHDOG_REPORTS: AtomicU64 = AtomicU64::new(0);

/// The running thread's raw ID (0 before threads exist).
pub fn current_raw() -> u64 {
    crate::percpu::current_raw()
}

/// The running thread.
pub fn current() -> ThreadId {
    ThreadId::from_u64(current_raw())
}

/// Runs `f` with interrupts masked on this CPU.
fn masked<R>(f: impl FnOnce() -> R) -> R {
    let enabled = Machine::disable_interrupts();
    let result = f();
    Machine::restore_interrupts(enabled);
    result
}

/// Claims a slot and gives it a stack and an initial frame that runs `thread_start`.
fn create(priority: u8, body: fn(u64) -> i64, arg: u64, queue: bool) -> Result<ThreadId, String> {
    create_with(priority, body, arg, queue, None)
}

/// [`create`], and for a user thread (`process` from `Arc::into_raw`, owned by the thread from
/// here on, also on failure) the user area reserved at the top of its stack.
fn create_with(
    priority: u8,
    body: fn(u64) -> i64,
    arg: u64,
    queue: bool,
    process: Option<u64>,
) -> Result<ThreadId, String> {
    reap();
    let give_back = |process: Option<u64>| {
        if let Some(process) = process {
            (user_hooks().release_process)(process);
        }
    };
    let claim = match THREADS.claim() {
        Ok(claim) => claim,
        Err(e) => {
            give_back(process);
            return Err(format!("claim: {e}"));
        }
    };
    let cached = masked(|| STACK_CACHE.lock().pop());
    let stack = match cached {
        Some(mut stack) => {
            Machine::reassign_kernel_stack(&mut stack, claim.id().as_u64());
            Ok(stack)
        }
        None => {
            let mut frames = FRAMES.lock_irqsave();
            match frames.as_mut() {
                Some(frames) => Machine::new_kernel_stack(frames, claim.id().as_u64()),
                None => Err(kernel_core::paging::MapError::OutOfFrames),
            }
        }
    };
    let stack = match stack {
        Ok(stack) => stack,
        Err(e) => {
            THREADS.abandon(claim);
            give_back(process);
            return Err(format!("kernel stack: {e}"));
        }
    };
    let slot = &TCBS[claim.index()];
    slot.set_stack(&stack);
    slot.priority.store(priority, Ordering::Relaxed);
    slot.body.store(body as usize as u64, Ordering::Relaxed);
    slot.arg.store(arg, Ordering::Relaxed);
    slot.joiner.store(0, Ordering::Relaxed);
    slot.kill_pending.store(false, Ordering::Relaxed);
    slot.process.store(process.unwrap_or(0), Ordering::Relaxed);
    slot.reset_operations();
    let mut kernel_part = stack;
    if process.is_some() {
        slot.user_top.store(stack.top, Ordering::Relaxed);
        kernel_part.top -= <Machine as UserMode>::USER_AREA_BYTES;
        // SAFETY: the slot is ours (`Initializing`): nobody else touches its FP area.
        Machine::init_fp(unsafe { slot.arch.area() });
    } else {
        slot.user_top.store(0, Ordering::Relaxed);
    }
    let sp = context::prepare_stack(&kernel_part, thread_start, claim.index() as u64);
    slot.saved_sp.store(sp, Ordering::Release);
    let id = THREADS.publish(claim);
    if queue {
        masked(|| {
            let preempt = SCHED.lock().enqueue(id, priority).unwrap_or(false);
            if preempt {
                schedule(true);
            }
        });
    }
    Ok(id)
}

use alloc::format;
use alloc::string::String;

/// Starts a kernel thread running `body(arg)` at `priority`; its return value is the exit code
/// `join` collects.
pub fn spawn(priority: u8, body: fn(u64) -> i64, arg: u64) -> Result<ThreadId, String> {
    create(priority, body, arg, true)
}

/// First code of every thread, on its own stack, with interrupts masked.
extern "C" fn thread_start(index: u64) -> ! {
    finish_switch();
    let slot = &TCBS[index as usize];
    let raw = slot.body.load(Ordering::Acquire) as usize;
    // SAFETY: `body` was stored by `create` from a `fn(u64) -> i64` (the same slot, published
    // before this thread could run), so the address is that function's.
    let body: fn(u64) -> i64 = unsafe { core::mem::transmute::<usize, fn(u64) -> i64>(raw) };
    let arg = slot.arg.load(Ordering::Relaxed);
    Machine::restore_interrupts(true);
    exit(body(arg))
}

/// Ends the current thread with `code`.
pub fn exit(code: i64) -> ! {
    Machine::disable_interrupts();
    let me = current();
    THREADS
        .terminate(me, code)
        .expect("the running thread terminates itself");
    let joiner = tcb(me).joiner.load(Ordering::Acquire);
    if joiner != 0 {
        wake(ThreadId::from_u64(joiner));
    }
    LEFT_PROCESS.store(
        tcb(me).process.swap(0, Ordering::Relaxed),
        Ordering::Relaxed,
    );
    schedule(false);
    unreachable!("a terminated thread was switched back to");
}

/// Waits for `id` to end and returns its exit code.
pub fn join(id: ThreadId) -> Result<i64, ThreadError> {
    let me = current();
    if id == me {
        // Waiting for oneself would block forever.
        return Err(ThreadError::WrongState {
            found: kernel_core::thread::ThreadState::Running,
        });
    }
    loop {
        let enabled = Machine::disable_interrupts();
        // Registered before looking, so an exit that races with us always sees it.
        tcb(id).joiner.store(me.as_u64(), Ordering::Release);
        let stack = tcb(id).stack();
        let outcome = THREADS.join(id);
        match outcome {
            Ok(JoinOutcome::Exited { code, reclaimed }) => {
                Machine::restore_interrupts(enabled);
                if reclaimed {
                    free_stack(stack);
                }
                return Ok(code);
            }
            Ok(JoinOutcome::Running) => {
                if THREADS.block(me) == Ok(true) {
                    schedule(false);
                }
                Machine::restore_interrupts(enabled);
            }
            Err(e) => {
                Machine::restore_interrupts(enabled);
                return Err(e);
            }
        }
    }
}

/// Makes `id` ready if it was blocked, queueing it; returns whether the CPU should reschedule.
fn wake(id: ThreadId) -> bool {
    if THREADS.wake(id) != Ok(true) {
        return false;
    }
    ktrace::record(EventKind::Wake, id.as_u64(), current_raw());
    let priority = tcb(id).priority.load(Ordering::Relaxed);
    SCHED.lock().enqueue(id, priority).unwrap_or(false)
}

/// Sleeps for at least `ns` nanoseconds.
#[cfg(feature = "testing")]
pub fn sleep_ns(ns: u64) {
    let me = current();
    let deadline = Machine::now_ns().saturating_add(ns);
    masked(|| {
        ktrace::record(EventKind::Sleep, me.as_u64(), ns);
        while Machine::now_ns() < deadline {
            let _ = TIMERS.lock().insert(me, deadline);
            if THREADS.block(me) == Ok(true) {
                schedule(false);
            }
        }
        TIMERS.lock().cancel(me);
    });
}

/// Switches to the next thread. Interrupts must be masked. `still_runnable`: the current thread
/// goes back to its queue (preempted, yielded); otherwise it has blocked or terminated.
fn schedule(still_runnable: bool) {
    let prev = current();
    let idle = ThreadId::from_u64(IDLE.load(Ordering::Relaxed));
    let next = {
        let mut sched = SCHED.lock();
        match sched.switch_out(still_runnable && prev != idle) {
            Some((id, _)) => id,
            None => idle,
        }
    };
    WATCHDOG.progress(Machine::cpu_id());
    if next == prev {
        return;
    }
    if still_runnable || prev == idle {
        let _ = THREADS.preempt(prev);
    }
    THREADS
        .start_running(next)
        .expect("the scheduler picked a ready thread");
    switch_to_running(prev, next);
}

/// Saves the user state `prev` leaves in the CPU (FP/SIMD) and loads `next`'s: its FP/SIMD
/// registers, the kernel stack its next entry from user mode lands on, and its address space.
/// A kernel thread runs on the kernel's own address space, so no dying process's tables stay
/// active behind it. Interrupts masked.
fn switch_user_state(prev: &ThreadBlock, next: &ThreadBlock) {
    if prev.user_top.load(Ordering::Relaxed) != 0 {
        // SAFETY: only the switches of a thread touch its FP area, with interrupts masked, and
        // this is `prev`'s.
        Machine::save_fp(unsafe { prev.arch.area() });
    }
    let next_top = next.user_top.load(Ordering::Relaxed);
    let next_process = next.process.load(Ordering::Relaxed);
    if next_top != 0 {
        // SAFETY: as above, for the thread about to run.
        Machine::restore_fp(unsafe { next.arch.area() });
        Machine::set_user_entry_stack(next_top);
    }
    if ACTIVE_PROCESS.load(Ordering::Relaxed) != next_process {
        ACTIVE_PROCESS.store(next_process, Ordering::Relaxed);
        if next_process == 0 {
            Machine::activate_kernel_space();
        } else {
            (user_hooks().activate_process)(next_process);
        }
    }
}

/// Runs on the new thread right after every switch: tells the table the previous thread left
/// its CPU, and parks its stack if that reclaimed it.
#[inline(always)]
fn finish_switch() {
    let left = LEFT.swap(0, Ordering::Relaxed);
    if left == 0 {
        return;
    }
    let left = ThreadId::from_u64(left);
    // Read before `left_cpu`: once that reclaims the slot, a new thread may take it.
    let stack = tcb(left).stack();
    let process = LEFT_PROCESS.load(Ordering::Relaxed);
    if process != 0 {
        LEFT_PROCESS.store(0, Ordering::Relaxed);
    }
    let reclaimed = THREADS.left_cpu(left) == Ok(true);
    if reclaimed || process != 0 {
        park(reclaimed.then_some(stack), process);
    }
}

/// Parks the stack of a reclaimed thread and the process reference of an ended one for [`reap`]
/// (out of line: rare).
#[inline(never)]
fn park(stack: Option<KernelStack>, process: u64) {
    let _ = DEAD_STACKS.lock().try_push((stack, process));
}

/// Keeps the stack of a reclaimed thread mapped for the next thread, or frees it when the cache
/// is full. Thread context (nothing runs on `stack` any more).
fn free_stack(stack: KernelStack) {
    if let Err(full) = masked(|| STACK_CACHE.lock().try_push(stack)) {
        unmap_stack(full.element());
    }
}

fn unmap_stack(stack: KernelStack) {
    let mut frames = FRAMES.lock_irqsave();
    if let Some(frames) = frames.as_mut() {
        Machine::free_kernel_stack(stack, frames);
    }
}

/// Unmaps every cached kernel stack and gives its frames back (before the resource census, so
/// that it counts what threads hold, not what the cache keeps for later). Thread context.
pub fn trim_stack_cache() {
    let cached = masked(|| core::mem::take(&mut *STACK_CACHE.lock()));
    for stack in cached {
        unmap_stack(stack);
    }
}

/// Frees the stacks of reclaimed threads. Thread context only (takes the frame allocator).
pub fn reap() {
    let dead = masked(|| core::mem::take(&mut *DEAD_STACKS.lock()));
    for (stack, process) in dead {
        if let Some(stack) = stack {
            free_stack(stack);
        }
        if process != 0 {
            (user_hooks().release_process)(process);
        }
    }
}

/// Installs (or clears, with `None`) a function the tick calls in interrupt context (tests).
#[cfg(feature = "testing")]
pub fn set_tick_hook(hook: Option<fn()>) {
    TICK_HOOK.store(hook.map_or(0, |f| f as usize as u64), Ordering::Release);
}

/// The timer interrupt: wakes sleepers, charges the slice, checks the watchdog, preempts.
fn on_tick() {
    let ticks = TICKS.fetch_add(1, Ordering::Relaxed);
    ktrace::record(EventKind::Irq, 0, ticks);
    if !RUNNING.load(Ordering::Acquire) {
        return;
    }
    let now = Machine::now_ns();
    let mut reschedule = false;
    loop {
        let expired = TIMERS.lock().pop_expired(now);
        let Some(id) = expired else { break };
        reschedule |= wake(id);
    }
    let (preempt, ready) = {
        let mut sched = SCHED.lock();
        (sched.tick(), !sched.queue().is_empty())
    };
    #[cfg(feature = "testing")]
    {
        let hook = TICK_HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: only `set_tick_hook` stores here, from a `fn()`.
            let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook as usize) };
            hook();
        }
    }
    if let Some(stall) = WATCHDOG.check(Machine::cpu_id(), now, ready) {
        report_stall(stall, now);
    }
    if (preempt || reschedule) && preemption_off() == 0 {
        schedule(true);
    }
    // User threads only take interrupts in user mode (system calls run masked), so a killed
    // user thread that was preempted ends here, before it returns to user mode.
    if kill_requested() && tcb(current()).user_top.load(Ordering::Relaxed) != 0 {
        (user_hooks().exit_killed)();
    }
}

/// The exit code of a killed thread (never a user exit code, which is 32 bits).
pub const KILLED_EXIT_CODE: i64 = i64::MIN;

/// Whether someone killed the running thread.
pub fn kill_requested() -> bool {
    tcb(current()).kill_pending.load(Ordering::Acquire)
}

/// Marks `id` killed and wakes it if it was blocked; it ends itself when it next runs in the
/// kernel (a user thread not started yet is started for that). Interrupts masked.
pub fn request_kill(id: ThreadId) {
    tcb(id).kill_pending.store(true, Ordering::Release);
    if wake(id) && current() != id {
        schedule(true);
    }
}

/// Wakes `id` if it is blocked (an IPC partner, a joiner, a notification waiter) and switches
/// to it at once if it should preempt the current thread. Interrupts masked.
pub fn wake_thread(id: ThreadId) {
    if wake(id) {
        schedule(true);
    }
}

/// Blocks the current thread until [`wake_thread`] or, with a `deadline`, until then. Returns
/// whether the deadline passed. A wake that came before the block is not lost (the slot's
/// wake-pending bit). Interrupts masked.
pub fn block_current(deadline: Option<u64>) -> bool {
    let me = current();
    if let Some(deadline) = deadline {
        if Machine::now_ns() >= deadline {
            return true;
        }
        let _ = TIMERS.lock().insert(me, deadline);
    }
    if THREADS.block(me) == Ok(true) {
        schedule(false);
    }
    let expired = deadline.is_some_and(|d| Machine::now_ns() >= d);
    if deadline.is_some() {
        TIMERS.lock().cancel(me);
    }
    expired
}

/// The IPC fast path: blocks the current thread and runs `next` (blocked until now, its reply or
/// message already written into its registers) straight away, without the run queue, on what is
/// left of the current time slice. Falls back to an ordinary wake and block if `next` is not
/// blocked or a ready thread has a higher priority. With a `deadline` the current thread is
/// woken then at the latest (the caller finds out whether its operation completed). Interrupts
/// masked.
pub fn block_and_switch_to(next: ThreadId, deadline: Option<u64>) {
    let me = current();
    if let Some(deadline) = deadline {
        let _ = TIMERS.lock().insert(me, deadline);
    }
    hand_off_to(me, next);
    if deadline.is_some() {
        TIMERS.lock().cancel(me);
    }
}

/// [`block_and_switch_to`] without the timer.
fn hand_off_to(me: ThreadId, next: ThreadId) {
    /// What the run-queue lock decided.
    enum Decision {
        /// `next` was made current: switch straight to it.
        Direct,
        /// `me` blocked but `next` was not blocked: run whoever is next (`next` if ready).
        Schedule,
        /// A ready thread outranks `next`, or a wake was pending for `me`.
        WakeAndBlock,
    }
    let prio = tcb(next).priority.load(Ordering::Relaxed);
    // The guard goes out of scope at the end of the block (a `drop` would move it: a copy of the
    // guard on the hot path).
    let decision = {
        let mut sched = SCHED.lock();
        let direct = sched.queue().highest_priority().is_none_or(|p| p <= prio);
        if !direct || THREADS.block(me) != Ok(true) {
            Decision::WakeAndBlock
        } else if THREADS.wake_to_running(next) == Ok(true) {
            sched.hand_off(next, prio);
            Decision::Direct
        } else {
            // Not blocked (a timer already woke it): record the wake as `wake` would, queueing
            // it if it did block in between after all (another CPU), so it is never lost.
            if THREADS.wake(next) == Ok(true) {
                let _ = sched.enqueue(next, prio);
            }
            Decision::Schedule
        }
    };
    match decision {
        Decision::Direct => {
            WATCHDOG.progress(Machine::cpu_id());
            switch_to_running(me, next);
        }
        Decision::Schedule => schedule(false),
        Decision::WakeAndBlock => {
            let _ = wake(next);
            if THREADS.block(me) == Ok(true) {
                schedule(false);
            }
        }
    }
}

/// The one context switch (of `schedule` and of the IPC hand-off): from `prev` (preempted,
/// blocked or ended) to `next`, which the scheduler already made current and the thread table
/// `Running`. Interrupts masked.
#[inline(always)]
fn switch_to_running(prev: ThreadId, next: ThreadId) {
    crate::percpu::set_current(next.as_u64());
    LEFT.store(prev.as_u64(), Ordering::Relaxed);
    ktrace::record(EventKind::Switch, prev.as_u64(), next.as_u64());
    switch_user_state(tcb(prev), tcb(next));
    let save = tcb(prev).saved_sp.as_ptr();
    let next_sp = tcb(next).saved_sp.load(Ordering::Acquire);
    // SAFETY: interrupts are masked; `next_sp` is `next`'s last saved (or prepared) context, not
    // run since (it was queued once, or blocked and handed the CPU once), on a stack mapped until
    // `left_cpu` reclaims it; `save` is `prev`'s word.
    unsafe { context::switch_context(save, next_sp) };
    finish_switch();
}

/// Gives the rest of the slice to the next ready thread of the same or higher priority.
/// Interrupts masked.
pub fn yield_now() {
    schedule(true);
}

/// Creates a user thread of `process` (a pointer from `Arc::into_raw` whose strong count the
/// thread now owns) that enters user mode at `entry` with stack `sp` and `a0` = `arg`. It does
/// not run until [`start`](start_thread)ed.
pub fn create_user_thread(
    process: u64,
    priority: u8,
    entry: u64,
    sp: u64,
    arg: u64,
) -> Result<ThreadId, String> {
    let id = create_with(priority, user_thread_body, 0, false, Some(process))?;
    let slot = tcb(id);
    slot.user_entry.store(entry, Ordering::Relaxed);
    slot.user_arg.store(arg, Ordering::Relaxed);
    slot.user_sp.store(sp, Ordering::Release);
    Ok(id)
}

/// Queues a thread made by [`create_user_thread`]. Interrupts masked.
pub fn start_thread(id: ThreadId) {
    let priority = tcb(id).priority.load(Ordering::Relaxed);
    if SCHED.lock().enqueue(id, priority).unwrap_or(false) {
        schedule(true);
    }
}

/// First code of a user thread (the `body` `thread_start` calls): enters user mode.
fn user_thread_body(_: u64) -> i64 {
    Machine::disable_interrupts();
    let slot = tcb(current());
    if slot.kill_pending.load(Ordering::Acquire) {
        (user_hooks().exit_killed)();
    }
    let entry = slot.user_entry.load(Ordering::Relaxed);
    let arg = slot.user_arg.load(Ordering::Relaxed);
    let sp = slot.user_sp.load(Ordering::Acquire);
    let top = slot.user_top.load(Ordering::Relaxed);
    (user_hooks().first_entry)();
    Machine::enter_user(top, entry, sp, arg)
}

/// The user-stack top of `id` (0 for a kernel thread).
pub fn user_top_of(id: ThreadId) -> u64 {
    tcb(id).user_top.load(Ordering::Relaxed)
}

/// The process of `id` (a `Process` pointer, 0 for a kernel thread).
pub fn process_of(id: ThreadId) -> u64 {
    tcb(id).process.load(Ordering::Relaxed)
}

/// Registers `me` as the one thread waiting for `id` to end; false if another already waits.
pub fn set_joiner(id: ThreadId, me: ThreadId) -> bool {
    match tcb(id)
        .joiner
        .compare_exchange(0, me.as_u64(), Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => true,
        Err(current) => current == me.as_u64(),
    }
}

/// Withdraws `me` as `id`'s joiner (a timed-out join).
pub fn clear_joiner(id: ThreadId, me: ThreadId) {
    let _ = tcb(id)
        .joiner
        .compare_exchange(me.as_u64(), 0, Ordering::AcqRel, Ordering::Acquire);
}

/// Whether `me` is the registered joiner of a thread that has not ended: it waits in a join (or
/// is about to). For the `ThreadState` system call; O(MAX_THREADS) loads, no lock. A joiner stays
/// registered after its join collected the code, so only threads still alive count.
pub fn is_joining(me: ThreadId) -> bool {
    TCBS.iter().enumerate().any(|(index, slot)| {
        slot.joiner.load(Ordering::Acquire) == me.as_u64()
            && THREADS.slot_info(index).is_some_and(|info| {
                use kernel_core::thread::ThreadState::{Blocked, Ready, Running};
                matches!(info.state, Ready | Running | Blocked)
            })
    })
}

/// Frees the stack of a slot a user join reclaimed (read before the join). Its process
/// reference went back when the thread ended.
pub fn free_joined_stack(stack: KernelStack) {
    free_stack(stack);
}

/// Nobody will join user thread `id`: its slot (stack, process reference) is reclaimed now if it
/// has ended, or as soon as it ends.
pub fn detach_user_thread(id: ThreadId) {
    let stack = tcb(id).stack();
    let enabled = Machine::disable_interrupts();
    let reclaimed = THREADS.detach(id);
    Machine::restore_interrupts(enabled);
    if reclaimed == Ok(true) {
        free_stack(stack);
    }
}

/// The kernel stack of `id` as recorded in its slot.
pub fn stack_of(id: ThreadId) -> KernelStack {
    tcb(id).stack()
}

/// Prints the watchdog's report: per-CPU state, the thread table, the last trace events.
fn report_stall(stall: kernel_core::watchdog::Stall, now: u64) {
    use core::fmt::Write;
    let mut out = ktrace::RawConsole;
    let _ = writeln!(out, "{stall}");
    let _ = WATCHDOG.dump(
        &mut out,
        now,
        |cpu, out| {
            let current = ThreadId::from_u64(current_raw());
            write!(
                out,
                "cpu{cpu} runs thread {current}, preemption off: {}",
                preemption_off()
            )
        },
        |out| {
            for index in 0..MAX_THREADS {
                let Some(info) = THREADS.slot_info(index) else {
                    continue;
                };
                if info.state != kernel_core::thread::ThreadState::Free {
                    writeln!(
                        out,
                        "[watchdog] thread {index}.{}: {:?}",
                        info.generation, info.state
                    )?;
                }
            }
            Ok(())
        },
        |out| ktrace::TRACE.dump(out),
    );
    WATCHDOG_REPORTS.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn idle_main(_: u64) -> ! {
    loop {
        Machine::disable_interrupts();
        if SCHED.lock().queue().is_empty() {
            Machine::wait_for_interrupt();
        } else {
            schedule(false);
        }
    }
}

fn idle_body(_: u64) -> i64 {
    idle_main(0)
}

/// Starts the timer (the `timer` stage) and proves that ticks arrive.
pub fn start_timer() -> Result<kernel_core::hal::TimerReport, String> {
    let report = {
        let mut frames = FRAMES.lock_irqsave();
        let frames = frames.as_mut().ok_or("no frame allocator")?;
        Machine::init_timer(frames, TICK_HZ, on_tick)?
    };
    let start = TICKS.load(Ordering::Relaxed);
    let begun = Machine::now_ns();
    masked(|| {
        while TICKS.load(Ordering::Relaxed) < start + 3 {
            Machine::wait_for_interrupt();
        }
    });
    let elapsed = Machine::now_ns() - begun;
    if elapsed == 0 {
        return Err("the monotonic clock does not advance".into());
    }
    Machine::restore_interrupts(true);
    Ok(report)
}

/// Makes the running boot code a thread, creates the idle thread and starts scheduling (the
/// `sched` stage), then proves it by running and joining one thread.
pub fn start(boot_stack: KernelStack) -> Result<(), String> {
    let claim = THREADS.claim().map_err(|e| format!("claim: {e}"))?;
    let slot = &TCBS[claim.index()];
    slot.set_stack(&boot_stack);
    slot.priority.store(NORMAL_PRIORITY, Ordering::Relaxed);
    let boot = THREADS.publish(claim);
    THREADS
        .start_running(boot)
        .map_err(|e| format!("boot thread: {e}"))?;
    let idle = create(0, idle_body, 0, false)?;
    masked(|| -> Result<(), String> {
        SCHED
            .lock()
            .adopt(boot, NORMAL_PRIORITY)
            .map_err(|e| format!("adopt: {e:?}"))?;
        IDLE.store(idle.as_u64(), Ordering::Relaxed);
        crate::percpu::set_current(boot.as_u64());
        RUNNING.store(true, Ordering::Release);
        Ok(())
    })?;
    let probe = spawn(NORMAL_PRIORITY, |x| x as i64 * 2, 21)?;
    match join(probe) {
        Ok(42) => Ok(()),
        other => Err(format!(
            "a probe thread ended with {other:?}, expected Ok(42)"
        )),
    }
}

//! The thread control block: everything the kernel keeps about one thread slot, in one place.
//!
//! Owns the per-slot record a reader looks for first: how the thread is scheduled (saved stack
//! pointer, kernel stack, priority, body), how it ends (joiner, pending kill), what it runs in
//! user mode (process, entry registers, the top of its kernel stack where its user registers are
//! saved), where its blocking operations stand (completion, fault call, the notification it
//! waits on, the capability its queued message carries), its last fault and the architecture's
//! own part (`X`: the FP/SIMD save area). Two things live elsewhere on purpose and are named by
//! the same slot index: the slot's state word (with the exit code) ([`super::ThreadTable`], the lock-free state
//! machine that decides who may touch this record) and the thread's place in endpoint queues
//! ([`crate::ipc::Endpoints`], the host-tested IPC model).
//!
//! Every field is an atomic so that the record can live in a `static` and be read without a
//! lock where the protocol allows it; each field's documentation says who writes it and under
//! what. It must never decide anything: the scheduler, the IPC glue and the thread table do.

use crate::cap::NotificationId;
use crate::hal::KernelStack;
use abi::CapHandle;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// "No value" for the optional words.
const NONE: u64 = u64::MAX;

/// One thread slot's record. `X` is the architecture's part (the FP/SIMD area).
#[derive(Debug)]
pub struct Tcb<X> {
    // ---- scheduling: written by the slot's claimer while it is `Initializing` ----------------
    /// The saved kernel stack pointer while the thread is switched out (written by the switch
    /// away from it, read by the switch to it).
    pub saved_sp: AtomicU64,
    /// The kernel stack: top, bottom, guard page, owner.
    stack: [AtomicU64; 4],
    /// Scheduling priority.
    pub priority: AtomicU8,
    /// A kernel thread's body (`fn(u64) -> i64`) and its argument.
    pub body: AtomicU64,
    /// The argument of `body`.
    pub arg: AtomicU64,
    /// Raw ID of the thread waiting in `join` for this one (0: none); compare-exchanged.
    pub joiner: AtomicU64,
    /// Someone killed this thread: it ends itself the next time it runs in the kernel.
    pub kill_pending: AtomicBool,

    // ---- user mode: written by the claimer (the thread is not runnable yet) ------------------
    /// Top of the kernel stack of a user thread, whose saved user registers and FP area lie
    /// below it (0: a kernel thread).
    pub user_top: AtomicU64,
    /// A user thread's process: a pointer from `Arc::into_raw`, one strong count owned by the
    /// thread, given back once the thread has ended and left its CPU (0: none, or ended).
    pub process: AtomicU64,
    /// A user thread's entry point, for its first entry into user mode.
    pub user_entry: AtomicU64,
    /// A user thread's initial stack pointer.
    pub user_sp: AtomicU64,
    /// A user thread's first argument register.
    pub user_arg: AtomicU64,

    // ---- blocking operations ----------------------------------------------------------------
    /// Its blocking operation was completed by another thread, which wrote the results into its
    /// registers first (lock-free: read by the woken thread right after a hand-off).
    pub completed: AtomicBool,
    /// The user thread was started (`ThreadStart`, or by the kernel). Under the object lock.
    started: AtomicBool,
    /// It is in a fault call to its pager (the reply's label, not its registers, carries the
    /// answer). Under the object lock.
    in_fault: AtomicBool,
    /// The label of the pager's reply to its fault. Under the object lock.
    fault_reply: AtomicU64,
    /// The notification it waits on. Under the object lock.
    waiting_on: AtomicU64,
    /// The handle of the capability its queued message carries (lent). Under the object lock.
    lent: AtomicU64,

    // ---- its last fault ----------------------------------------------------------------------
    /// Words 0..3 of its last fault message (`abi::fault`). Written only by the thread itself,
    /// on its own fault, before it takes the object lock to call its pager.
    pub fault_words: [AtomicU64; 4],
    /// Raw ID of the thread `fault_words` killed (0: none). Set by the thread itself just before
    /// it ends, so a record of an earlier occupant of the slot never passes for a new one's.
    pub fatal_to: AtomicU64,

    /// The architecture's part.
    pub arch: X,
}

impl<X> Tcb<X> {
    /// An empty record around the architecture's part `arch`.
    pub const fn new(arch: X) -> Self {
        Self {
            saved_sp: AtomicU64::new(0),
            stack: [const { AtomicU64::new(0) }; 4],
            priority: AtomicU8::new(0),
            body: AtomicU64::new(0),
            arg: AtomicU64::new(0),
            joiner: AtomicU64::new(0),
            kill_pending: AtomicBool::new(false),
            user_top: AtomicU64::new(0),
            process: AtomicU64::new(0),
            user_entry: AtomicU64::new(0),
            user_sp: AtomicU64::new(0),
            user_arg: AtomicU64::new(0),
            completed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            in_fault: AtomicBool::new(false),
            fault_reply: AtomicU64::new(NONE),
            waiting_on: AtomicU64::new(NONE),
            lent: AtomicU64::new(CapHandle::NULL.into_raw()),
            fault_words: [const { AtomicU64::new(0) }; 4],
            fatal_to: AtomicU64::new(0),
            arch,
        }
    }

    /// The kernel stack recorded for the slot.
    pub fn stack(&self) -> KernelStack {
        let [top, bottom, guard, owner] = self.stack.each_ref().map(|c| c.load(Ordering::Relaxed));
        KernelStack {
            top,
            bottom,
            guard,
            owner,
        }
    }

    /// Records the slot's kernel stack (its claimer, before publishing the slot).
    pub fn set_stack(&self, stack: &KernelStack) {
        for (cell, value) in
            self.stack
                .iter()
                .zip([stack.top, stack.bottom, stack.guard, stack.owner])
        {
            cell.store(value, Ordering::Relaxed);
        }
    }

    /// Resets the blocking-operation fields for a new user thread in this slot.
    pub fn reset_operations(&self) {
        self.completed.store(false, Ordering::Relaxed);
        self.started.store(false, Ordering::Relaxed);
        self.in_fault.store(false, Ordering::Relaxed);
        self.fault_reply.store(NONE, Ordering::Relaxed);
        self.waiting_on.store(NONE, Ordering::Relaxed);
        self.lent
            .store(CapHandle::NULL.into_raw(), Ordering::Relaxed);
    }

    /// Whether the user thread was started.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Marks the user thread started; returns whether it already was.
    pub fn mark_started(&self) -> bool {
        self.started.swap(true, Ordering::Relaxed)
    }

    /// Whether it is in a fault call to its pager.
    pub fn in_fault(&self) -> bool {
        self.in_fault.load(Ordering::Relaxed)
    }

    /// Enters or leaves a fault call.
    pub fn set_in_fault(&self, in_fault: bool) {
        self.in_fault.store(in_fault, Ordering::Relaxed);
    }

    /// The pager's reply label, taken (`None` if no reply came).
    pub fn take_fault_reply(&self) -> Option<u32> {
        let raw = take_word(&self.fault_reply, NONE);
        (raw != NONE).then_some(raw as u32)
    }

    /// Records (or, with `None`, clears) the pager's reply label.
    pub fn set_fault_reply(&self, label: Option<u32>) {
        self.fault_reply
            .store(label.map_or(NONE, u64::from), Ordering::Relaxed);
    }

    /// The notification it waits on.
    pub fn waiting_on(&self) -> Option<NotificationId> {
        let raw = self.waiting_on.load(Ordering::Relaxed);
        (raw != NONE).then(|| NotificationId::from_u64(raw))
    }

    /// Records (or clears) the notification it waits on.
    pub fn set_waiting_on(&self, id: Option<NotificationId>) {
        self.waiting_on
            .store(id.map_or(NONE, NotificationId::as_u64), Ordering::Relaxed);
    }

    /// Takes the notification it waits on (it no longer waits).
    pub fn take_waiting_on(&self) -> Option<NotificationId> {
        let raw = take_word(&self.waiting_on, NONE);
        (raw != NONE).then(|| NotificationId::from_u64(raw))
    }

    /// Records the handle lent to its queued message.
    pub fn set_lent(&self, handle: CapHandle) {
        self.lent.store(handle.into_raw(), Ordering::Relaxed);
    }

    /// Takes the handle lent to its queued message (null if none).
    pub fn take_lent(&self) -> CapHandle {
        CapHandle::from_raw(take_word(&self.lent, CapHandle::NULL.into_raw()))
    }
}

/// Reads a word guarded by the object lock and leaves `empty` in it: a load and a store, which
/// the lock orders (no locked read-modify-write on the IPC path).
fn take_word(word: &AtomicU64, empty: u64) -> u64 {
    let value = word.load(Ordering::Relaxed);
    word.store(empty, Ordering::Relaxed);
    value
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn optional_words_round_trip_and_take_clears() {
        let tcb = Tcb::new(());
        assert_eq!(tcb.take_fault_reply(), None);
        tcb.set_fault_reply(Some(0));
        assert_eq!(
            tcb.take_fault_reply(),
            Some(0),
            "label 0 is a value, not 'none'"
        );
        assert_eq!(tcb.take_fault_reply(), None);
        tcb.set_fault_reply(Some(u32::MAX));
        assert_eq!(tcb.take_fault_reply(), Some(u32::MAX));

        let n = NotificationId::new(3, 7);
        tcb.set_waiting_on(Some(n));
        assert_eq!(tcb.waiting_on(), Some(n));
        assert_eq!(tcb.take_waiting_on(), Some(n));
        assert_eq!(tcb.waiting_on(), None);

        let h = CapHandle::from_raw(0x0000_0002_0000_0005);
        tcb.set_lent(h);
        assert_eq!(tcb.take_lent(), h);
        assert_eq!(tcb.take_lent(), CapHandle::NULL);
    }

    #[test]
    fn reset_clears_every_operation_field_and_started_is_a_one_way_mark() {
        let tcb = Tcb::new(());
        assert!(!tcb.mark_started());
        assert!(tcb.mark_started(), "the second start sees the first");
        tcb.set_in_fault(true);
        tcb.set_fault_reply(Some(1));
        tcb.set_waiting_on(Some(NotificationId::new(1, 1)));
        tcb.set_lent(CapHandle::from_raw(9));
        tcb.completed.store(true, Ordering::Relaxed);
        tcb.reset_operations();
        assert!(!tcb.started() && !tcb.in_fault());
        assert_eq!(tcb.take_fault_reply(), None);
        assert_eq!(tcb.waiting_on(), None);
        assert_eq!(tcb.take_lent(), CapHandle::NULL);
        assert!(!tcb.completed.load(Ordering::Relaxed));
    }

    #[test]
    fn stack_round_trips() {
        let tcb = Tcb::new(());
        let stack = KernelStack {
            top: 4,
            bottom: 3,
            guard: 2,
            owner: 1,
        };
        tcb.set_stack(&stack);
        assert_eq!(tcb.stack(), stack);
    }
}

//! The kernel objects user space names through capabilities, and their lifetimes.
//!
//! Owns the one table of everything a capability can point at: endpoints (kernel-core's
//! `Endpoints`), notifications, processes (an address space with its capability table, pager
//! and threads) and frame ranges, each with a reference count of the capabilities (and, for
//! frames, the page mappings) that keep it alive. An object goes away when its last reference
//! does: an endpoint's blocked threads are woken with `Killed`, a frame range goes back to the
//! allocator, a process is torn down once its last thread has left the CPU.
//!
//! Everything here lives under [`KERNEL`], taken only with interrupts masked (system calls and
//! user faults run masked; boot code uses `lock_irqsave`), so it is never held by code an
//! interrupt or a system call could preempt. The lock is never held across a context switch:
//! the system-call layer drops it before it blocks or switches. Lock order: `KERNEL`, then
//! `FRAMES` or `ASIDS`.

use crate::ktrace::{KLock, KernelLockHal};
use crate::memory::{FRAMES, UserSpace};
use abi::{Badge, CapHandle, Error, ObjectType, Rights};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::cap::{
    AddressSpaceId, CapTable, Capability, EndpointId, NotificationId, ObjectRef,
};
use kernel_core::ipc::{Cancelled, Endpoints, MAX_ENDPOINTS, Notification};
use kernel_core::lock::SpinGuard;
use kernel_core::thread::{MAX_THREADS, ThreadId};

/// Most notifications alive at once.
pub const MAX_NOTIFICATIONS: usize = 256;
/// Most processes alive at once.
pub const MAX_PROCESSES: usize = 64;

/// A process's address space, shared by its threads (each holds one strong count, so the
/// tables outlive every thread that may still run on them). Torn down on drop.
#[derive(Debug)]
pub struct Process {
    /// Present until the drop tears it down.
    pub space: Option<UserSpace>,
    /// Its name in the process table.
    pub id: AddressSpaceId,
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(space) = self.space.take() else {
            return;
        };
        // Every mapped frame's reference goes with the tables.
        let mut leaves = Vec::new();
        {
            let mut frames = FRAMES.lock_irqsave();
            if let Some(frames) = frames.as_mut() {
                space.destroy(frames, |phys| leaves.push(phys));
            }
        }
        let mut kernel = kernel();
        for phys in leaves {
            kernel.release_frame_page(phys);
        }
    }
}

/// One process in the table.
#[derive(Debug)]
pub struct ProcessEntry {
    /// The address space (shared with the process's threads).
    pub process: Arc<Process>,
    /// Its capability table.
    pub caps: Box<CapTable>,
    /// Where its faults go: an endpoint and the badge of the capability given to `SetPager`.
    pub pager: Option<(EndpointId, Badge)>,
    /// Threads created in it and not yet ended.
    pub threads: Vec<ThreadId>,
    /// Capabilities naming it (in any table).
    pub refs: u32,
    /// For reports: the program it runs.
    pub name: String,
    /// It has had a thread (a process whose last thread ends is gone for good).
    pub started: bool,
}

#[derive(Debug)]
struct ProcessSlot {
    generation: u32,
    entry: Option<ProcessEntry>,
}

#[derive(Debug)]
struct NotificationSlot {
    generation: u32,
    live: bool,
    refs: u32,
    word: Notification,
}

/// A range of frames handed out by `FrameAlloc` (or the boot loader), with its references: the
/// capabilities naming it plus its pages mapped in any address space.
#[derive(Debug, Clone, Copy)]
struct FrameRecord {
    frames: u64,
    refs: u64,
    /// Returned to the allocator at zero references (false for boot modules like the initrd).
    owned: bool,
}

/// Per thread slot: its blocking operation was completed by another thread, which wrote the
/// results into its registers first. A wake without it is a timeout or a kill. Atomic, so the
/// woken thread can see it without taking the lock (the fast path after a hand-off).
static COMPLETED: [AtomicBool; MAX_THREADS] = [const { AtomicBool::new(false) }; MAX_THREADS];

/// Marks `thread`'s operation done (its registers hold the results).
pub fn complete(thread: ThreadId) {
    COMPLETED[thread.index()].store(true, Ordering::Release);
}

/// `thread` starts an operation that someone else may complete.
pub fn clear_completion(thread: ThreadId) {
    COMPLETED[thread.index()].store(false, Ordering::Relaxed);
}

/// Whether `thread`'s operation was completed (clearing the mark).
pub fn take_completion(thread: ThreadId) -> bool {
    COMPLETED[thread.index()].swap(false, Ordering::Acquire)
}

/// How many objects of each kind are live (for the end-of-boot leak check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Live endpoints.
    pub endpoints: usize,
    /// Live notifications.
    pub notifications: usize,
    /// Registered processes.
    pub processes: usize,
    /// Frame ranges with references.
    pub frame_records: usize,
}

/// Everything, under one lock.
pub struct Kernel {
    /// Endpoints and the IPC state of every thread.
    pub endpoints: Endpoints,
    endpoint_refs: [u32; MAX_ENDPOINTS],
    notifications: [NotificationSlot; MAX_NOTIFICATIONS],
    processes: Vec<ProcessSlot>,
    frames: BTreeMap<u64, FrameRecord>,
    /// Per thread slot: the handle of the capability its queued message carries (lent).
    pub lent: [CapHandle; MAX_THREADS],
    /// Per thread slot: the user thread was started (`ThreadStart`, or by the kernel).
    pub started: [bool; MAX_THREADS],
    /// Per thread slot: the thread is in a fault call to its pager (the reply is not written
    /// into its registers: its label decides between resume and kill).
    pub in_fault: [bool; MAX_THREADS],
    /// Per thread slot: the label of the pager's reply to its fault.
    pub fault_reply: [Option<u32>; MAX_THREADS],
    /// Per thread slot: the notification it waits on.
    pub waiting_on: [Option<NotificationId>; MAX_THREADS],
    /// Processes retired from the table, dropped (and so torn down, if no thread holds them)
    /// only after the lock is released: the teardown takes the lock itself.
    pub graveyard: Vec<Arc<Process>>,
    /// Per thread slot: capabilities naming its thread, and the thread they name (a stale
    /// capability must not count against the slot's next thread).
    thread_refs: [(u32, ThreadId); MAX_THREADS],
    /// Threads whose last capability went away: detached (reclaimed once ended) after the lock is
    /// released, since reclaiming may tear a process down.
    detach: Vec<ThreadId>,
}

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The kernel objects. Interrupts masked only (see the module docs). Built at compile time: the
/// tables are far too large for a stack.
pub static KERNEL: KLock<Kernel> = KLock::new_quiet("kernel objects", Kernel::new());
/// Set while the graveyard holds a process, so that `bury` costs one load otherwise.
static GRAVEYARD_USED: AtomicBool = AtomicBool::new(false);

/// Locks the kernel objects (interrupts masked for as long as the guard lives).
#[track_caller]
#[inline(always)]
pub fn kernel() -> SpinGuard<'static, Kernel, KernelLockHal> {
    KERNEL.lock_irqsave()
}

/// Drops the processes retired while the lock was held and detaches the threads nobody names
/// any more. Call without holding the lock.
pub fn bury() {
    if !GRAVEYARD_USED.swap(false, Ordering::Acquire) {
        return;
    }
    let (dead, detach) = {
        let mut kernel = kernel();
        (
            core::mem::take(&mut kernel.graveyard),
            core::mem::take(&mut kernel.detach),
        )
    };
    drop(dead);
    for thread in detach {
        // A thread whose last capability went before anyone started it can never be started
        // (`ThreadStart` needs a capability): it would sit in no queue forever, holding its
        // slot, kernel stack and process. End it now (a kill starts it just to end it), so
        // that a create-and-delete loop cannot exhaust the thread table.
        if super::ipc::never_started(thread) {
            super::ipc::kill_thread(thread);
        }
        crate::sched::detach_user_thread(thread);
    }
}

/// Threads to wake (with `Killed` in their result register) after the lock is dropped.
pub type Evicted = Vec<(ThreadId, Option<Cancelled>)>;

impl Kernel {
    const fn new() -> Self {
        Self {
            endpoints: Endpoints::new(),
            endpoint_refs: [0; MAX_ENDPOINTS],
            notifications: [const {
                NotificationSlot {
                    generation: 0,
                    live: false,
                    refs: 0,
                    word: Notification::new(),
                }
            }; MAX_NOTIFICATIONS],
            processes: Vec::new(),
            frames: BTreeMap::new(),
            lent: [CapHandle::NULL; MAX_THREADS],
            started: [false; MAX_THREADS],
            in_fault: [false; MAX_THREADS],
            fault_reply: [None; MAX_THREADS],
            waiting_on: [None; MAX_THREADS],
            graveyard: Vec::new(),
            thread_refs: [(0, ThreadId::from_u64(0)); MAX_THREADS],
            detach: Vec::new(),
        }
    }

    /// How many objects of each kind are live.
    pub fn object_counts(&self) -> ObjectCounts {
        ObjectCounts {
            endpoints: self.endpoints.live(),
            notifications: self.notifications.iter().filter(|n| n.live).count(),
            processes: self.processes.iter().filter(|p| p.entry.is_some()).count(),
            frame_records: self.frames.len(),
        }
    }

    // ---- processes ------------------------------------------------------------------------

    /// Registers a new process around `space`.
    pub fn add_process(&mut self, space: UserSpace, name: &str) -> Result<AddressSpaceId, Error> {
        // The whole table at once, the first time: slots are never removed (they keep their
        // generations), so a table grown on demand would keep its largest capacity for good,
        // and the heap in use would depend on how many processes were ever alive at once.
        if self.processes.capacity() < MAX_PROCESSES
            && self
                .processes
                .try_reserve_exact(MAX_PROCESSES - self.processes.len())
                .is_err()
        {
            let mut frames = FRAMES.lock_irqsave();
            if let Some(frames) = frames.as_mut() {
                space.destroy(frames, |_| {});
            }
            return Err(Error::OutOfMemory);
        }
        if self.processes.len() < MAX_PROCESSES && self.processes.iter().all(|p| p.entry.is_some())
        {
            self.processes.push(ProcessSlot {
                generation: 0,
                entry: None,
            });
        }
        let Some(index) = self.processes.iter().position(|p| p.entry.is_none()) else {
            let mut frames = FRAMES.lock_irqsave();
            if let Some(frames) = frames.as_mut() {
                space.destroy(frames, |_| {});
            }
            return Err(Error::OutOfMemory);
        };
        let slot = &mut self.processes[index];
        slot.generation += 1;
        let id = AddressSpaceId::new(index as u32, slot.generation);
        slot.entry = Some(ProcessEntry {
            process: Arc::new(Process {
                space: Some(space),
                id,
            }),
            caps: Box::new(CapTable::new()),
            pager: None,
            threads: Vec::new(),
            refs: 0,
            name: String::from(name),
            started: false,
        });
        Ok(id)
    }

    /// The live process `id` names.
    pub fn process(&self, id: AddressSpaceId) -> Result<&ProcessEntry, Error> {
        let slot = self
            .processes
            .get(id.index())
            .ok_or(Error::InvalidCapability)?;
        match &slot.entry {
            Some(entry) if slot.generation == id.generation() => Ok(entry),
            _ => Err(Error::StaleCapability),
        }
    }

    /// The capability `handle` names in process `me`'s table, if it is of type `ty` and holds
    /// `rights` (every check of `CapTable::lookup`, in its order).
    #[inline(always)]
    pub fn cap(
        &self,
        me: AddressSpaceId,
        handle: u64,
        ty: ObjectType,
        rights: Rights,
    ) -> Result<&Capability, Error> {
        self.process(me)?
            .caps
            .lookup(CapHandle::from_raw(handle), ty, rights)
    }

    /// The live process `id` names, mutably.
    pub fn process_mut(&mut self, id: AddressSpaceId) -> Result<&mut ProcessEntry, Error> {
        let slot = self
            .processes
            .get_mut(id.index())
            .ok_or(Error::InvalidCapability)?;
        match &mut slot.entry {
            Some(entry) if slot.generation == id.generation() => Ok(entry),
            _ => Err(Error::StaleCapability),
        }
    }

    /// Removes a process from the table once nothing names it and no thread of it remains:
    /// its capabilities are released (objects they kept alive may go too). Threads to wake
    /// with `Killed` are added to `evicted`.
    pub fn maybe_retire_process(&mut self, id: AddressSpaceId, evicted: &mut Evicted) {
        let Ok(entry) = self.process(id) else { return };
        let ended = entry.started && entry.threads.is_empty();
        let orphan = !entry.started && entry.refs == 0;
        if !(ended || orphan) {
            return;
        }
        let Some(entry) = self.processes[id.index()].entry.take() else {
            return;
        };
        let mut caps = entry.caps;
        let mut released = Vec::new();
        caps.clear(|_, cap| released.push(cap));
        for cap in released {
            self.release_object(cap.object(), evicted);
        }
        // The `Arc` drops after the lock is released (`bury`), or when the last thread's slot
        // is reaped: the tables go then.
        self.graveyard.push(entry.process);
        GRAVEYARD_USED.store(true, Ordering::Release);
    }

    // ---- references -----------------------------------------------------------------------

    /// One more capability names `object`.
    pub fn retain_object(&mut self, object: ObjectRef) {
        match object {
            ObjectRef::Endpoint(id) => self.endpoint_refs[id.index()] += 1,
            ObjectRef::Notification(id) => self.notifications[id.index()].refs += 1,
            ObjectRef::AddressSpace(id) => {
                if let Ok(entry) = self.process_mut(id) {
                    entry.refs += 1;
                }
            }
            ObjectRef::FrameRange { start, .. } => {
                if let Some(record) = self.frames.get_mut(&start) {
                    record.refs += 1;
                }
            }
            ObjectRef::Thread(id) => {
                let slot = &mut self.thread_refs[id.index()];
                if slot.1 == id {
                    slot.0 += 1;
                } else {
                    *slot = (1, id);
                }
            }
            ObjectRef::Irq(_) => {}
        }
    }

    /// One capability naming `object` went away; the object goes when nothing names it.
    pub fn release_object(&mut self, object: ObjectRef, evicted: &mut Evicted) {
        match object {
            ObjectRef::Endpoint(id) => {
                let refs = &mut self.endpoint_refs[id.index()];
                *refs = refs.saturating_sub(1);
                if *refs == 0 {
                    let _ = self.endpoints.destroy(id, |thread, cancelled| {
                        evicted.push((thread, Some(cancelled)))
                    });
                }
            }
            ObjectRef::Notification(id) => {
                let slot = &mut self.notifications[id.index()];
                if slot.live && slot.generation == id.generation() {
                    slot.refs = slot.refs.saturating_sub(1);
                    if slot.refs == 0 {
                        slot.live = false;
                        if let Some(waiter) = slot.word.reset() {
                            evicted.push((waiter, None));
                        }
                    }
                }
            }
            ObjectRef::AddressSpace(id) => {
                if let Ok(entry) = self.process_mut(id) {
                    entry.refs = entry.refs.saturating_sub(1);
                    self.maybe_retire_process(id, evicted);
                }
            }
            ObjectRef::FrameRange { start, .. } => self.release_frame_ref(start),
            ObjectRef::Thread(id) => {
                let slot = &mut self.thread_refs[id.index()];
                if slot.1 == id && slot.0 > 0 {
                    slot.0 -= 1;
                    if slot.0 == 0 {
                        // Nobody can join it any more: it is reclaimed as soon as it ends.
                        self.detach.push(id);
                        GRAVEYARD_USED.store(true, Ordering::Release);
                    }
                }
            }
            ObjectRef::Irq(_) => {}
        }
    }

    /// Inserts `cap` in `table` of process `owner`, counting the reference.
    pub fn insert_cap(
        &mut self,
        owner: AddressSpaceId,
        cap: Capability,
    ) -> Result<CapHandle, Error> {
        let object = cap.object();
        let handle = self.process_mut(owner)?.caps.insert(cap)?;
        self.retain_object(object);
        Ok(handle)
    }

    // ---- endpoints and notifications ------------------------------------------------------

    /// A new endpoint (no references yet: the caller inserts its first capability).
    pub fn create_endpoint(&mut self) -> Result<EndpointId, Error> {
        let id = self.endpoints.create()?;
        self.endpoint_refs[id.index()] = 0;
        Ok(id)
    }

    /// A new notification (no references yet).
    pub fn create_notification(&mut self) -> Result<NotificationId, Error> {
        let index = self
            .notifications
            .iter()
            .position(|n| !n.live)
            .ok_or(Error::OutOfMemory)?;
        let slot = &mut self.notifications[index];
        slot.generation += 1;
        slot.live = true;
        slot.refs = 0;
        let _ = slot.word.reset();
        Ok(NotificationId::new(index as u32, slot.generation))
    }

    /// The live notification `id` names.
    pub fn notification(&self, id: NotificationId) -> Result<&Notification, Error> {
        let slot = self
            .notifications
            .get(id.index())
            .ok_or(Error::InvalidCapability)?;
        if slot.live && slot.generation == id.generation() {
            Ok(&slot.word)
        } else {
            Err(Error::StaleCapability)
        }
    }

    // ---- frames ---------------------------------------------------------------------------

    /// Records a frame range (no references yet).
    pub fn add_frames(&mut self, start: u64, frames: u64, owned: bool) {
        self.frames.insert(
            start,
            FrameRecord {
                frames,
                refs: 0,
                owned,
            },
        );
    }

    /// The recorded range containing `phys`.
    fn frame_record_of(&mut self, phys: u64) -> Option<(u64, &mut FrameRecord)> {
        let (&start, record) = self.frames.range_mut(..=phys).next_back()?;
        (phys < start + record.frames * kernel_core::memory_map::FRAME_SIZE)
            .then_some((start, record))
    }

    /// A page of a recorded range was mapped.
    pub fn retain_frame_page(&mut self, phys: u64) {
        if let Some((_, record)) = self.frame_record_of(phys) {
            record.refs += 1;
        }
    }

    /// A page of a recorded range was unmapped (or its tables torn down).
    pub fn release_frame_page(&mut self, phys: u64) {
        if let Some((start, _)) = self.frame_record_of(phys) {
            self.release_frame_ref(start);
        }
    }

    fn release_frame_ref(&mut self, start: u64) {
        let Some(record) = self.frames.get_mut(&start) else {
            return;
        };
        record.refs = record.refs.saturating_sub(1);
        if record.refs > 0 {
            return;
        }
        let record = *record;
        self.frames.remove(&start);
        if record.owned {
            let mut frames = FRAMES.lock_irqsave();
            if let Some(frames) = frames.as_mut() {
                for i in 0..record.frames {
                    let _ = frames.free(start + i * kernel_core::memory_map::FRAME_SIZE);
                }
            }
        }
    }
}

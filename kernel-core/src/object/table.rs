//! The object table: every kernel object a capability can name, and the reference counts that
//! decide when each one goes.
//!
//! Owns endpoints (with kernel-core's IPC model), notifications, processes (an address space's
//! payload with its capability table, pager and threads), frame ranges and the counts of
//! capabilities naming threads. An object goes when its last reference does: an endpoint's or a
//! notification's blocked threads come back as evicted (the caller wakes them with `Killed`), a
//! frame range goes back to the allocator through [`ObjectHost::free_frames`], a process whose
//! last thread ended (or that nobody names and that never ran) releases its capabilities and
//! its payload is handed to the caller's graveyard, a thread nobody names is detached.
//!
//! It must never touch registers, the scheduler or page tables, never drop a process payload
//! itself (tearing an address space down may need the locks the caller holds: the payloads wait
//! in [`Pending`] until the caller has unlocked), and never let a stale ID change the counts of
//! the object that now occupies its slot.

use super::frames::{FrameRange, FrameRecords};
use super::slots::GenSlots;
use crate::cap::{AddressSpaceId, CapTable, Capability, EndpointId, NotificationId, ObjectRef};
use crate::ipc::{Cancelled, Endpoints, MAX_ENDPOINTS, Notification};
use crate::thread::{MAX_THREADS, ThreadId};
use abi::{Badge, CapHandle, Error, ObjectType, Rights};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

/// Most notifications alive at once.
pub const MAX_NOTIFICATIONS: usize = 256;
/// Most processes alive at once.
pub const MAX_PROCESSES: usize = 64;

/// What the kernel around the table provides.
pub trait ObjectHost {
    /// What a process carries besides its capabilities (the kernel's address space handle).
    type Process;

    /// Gives a frame range whose last reference went back to the frame allocator. Called with
    /// the table borrowed: it must not touch the table.
    fn free_frames(range: FrameRange);

    /// Something was added to [`Pending`]: the caller should [`take_pending`] once it has
    /// released the table's lock.
    ///
    /// [`take_pending`]: ObjectTable::take_pending
    fn pending_added();
}

/// Threads to wake (with `Killed` in their result register) once the table's lock is released,
/// with what was cancelled for each (a queued send's message comes back to its sender).
pub type Evicted = Vec<(ThreadId, Option<Cancelled>)>;

/// One process in the table.
#[derive(Debug)]
pub struct ProcessEntry<P> {
    /// The kernel's payload (its address space; shared with the process's threads).
    pub process: P,
    /// Its capability table.
    pub caps: Box<CapTable>,
    /// Where its faults go: an endpoint and the badge of the capability given to `SetPager`.
    pub pager: Option<(EndpointId, Badge)>,
    /// Where its faults other than page faults go (`SetExceptionHandler`), as `pager`.
    pub exception_handler: Option<(EndpointId, Badge)>,
    /// It is being ended as a whole (`SpaceKill`, or the kill after a fault nobody resolved): no
    /// thread may be added any more. One way.
    pub dying: bool,
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
struct NotificationObject {
    refs: u32,
    word: Notification,
}

/// Capabilities naming the thread currently in one thread slot.
#[derive(Debug, Clone, Copy)]
struct ThreadRefs {
    thread: ThreadId,
    refs: u32,
}

/// Work the table leaves to its caller, to do after the lock is released.
#[derive(Debug)]
pub struct Pending<P> {
    /// Processes retired from the table: drop them (tearing their spaces down when no thread
    /// holds them any more).
    pub retired: Vec<P>,
    /// Threads whose last capability went away: detach them (reclaimed once they end; ended
    /// first if they were never started).
    pub detached: Vec<ThreadId>,
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

/// Every kernel object, under the caller's one lock.
pub struct ObjectTable<H: ObjectHost> {
    /// Endpoints and the IPC state of every thread.
    pub endpoints: Endpoints,
    /// Capabilities naming the live endpoint of each slot (a stale ID is refused by
    /// `Endpoints::is_live` before it can count).
    endpoint_refs: [u32; MAX_ENDPOINTS],
    notifications: GenSlots<NotificationObject>,
    processes: GenSlots<ProcessEntry<H::Process>>,
    frames: FrameRecords,
    thread_refs: [ThreadRefs; MAX_THREADS],
    pending: Pending<H::Process>,
}

impl<H: ObjectHost> core::fmt::Debug for ObjectTable<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ObjectTable")
            .field("endpoints", &self.endpoints)
            .field("notifications", &self.notifications.live())
            .field("processes", &self.processes.live())
            .field("frame_records", &self.frames.len())
            .finish_non_exhaustive()
    }
}

impl<H: ObjectHost> Default for ObjectTable<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: ObjectHost> ObjectTable<H> {
    /// No objects (no allocation: the tables reserve their space on first use).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            endpoints: Endpoints::new(),
            endpoint_refs: [0; MAX_ENDPOINTS],
            notifications: GenSlots::new(MAX_NOTIFICATIONS),
            processes: GenSlots::new(MAX_PROCESSES),
            frames: FrameRecords::new(),
            thread_refs: [ThreadRefs {
                thread: ThreadId::from_u64(0),
                refs: 0,
            }; MAX_THREADS],
            pending: Pending {
                retired: Vec::new(),
                detached: Vec::new(),
            },
        }
    }

    /// Allocates the process and notification tables now rather than on first use (so the heap
    /// in use at the end of a run can be compared exactly with the start).
    pub fn reserve(&mut self) -> Result<(), Error> {
        self.processes.reserve()?;
        self.notifications.reserve()
    }

    /// How many objects of each kind are live.
    #[must_use]
    pub fn object_counts(&self) -> ObjectCounts {
        ObjectCounts {
            endpoints: self.endpoints.live(),
            notifications: self.notifications.live(),
            processes: self.processes.live(),
            frame_records: self.frames.len(),
        }
    }

    /// The work left for after the lock (see [`Pending`]).
    pub fn take_pending(&mut self) -> Pending<H::Process> {
        Pending {
            retired: core::mem::take(&mut self.pending.retired),
            detached: core::mem::take(&mut self.pending.detached),
        }
    }

    // ---- processes ------------------------------------------------------------------------

    /// Registers a new process named `name`, whose payload `make` builds from its ID. On
    /// `OutOfMemory` `make` is not called (the caller still owns what it would have wrapped).
    pub fn add_process(
        &mut self,
        name: &str,
        make: impl FnOnce(AddressSpaceId) -> H::Process,
    ) -> Result<AddressSpaceId, Error> {
        let mut name_copy = String::new();
        name_copy
            .try_reserve_exact(name.len())
            .map_err(|_| Error::OutOfMemory)?;
        name_copy.push_str(name);
        let (index, generation) = self.processes.insert_with(|index, generation| {
            let id = AddressSpaceId::new(index, generation);
            ProcessEntry {
                process: make(id),
                caps: Box::new(CapTable::new()),
                pager: None,
                exception_handler: None,
                dying: false,
                threads: Vec::new(),
                refs: 0,
                name: name_copy,
                started: false,
            }
        })?;
        Ok(AddressSpaceId::new(index, generation))
    }

    /// The live process `id` names.
    pub fn process(&self, id: AddressSpaceId) -> Result<&ProcessEntry<H::Process>, Error> {
        self.processes.get(id.index(), id.generation())
    }

    /// The live process `id` names, mutably.
    pub fn process_mut(
        &mut self,
        id: AddressSpaceId,
    ) -> Result<&mut ProcessEntry<H::Process>, Error> {
        self.processes.get_mut(id.index(), id.generation())
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

    /// Removes a process from the table once no thread of it remains (it ran and its last
    /// thread ended) or, if it never ran, once nothing names it: its capabilities are released
    /// (objects they kept alive may go too) and its payload goes to [`Pending::retired`].
    pub fn maybe_retire_process(&mut self, id: AddressSpaceId, evicted: &mut Evicted) {
        let Ok(entry) = self.process(id) else { return };
        let ended = entry.started && entry.threads.is_empty();
        let orphan = !entry.started && entry.refs == 0;
        if !(ended || orphan) {
            return;
        }
        let Some(entry) = self.processes.remove(id.index(), id.generation()) else {
            return;
        };
        let mut caps = entry.caps;
        let mut released = Vec::new();
        caps.clear(|_, cap| released.push(cap));
        for cap in released {
            self.release_object(cap.object(), evicted);
        }
        self.pending.retired.push(entry.process);
        H::pending_added();
    }

    // ---- references -----------------------------------------------------------------------

    /// One more capability names `object`. A stale ID changes nothing.
    pub fn retain_object(&mut self, object: ObjectRef) {
        match object {
            ObjectRef::Endpoint(id) => {
                if self.endpoints.is_live(id) {
                    self.endpoint_refs[id.index()] += 1;
                }
            }
            ObjectRef::Notification(id) => {
                if let Ok(n) = self.notifications.get_mut(id.index(), id.generation()) {
                    n.refs += 1;
                }
            }
            ObjectRef::AddressSpace(id) => {
                if let Ok(entry) = self.process_mut(id) {
                    entry.refs += 1;
                }
            }
            ObjectRef::FrameRange { start, .. } => self.frames.retain(start),
            ObjectRef::Thread(id) => {
                // Only the thread `thread_created` registered in the slot: a capability to an
                // earlier occupant (copied after that thread was reclaimed) counts for nothing.
                if let Some(slot) = self.thread_refs.get_mut(id.index())
                    && slot.thread == id
                {
                    slot.refs += 1;
                }
            }
            ObjectRef::Irq(_) => {}
        }
    }

    /// One capability naming `object` went away; the object goes when nothing names it. A stale
    /// ID changes nothing.
    pub fn release_object(&mut self, object: ObjectRef, evicted: &mut Evicted) {
        match object {
            ObjectRef::Endpoint(id) => {
                if !self.endpoints.is_live(id) || self.endpoint_refs[id.index()] == 0 {
                    return;
                }
                let refs = &mut self.endpoint_refs[id.index()];
                *refs -= 1;
                if *refs == 0 {
                    let _ = self.endpoints.destroy(id, |thread, cancelled| {
                        evicted.push((thread, Some(cancelled)));
                    });
                }
            }
            ObjectRef::Notification(id) => {
                let Ok(n) = self.notifications.get_mut(id.index(), id.generation()) else {
                    return;
                };
                n.refs = n.refs.saturating_sub(1);
                if n.refs == 0
                    && let Some(n) = self.notifications.remove(id.index(), id.generation())
                    && let Some(waiter) = n.word.reset()
                {
                    evicted.push((waiter, None));
                }
            }
            ObjectRef::AddressSpace(id) => {
                if let Ok(entry) = self.process_mut(id) {
                    entry.refs = entry.refs.saturating_sub(1);
                    self.maybe_retire_process(id, evicted);
                }
            }
            ObjectRef::FrameRange { start, .. } => {
                if let Some(range) = self.frames.release(start) {
                    H::free_frames(range);
                }
            }
            ObjectRef::Thread(id) => {
                let Some(slot) = self.thread_refs.get_mut(id.index()) else {
                    return;
                };
                if slot.thread == id && slot.refs > 0 {
                    slot.refs -= 1;
                    if slot.refs == 0 {
                        // Nobody can join it any more: it is reclaimed as soon as it ends.
                        self.pending.detached.push(id);
                        H::pending_added();
                    }
                }
            }
            ObjectRef::Irq(_) => {}
        }
    }

    /// A new thread `id` took its slot: capabilities to it are counted from now on, and those to
    /// the slot's earlier occupants no longer touch the count.
    pub fn thread_created(&mut self, id: ThreadId) {
        if let Some(slot) = self.thread_refs.get_mut(id.index()) {
            *slot = ThreadRefs {
                thread: id,
                refs: 0,
            };
        }
    }

    /// Inserts `cap` in the table of process `owner`, counting the reference. An address-space
    /// capability is refused (`InvalidArgument`) in a process that has never had a thread: a
    /// process that never ran goes when nothing names it, so processes that never ran naming one
    /// another (or themselves) would never go.
    pub fn insert_cap(
        &mut self,
        owner: AddressSpaceId,
        cap: Capability,
    ) -> Result<CapHandle, Error> {
        let object = cap.object();
        let entry = self.process_mut(owner)?;
        if matches!(object, ObjectRef::AddressSpace(_)) && !entry.started {
            return Err(Error::InvalidArgument);
        }
        let handle = entry.caps.insert(cap)?;
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
        let (index, generation) = self.notifications.insert_with(|_, _| NotificationObject {
            refs: 0,
            word: Notification::new(),
        })?;
        Ok(NotificationId::new(index, generation))
    }

    /// The live notification `id` names.
    pub fn notification(&self, id: NotificationId) -> Result<&Notification, Error> {
        self.notifications
            .get(id.index(), id.generation())
            .map(|n| &n.word)
    }

    // ---- frames ---------------------------------------------------------------------------

    /// Records a frame range (no references yet); `owned` ranges go back to the allocator when
    /// their last reference goes.
    pub fn add_frames(&mut self, range: FrameRange, owned: bool) {
        self.frames.add(range, owned);
    }

    /// A page of a recorded range was mapped.
    pub fn retain_frame_page(&mut self, phys: u64) {
        self.frames.retain_page(phys);
    }

    /// A page of a recorded range was unmapped (or its tables torn down).
    pub fn release_frame_page(&mut self, phys: u64) {
        if let Some(range) = self.frames.release_page(phys) {
            H::free_frames(range);
        }
    }
}

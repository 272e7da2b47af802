//! A spinlock that explains itself when it hangs.
//!
//! Owns [`SpinLock`]: a `spin::Mutex` that records who holds it (CPU, thread, call site, since
//! when), reports a wait that lasts far longer than any legitimate hold, and records lock events in
//! the trace ring. Also owns the registry of call sites ([`write_call_sites`]) and the text of the
//! contention report, one line:
//!
//! ```text
//! [lock] 'NAME' (0xID) contended for 500 ms: waiter cpu1 thread 2.1 at FILE:LINE:COL; owner cpu0 thread 1.1 at FILE:LINE:COL, held for 512 ms
//! ```
//!
//! What the lock needs from the machine it asks through [`LockHal`]. This module must never
//! print except through [`LockHal::report`], never call into the scheduler (it only spins), never
//! allocate, and never release a lock anywhere but in the guard's `Drop`: every path out of a
//! critical section, `?` and panics included, releases it (seed report 000: a lock leaked on an
//! early return hung the boot with nothing on the console).
//!
//! # Which acquire to use
//!
//! - [`lock`](SpinLock::lock) / [`try_lock`](SpinLock::try_lock) /
//!   [`try_lock_for`](SpinLock::try_lock_for): for locks no interrupt handler ever takes.
//! - [`lock_irqsave`](SpinLock::lock_irqsave): for every lock that an interrupt handler (or the
//!   switch path run from the timer interrupt) takes, **at every acquisition, in thread context
//!   too**. Otherwise the interrupt can arrive on the CPU that holds the lock, and the handler
//!   spins on a holder that can never run again (seed report 002: a log call deadlocked in the
//!   timer interrupt). The report says so when the owner is the waiting CPU itself.

use crate::trace::{EventKind, Tid, TraceEvent, write_site_line};
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::panic::Location;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

/// What a [`SpinLock`] needs from the machine. Implemented once by the arch/boot side on a
/// zero-sized type; host tests implement it with fakes.
///
/// None of these may take a [`SpinLock`] (they run inside the lock's own slow path).
pub trait LockHal {
    /// The current CPU's index.
    fn cpu() -> u32;
    /// The current thread's ID (the raw `ThreadId`), 0 before threads exist.
    fn thread() -> u64;
    /// Monotonic nanoseconds, or 0 while no clock runs yet; time-based diagnostics then fall back
    /// to counting spins (see [`FALLBACK_NS_PER_SPIN`]). Must read a free-running counter (TSC,
    /// CNTVCT), not a tick count kept by the timer interrupt: a waiter in
    /// [`lock_irqsave`](SpinLock::lock_irqsave) spins with interrupts masked, and its clock must
    /// still advance for the report to come.
    fn now_ns() -> u64;
    /// Masks interrupts on this CPU; returns whether they were enabled.
    fn interrupts_disable() -> bool;
    /// Unmasks interrupts on this CPU if `was_enabled` (the value of the matching
    /// [`interrupts_disable`](Self::interrupts_disable)).
    fn interrupts_restore(was_enabled: bool);
    /// Prints `args` (complete lines, newline included) without taking any lock: this is called
    /// while a lock is stuck, possibly the console's own.
    fn report(args: fmt::Arguments<'_>);
    /// Records `event` in the trace ring (lock-free).
    fn trace(event: TraceEvent);
}

/// How long a wait lasts before the lock reports its owner and its waiter. Far beyond any
/// legitimate hold (microseconds), and short enough that a leaked guard is reported within 1 s
/// of the machine's monotonic clock.
pub const CONTENDED_REPORT_NS: u64 = 500_000_000;

/// Nanoseconds one spin is assumed to last while no clock runs ([`LockHal::now_ns`] is 0). A
/// `spin_loop` iteration costs tens of ns on hardware and ~250 ns under QEMU TCG, so the report
/// comes within a few times [`CONTENDED_REPORT_NS`]: a diagnostic, not a timer.
pub const FALLBACK_NS_PER_SPIN: u64 = 128;

/// Spins between two reads of the clock: `now_ns` may be an MMIO or a slow counter read.
const CLOCK_POLL_SPINS: u64 = 32;

/// Owner CPU value of a lock nobody holds.
const NO_CPU: u32 = u32::MAX;

/// Retries of a consistent owner snapshot before giving up (the lock is changing hands).
const OWNER_READ_TRIES: u32 = 64;

// ---------------------------------------------------------------------------------------------
// Call-site registry
// ---------------------------------------------------------------------------------------------

/// Call sites the registry can name. A site that finds the registry full is recorded as unknown.
pub const CALL_SITES: usize = 512;

/// Call sites each lock remembers (a hot lock is taken from a few places in turn).
const SITE_CACHE: usize = 4;

/// Index of "no call site known".
const NO_SITE: u32 = u32::MAX;

/// One registered call site: the address of its `Location` (the key, and the call-site id in
/// trace events) and the `Location` itself.
///
/// The `Location` sits in a `spin::Once` because a `&'static` cannot live in an atomic without
/// unsafe code. Only the context that won the key's compare-exchange ever calls `call_once`, so
/// nobody can spin on an initialization interrupted on its own CPU; everyone else only `get`s
/// (a plain load), and sees `None` for the instant before the winner finishes.
struct Site {
    key: AtomicUsize,
    location: spin::Once<&'static Location<'static>>,
}

impl Site {
    const fn new() -> Site {
        Site {
            key: AtomicUsize::new(0),
            location: spin::Once::new(),
        }
    }
}

static SITES: [Site; CALL_SITES] = [const { Site::new() }; CALL_SITES];

/// The call-site id of `location`: its address (in the kernel image's read-only data).
fn site_id(location: &'static Location<'static>) -> u64 {
    core::ptr::from_ref(location).addr() as u64
}

/// The registry index of `location`, registering it on first use; [`NO_SITE`] when full.
/// Lock-free: open addressing over [`SITES`] with a compare-exchange on an empty key.
fn register(location: &'static Location<'static>) -> u32 {
    let key = core::ptr::from_ref(location).addr();
    // Fibonacci hashing of the address (whose low bits are alignment zeros).
    let start = ((key as u64 >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize;
    for probe in 0..CALL_SITES {
        let index = (start + probe) % CALL_SITES;
        let site = &SITES[index];
        let mut seen = site.key.load(Ordering::Acquire);
        if seen == 0 {
            match site
                .key
                .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    site.location.call_once(|| location);
                    return index as u32;
                }
                Err(now) => seen = now,
            }
        }
        if seen == key {
            return index as u32;
        }
    }
    NO_SITE
}

/// The call site registered at `index`.
fn registered(index: u32) -> Option<&'static Location<'static>> {
    let site = SITES.get(usize::try_from(index).ok()?)?;
    site.location.get().copied()
}

/// Prints one `[trace] site 0xID FILE:LINE:COL` line per registered call site, so that the
/// call-site ids of the lock events in a trace dump can be named (`cargo xtask trace` reads
/// them). Print it next to every trace dump. Lock-free; allocates nothing.
pub fn write_call_sites(out: &mut dyn fmt::Write) -> fmt::Result {
    for site in &SITES {
        if let Some(location) = site.location.get() {
            write_site_line(out, site.key.load(Ordering::Relaxed) as u64, location)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Owner, timeout, report
// ---------------------------------------------------------------------------------------------

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The CPU it was acquired on.
    pub cpu: u32,
    /// The acquiring thread (raw `ThreadId`; 0 before threads exist).
    pub thread: u64,
    /// Where it was acquired (`None` if the call-site registry is full).
    pub location: Option<&'static Location<'static>>,
    /// [`LockHal::now_ns`] at acquisition (0 if no clock ran yet).
    pub since_ns: u64,
}

/// `FILE:LINE:COL`, or `unknown site`.
struct At(Option<&'static Location<'static>>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => write!(f, "{location}"),
            None => f.write_str("an unknown site"),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu{} thread {} at {}",
            self.cpu,
            Tid(self.thread),
            At(self.location)
        )
    }
}

/// An owner as the report prints it: who, and for how long.
struct Holder {
    owner: Option<Owner>,
    now_ns: u64,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(owner) = self.owner else {
            return f.write_str("owner not recorded (being acquired or released)");
        };
        write!(f, "owner {owner}, held for ")?;
        if owner.since_ns != 0 && self.now_ns != 0 {
            write!(
                f,
                "{} ms",
                self.now_ns.saturating_sub(owner.since_ns) / 1_000_000
            )
        } else {
            f.write_str("an unknown time (no clock)")
        }
    }
}

/// How long a waiter has waited: measured, or estimated from spins while no clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Nanoseconds of [`LockHal::now_ns`].
    Ns(u64),
    /// Spins, while no clock ran.
    Spins(u64),
}

impl Waited {
    /// The wait in nanoseconds (spins converted with [`FALLBACK_NS_PER_SPIN`]).
    pub fn as_ns(self) -> u64 {
        match self {
            Waited::Ns(ns) => ns,
            Waited::Spins(spins) => spins.saturating_mul(FALLBACK_NS_PER_SPIN),
        }
    }
}

impl fmt::Display for Waited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Waited::Ns(ns) => write!(f, "{} ms", ns / 1_000_000),
            Waited::Spins(spins) => write!(f, "{spins} spins (no clock)"),
        }
    }
}

/// [`SpinLock::try_lock_for`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTimeout {
    /// The lock's name.
    pub name: &'static str,
    /// How long it waited.
    pub waited: Waited,
    /// Who held the lock when the waiter gave up.
    pub owner: Option<Owner>,
}

impl fmt::Display for LockTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lock '{}' not acquired after {}; ",
            self.name, self.waited
        )?;
        match self.owner {
            Some(owner) => write!(f, "owner {owner}"),
            None => f.write_str("owner not recorded"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lock
// ---------------------------------------------------------------------------------------------

/// A spinlock that records its owner and reports a wait longer than [`CONTENDED_REPORT_NS`].
///
/// The owner fields are guarded by a sequence counter that only the holder writes (right after
/// acquiring, and right before releasing), so another CPU reads a consistent owner or none, never a
/// mix of two owners.
pub struct SpinLock<T, H: LockHal> {
    inner: spin::Mutex<T>,
    name: &'static str,
    owner_seq: AtomicU32,
    owner_cpu: AtomicU32,
    owner_thread: AtomicU64,
    owner_site: AtomicU32,
    owner_since: AtomicU64,
    /// Uncontended acquisitions and releases leave no trace event and read no clock (see
    /// [`new_quiet`](Self::new_quiet)).
    quiet: bool,
    /// The last call sites that took the lock and their registry indices: most locks are taken
    /// from a few places, so this spares the registry's hash probe on most acquisitions. A pair is
    /// written without a common guard; a racing reader may pair a key with another site's index,
    /// which can only misname a call site in a report.
    cached_site_key: [AtomicU64; SITE_CACHE],
    cached_site_index: [AtomicU32; SITE_CACHE],
    /// The cache entry the next miss replaces.
    cached_site_next: AtomicU32,
    hal: PhantomData<fn() -> H>,
}

impl<T, H: LockHal> fmt::Debug for SpinLock<T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinLock")
            .field("name", &self.name)
            .field("locked", &self.is_locked())
            .field("owner", &self.owner())
            .finish_non_exhaustive()
    }
}

impl<T, H: LockHal> SpinLock<T, H> {
    /// An unlocked lock named `name` (the name is what the report prints).
    pub const fn new(name: &'static str, value: T) -> Self {
        SpinLock {
            inner: spin::Mutex::new(value),
            name,
            owner_seq: AtomicU32::new(0),
            owner_cpu: AtomicU32::new(NO_CPU),
            owner_thread: AtomicU64::new(0),
            owner_site: AtomicU32::new(NO_SITE),
            owner_since: AtomicU64::new(0),
            quiet: false,
            cached_site_key: [const { AtomicU64::new(0) }; SITE_CACHE],
            cached_site_index: [const { AtomicU32::new(NO_SITE) }; SITE_CACHE],
            cached_site_next: AtomicU32::new(0),
            hal: PhantomData,
        }
    }

    /// A lock for the kernel's hottest paths (IPC, the context switch): like [`new`](Self::new),
    /// the owner (CPU, thread, call site) is recorded and a long wait is reported, but an
    /// uncontended acquisition or release records no trace event and reads no clock, so the
    /// owner's "held since" is unknown (0), and the owner is written with plain stores instead of
    /// the sequence protocol (a report racing with a change of owner may mix the two). A
    /// contended acquisition is traced as usual.
    pub const fn new_quiet(name: &'static str, value: T) -> Self {
        let mut lock = Self::new(name, value);
        lock.quiet = true;
        lock
    }

    /// The registry index of `site` (see `cached_site_key`).
    #[inline(always)]
    fn site_index(&self, site: &'static Location<'static>) -> u32 {
        let key = site_id(site);
        for (cached, index) in self.cached_site_key.iter().zip(&self.cached_site_index) {
            if cached.load(Ordering::Relaxed) == key {
                return index.load(Ordering::Relaxed);
            }
        }
        let index = register(site);
        let slot = self.cached_site_next.fetch_add(1, Ordering::Relaxed) as usize % SITE_CACHE;
        self.cached_site_index[slot].store(index, Ordering::Relaxed);
        self.cached_site_key[slot].store(key, Ordering::Relaxed);
        index
    }

    /// The lock's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The lock's id in trace events: its address.
    pub fn id(&self) -> u64 {
        core::ptr::from_ref(self).addr() as u64
    }

    /// True while somebody holds the lock.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The current owner, or `None` when the lock is free, or taken but its owner not recorded
    /// yet (the instant between acquiring and recording), or changing hands too fast to read.
    pub fn owner(&self) -> Option<Owner> {
        if self.quiet {
            let cpu = self.owner_cpu.load(Ordering::Acquire);
            return (cpu != NO_CPU).then(|| Owner {
                cpu,
                thread: self.owner_thread.load(Ordering::Relaxed),
                location: registered(self.owner_site.load(Ordering::Relaxed)),
                since_ns: 0,
            });
        }
        for _ in 0..OWNER_READ_TRIES {
            let before = self.owner_seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                core::hint::spin_loop();
                continue;
            }
            let cpu = self.owner_cpu.load(Ordering::Relaxed);
            let thread = self.owner_thread.load(Ordering::Relaxed);
            let site = self.owner_site.load(Ordering::Relaxed);
            let since_ns = self.owner_since.load(Ordering::Relaxed);
            // Pairs with the release fence in `set_owner` (the sequence-lock reader side).
            fence(Ordering::Acquire);
            if self.owner_seq.load(Ordering::Relaxed) != before {
                continue;
            }
            return (cpu != NO_CPU).then(|| Owner {
                cpu,
                thread,
                location: registered(site),
                since_ns,
            });
        }
        None
    }

    /// Writes the owner fields. Only the holder calls this, so writers never race each other.
    fn set_owner(&self, cpu: u32, thread: u64, site: u32, since_ns: u64) {
        let seq = self.owner_seq.load(Ordering::Relaxed);
        self.owner_seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.owner_cpu.store(cpu, Ordering::Relaxed);
        self.owner_thread.store(thread, Ordering::Relaxed);
        self.owner_site.store(site, Ordering::Relaxed);
        self.owner_since.store(since_ns, Ordering::Relaxed);
        self.owner_seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Acquires the lock, spinning as long as it takes. A wait longer than
    /// [`CONTENDED_REPORT_NS`] prints one report (owner and waiter) and keeps waiting.
    ///
    /// Never use this for a lock an interrupt handler takes: see
    /// [`lock_irqsave`](Self::lock_irqsave).
    #[track_caller]
    #[inline(always)]
    pub fn lock(&self) -> SpinGuard<'_, T, H> {
        self.acquire_forever(Location::caller(), IrqRestore::none())
    }

    /// Masks interrupts on this CPU, then acquires the lock like [`lock`](Self::lock); the guard
    /// releases the lock and then restores the interrupt state.
    ///
    /// Every lock that an interrupt handler takes must be taken this way at every acquisition,
    /// in thread context too: otherwise the interrupt can arrive on the CPU that holds it, and
    /// the handler spins forever on a holder that cannot run.
    #[track_caller]
    #[inline(always)]
    pub fn lock_irqsave(&self) -> SpinGuard<'_, T, H> {
        let site = Location::caller();
        self.acquire_forever(site, IrqRestore::disable())
    }

    /// [`lock`](Self::lock) and [`lock_irqsave`](Self::lock_irqsave): the guard is built in place
    /// on the uncontended path (no `Result` to move it out of); waiting is out of line.
    #[inline(always)]
    fn acquire_forever(
        &self,
        site: &'static Location<'static>,
        irq: IrqRestore<H>,
    ) -> SpinGuard<'_, T, H> {
        match self.inner.try_lock() {
            Some(inner) => self.locked(inner, site, irq),
            None => self.wait_forever(site, irq),
        }
    }

    /// [`acquire_forever`](Self::acquire_forever) once the lock was found taken.
    #[cold]
    #[inline(never)]
    fn wait_forever(
        &self,
        site: &'static Location<'static>,
        irq: IrqRestore<H>,
    ) -> SpinGuard<'_, T, H> {
        match self.acquire_contended(site, None, irq) {
            Ok(guard) => guard,
            // Without a deadline the wait only ends once it holds the lock.
            Err(_) => unreachable!("a wait without deadline gave up"),
        }
    }

    /// Acquires the lock if it is free, without waiting.
    #[track_caller]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T, H>> {
        let site = Location::caller();
        let inner = self.inner.try_lock()?;
        Some(self.locked(inner, site, IrqRestore::none()))
    }

    /// Acquires the lock, waiting at most `timeout_ns` (of [`LockHal::now_ns`], or estimated
    /// from spins while no clock runs). A wait longer than [`CONTENDED_REPORT_NS`] prints one
    /// report, as [`lock`](Self::lock) does.
    #[track_caller]
    pub fn try_lock_for(&self, timeout_ns: u64) -> Result<SpinGuard<'_, T, H>, LockTimeout> {
        let site = Location::caller();
        self.acquire(site, Some(timeout_ns), IrqRestore::none())
    }

    /// Mutable access without locking: `&mut self` proves nobody else holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// Consumes the lock, returning the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }

    fn event(&self, kind: EventKind, now: u64, cpu: u32, site: u64) -> TraceEvent {
        TraceEvent {
            timestamp: now,
            cpu,
            kind,
            a: self.id(),
            b: site,
        }
    }

    /// The guard of a freshly acquired lock: records the owner and the acquisition. Inlined into
    /// every acquisition: it is most of the cost of an uncontended lock.
    #[inline(always)]
    fn locked<'a>(
        &'a self,
        inner: spin::MutexGuard<'a, T>,
        site: &'static Location<'static>,
        irq: IrqRestore<H>,
    ) -> SpinGuard<'a, T, H> {
        let cpu = H::cpu();
        if self.quiet {
            // No sequence protocol: three plain stores, the CPU last as the "valid" mark. A
            // reader racing with a change of owner may mix two owners' fields; only reports read
            // them, and a report about a lock held long enough to matter sees a stable owner.
            self.owner_thread.store(H::thread(), Ordering::Relaxed);
            self.owner_site
                .store(self.site_index(site), Ordering::Relaxed);
            self.owner_since.store(0, Ordering::Relaxed);
            self.owner_cpu.store(cpu, Ordering::Release);
        } else {
            let now = H::now_ns();
            self.set_owner(cpu, H::thread(), self.site_index(site), now);
            H::trace(self.event(EventKind::LockAcquire, now, cpu, site_id(site)));
        }
        SpinGuard {
            lock: self,
            inner,
            irq,
        }
    }

    /// Takes the lock, waiting up to `timeout_ns` (forever if `None`). The uncontended case is
    /// inlined into the caller; waiting is [`acquire_contended`](Self::acquire_contended).
    #[inline(always)]
    fn acquire(
        &self,
        site: &'static Location<'static>,
        timeout_ns: Option<u64>,
        irq: IrqRestore<H>,
    ) -> Result<SpinGuard<'_, T, H>, LockTimeout> {
        if let Some(inner) = self.inner.try_lock() {
            return Ok(self.locked(inner, site, irq));
        }
        self.acquire_contended(site, timeout_ns, irq)
    }

    /// [`acquire`](Self::acquire) once the lock was found taken: traces the contention, spins,
    /// reports a long wait, gives up at the deadline.
    #[cold]
    #[inline(never)]
    fn acquire_contended(
        &self,
        site: &'static Location<'static>,
        timeout_ns: Option<u64>,
        irq: IrqRestore<H>,
    ) -> Result<SpinGuard<'_, T, H>, LockTimeout> {
        let cpu = H::cpu();
        let mut clock_start = H::now_ns();
        H::trace(self.event(EventKind::LockContended, clock_start, cpu, site_id(site)));
        let mut spins: u64 = 0;
        let mut reported = false;
        loop {
            // Test and test-and-set: waiters spin on a load, so they do not keep stealing the
            // cache line from the holder.
            if !self.inner.is_locked()
                && let Some(inner) = self.inner.try_lock()
            {
                return Ok(self.locked(inner, site, irq));
            }
            core::hint::spin_loop();
            spins += 1;
            if !spins.is_multiple_of(CLOCK_POLL_SPINS) {
                continue;
            }
            let now = H::now_ns();
            let waited = if now == 0 {
                Waited::Spins(spins)
            } else {
                if clock_start == 0 {
                    // The clock started while this CPU was waiting: measure from here on.
                    clock_start = now;
                }
                Waited::Ns(now.saturating_sub(clock_start))
            };
            if !reported && waited.as_ns() >= CONTENDED_REPORT_NS {
                reported = true;
                self.report(site, cpu, now, waited);
            }
            if let Some(limit) = timeout_ns
                && waited.as_ns() >= limit
            {
                return Err(LockTimeout {
                    name: self.name,
                    waited,
                    owner: self.owner(),
                });
            }
        }
    }

    /// Prints the contention report (see the module documentation).
    #[cold]
    fn report(&self, site: &'static Location<'static>, cpu: u32, now: u64, waited: Waited) {
        let owner = self.owner();
        let hint = match owner {
            Some(o) if o.cpu == cpu && o.thread == H::thread() => {
                "; the owner is this very thread on this CPU: an interrupt handler took a lock without \
                 lock_irqsave, or a recursive acquisition"
            }
            _ => "",
        };
        H::report(format_args!(
            "[lock] '{}' ({:#x}) contended for {}: waiter cpu{} thread {} at {}; {}{}\n",
            self.name,
            self.id(),
            waited,
            cpu,
            Tid(H::thread()),
            site,
            Holder { owner, now_ns: now },
            hint,
        ));
    }
}

/// Restores the interrupt state saved by [`lock_irqsave`](SpinLock::lock_irqsave) when dropped.
/// A field of the guard declared after the inner mutex guard, so that the lock is released
/// before interrupts come back (fields drop in declaration order).
struct IrqRestore<H: LockHal> {
    was_enabled: Option<bool>,
    hal: PhantomData<fn() -> H>,
}

impl<H: LockHal> IrqRestore<H> {
    fn none() -> Self {
        IrqRestore {
            was_enabled: None,
            hal: PhantomData,
        }
    }

    #[inline(always)]
    fn disable() -> Self {
        IrqRestore {
            was_enabled: Some(H::interrupts_disable()),
            hal: PhantomData,
        }
    }

    fn take(&mut self) -> Self {
        IrqRestore {
            was_enabled: self.was_enabled.take(),
            hal: PhantomData,
        }
    }
}

impl<H: LockHal> Drop for IrqRestore<H> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(was_enabled) = self.was_enabled.take() {
            H::interrupts_restore(was_enabled);
        }
    }
}

/// Access to the data of a held [`SpinLock`]; dropping it clears the owner, records the release,
/// releases the lock and then (for [`lock_irqsave`](SpinLock::lock_irqsave)) restores interrupts.
pub struct SpinGuard<'a, T, H: LockHal> {
    lock: &'a SpinLock<T, H>,
    // Drop order matters: `inner` (the lock) before `irq` (the interrupt state).
    inner: spin::MutexGuard<'a, T>,
    irq: IrqRestore<H>,
}

impl<T: fmt::Debug, H: LockHal> fmt::Debug for SpinGuard<'_, T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpinGuard")
            .field("lock", &self.lock.name)
            .field("value", &*self.inner)
            .finish()
    }
}

impl<T, H: LockHal> SpinGuard<'_, T, H> {
    /// **Deliberately breaks the lock, for the lock-diagnostics test only**: forgets the guard
    /// without clearing the owner or releasing the lock, as a buggy early return would. The
    /// next acquisition waits forever (or until its deadline) and must report this guard's owner
    /// and call site. The interrupt state saved by `lock_irqsave` is still restored, so the
    /// machine keeps taking timer interrupts. Never call this outside that test.
    pub fn leak_for_test(mut self) {
        let irq = self.irq.take();
        core::mem::forget(self);
        drop(irq);
    }
}

impl<T, H: LockHal> Deref for SpinGuard<'_, T, H> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T, H: LockHal> DerefMut for SpinGuard<'_, T, H> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T, H: LockHal> Drop for SpinGuard<'_, T, H> {
    #[inline(always)]
    fn drop(&mut self) {
        // Still the holder here: clear the owner before the fields drop (releasing the lock),
        // so no later owner is ever overwritten.
        let lock = self.lock;
        if lock.quiet {
            lock.owner_cpu.store(NO_CPU, Ordering::Release);
        } else {
            // The release event names the acquisition's call site, from the owner record (the
            // guard does not carry it: a smaller guard is cheaper to move on the hot paths).
            let site = registered(lock.owner_site.load(Ordering::Relaxed)).map_or(0, site_id);
            lock.set_owner(NO_CPU, 0, NO_SITE, 0);
            H::trace(lock.event(EventKind::LockRelease, H::now_ns(), H::cpu(), site));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::string::{String, ToString};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::vec::Vec;

    /// A fake machine whose state is per host thread, so that tests running in parallel do not
    /// see each other. Each `now_ns` call advances the clock by `STEP`: time passes while a
    /// waiter spins, deterministically.
    struct Fake;

    std::thread_local! {
        static CPU: Cell<u32> = const { Cell::new(0) };
        static THREAD: Cell<u64> = const { Cell::new(0) };
        static CLOCK: Cell<u64> = const { Cell::new(0) };
        static STEP: Cell<u64> = const { Cell::new(0) };
        static IRQ_ENABLED: Cell<bool> = const { Cell::new(true) };
        static REPORTS: RefCell<Vec<(u64, String)>> = const { RefCell::new(Vec::new()) };
        static TRACES: RefCell<Vec<TraceEvent>> = const { RefCell::new(Vec::new()) };
        static ON_REPORT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    }

    impl LockHal for Fake {
        fn cpu() -> u32 {
            CPU.get()
        }
        fn thread() -> u64 {
            THREAD.get()
        }
        fn now_ns() -> u64 {
            let now = CLOCK.get();
            if now != 0 {
                CLOCK.set(now + STEP.get());
            }
            now
        }
        fn interrupts_disable() -> bool {
            IRQ_ENABLED.replace(false)
        }
        fn interrupts_restore(was_enabled: bool) {
            if was_enabled {
                IRQ_ENABLED.set(true);
            }
        }
        fn report(args: fmt::Arguments<'_>) {
            REPORTS.with_borrow_mut(|r| r.push((CLOCK.get(), std::format!("{args}"))));
            ON_REPORT.with_borrow(|flag| {
                if let Some(flag) = flag {
                    flag.store(true, Ordering::Relaxed);
                }
            });
        }
        fn trace(event: TraceEvent) {
            TRACES.with_borrow_mut(|t| t.push(event));
        }
    }

    /// Sets this host thread up as `cpu`, running `thread`, with a clock at `start` that advances
    /// `step` per read (`start` 0: no clock).
    fn machine(cpu: u32, thread: u64, start: u64, step: u64) {
        CPU.set(cpu);
        THREAD.set(thread);
        CLOCK.set(start);
        STEP.set(step);
    }

    fn reports() -> Vec<(u64, String)> {
        REPORTS.with_borrow(Clone::clone)
    }

    fn traces() -> Vec<(EventKind, u64)> {
        TRACES.with_borrow(|t| t.iter().map(|e| (e.kind, e.b)).collect())
    }

    const MS: u64 = 1_000_000;

    fn tid(index: u32, generation: u32) -> u64 {
        crate::thread::ThreadId::new(index, generation).as_u64()
    }

    #[test]
    fn owner_is_recorded_and_cleared() {
        machine(2, tid(5, 1), 1_000, 0);
        let lock = SpinLock::<u32, Fake>::new("counter", 0);
        assert_eq!(lock.owner(), None);
        let line = line!() + 1;
        let mut guard = lock.lock();
        *guard += 1;
        let owner = lock.owner().unwrap();
        assert_eq!(
            (owner.cpu, owner.thread, owner.since_ns),
            (2, tid(5, 1), 1_000)
        );
        let at = owner.location.unwrap();
        assert_eq!((at.file(), at.line()), (file!(), line));
        assert!(lock.is_locked());
        drop(guard);
        assert_eq!(lock.owner(), None);
        assert!(!lock.is_locked());
        assert_eq!(*lock.lock(), 1);
        // Acquire and release, twice, each naming its call site.
        let kinds: Vec<EventKind> = traces().iter().map(|t| t.0).collect();
        assert_eq!(
            kinds,
            [
                EventKind::LockAcquire,
                EventKind::LockRelease,
                EventKind::LockAcquire,
                EventKind::LockRelease
            ]
        );
        let sites: Vec<u64> = traces().iter().map(|t| t.1).collect();
        assert_eq!(sites[0], sites[1]);
        assert_ne!(sites[1], sites[2]);
        assert_eq!(sites[0], site_id(at));
        assert!(reports().is_empty());
    }

    #[test]
    fn a_quiet_lock_records_its_owner_but_no_uncontended_event() {
        machine(1, tid(3, 2), 5_000, 0);
        let lock = SpinLock::<u32, Fake>::new_quiet("ipc", 0);
        let guard = lock.lock();
        let owner = lock.owner().unwrap();
        assert_eq!((owner.cpu, owner.thread, owner.since_ns), (1, tid(3, 2), 0));
        drop(guard);
        assert_eq!(lock.owner(), None);
        drop(lock.lock_irqsave());
        assert!(traces().is_empty(), "{:?}", traces());
        assert!(reports().is_empty());
    }

    #[test]
    fn a_leaked_guard_is_reported_once_with_both_call_sites() {
        // CPU 0, thread 1.1 takes the lock and leaks the guard (an early return without unlock).
        machine(0, tid(1, 1), 1_000 * MS, MS);
        let lock = SpinLock::<(), Fake>::new("mmupool", ());
        let owner_line = line!() + 1;
        lock.lock().leak_for_test();
        // Later, CPU 1, thread 2.1 wants it.
        CPU.set(1);
        THREAD.set(tid(2, 1));
        let start = CLOCK.get();
        let waiter_line = line!() + 1;
        let err = lock.try_lock_for(2_000 * MS).unwrap_err();
        // Exactly one report, printed once the threshold had passed (not before, not much after).
        let reports = reports();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let (at, text) = &reports[0];
        assert!(*at - start >= CONTENDED_REPORT_NS && *at - start <= CONTENDED_REPORT_NS + 2 * MS);
        let owner_site = std::format!("{}:{owner_line}:", file!());
        let waiter_site = std::format!("{}:{waiter_line}:", file!());
        assert!(text.starts_with("[lock] 'mmupool' (0x"), "{text}");
        assert!(
            text.contains(" contended for 500 ms: waiter cpu1 thread 2.1 at "),
            "{text}"
        );
        assert!(text.contains(&waiter_site), "{text}");
        assert!(text.contains("; owner cpu0 thread 1.1 at "), "{text}");
        assert!(text.contains(&owner_site), "{text}");
        assert!(text.contains(", held for 50"), "{text}");
        assert!(text.ends_with(" ms\n"), "{text}");
        // The waiter gave up at its deadline, naming the owner.
        let Waited::Ns(waited) = err.waited else {
            panic!("{err:?}")
        };
        assert!(
            (2_000 * MS..2_000 * MS + 2 * MS).contains(&waited),
            "{waited}"
        );
        assert_eq!(err.owner.unwrap().cpu, 0);
        assert!(lock.is_locked());
        assert!(
            err.to_string()
                .starts_with("lock 'mmupool' not acquired after 2000 ms; owner cpu0")
        );
        let kinds: Vec<EventKind> = traces().iter().map(|t| t.0).collect();
        assert_eq!(kinds, [EventKind::LockAcquire, EventKind::LockContended]);
    }

    #[test]
    fn the_report_points_at_an_interrupt_taking_a_lock_its_cpu_holds() {
        machine(3, tid(1, 1), MS, MS);
        let lock = SpinLock::<(), Fake>::new("logger", ());
        let _held = lock.lock();
        // The timer interrupt on the same CPU wants it.
        assert!(lock.try_lock_for(600 * MS).is_err());
        let text = &reports()[0].1;
        assert!(text.contains("the owner is this very thread"), "{text}");
    }

    #[test]
    fn a_short_deadline_gives_up_without_a_report() {
        machine(0, 0, MS, MS);
        let lock = SpinLock::<(), Fake>::new("short", ());
        let _held = lock.lock();
        assert!(lock.try_lock_for(10 * MS).is_err());
        assert!(lock.try_lock().is_none());
        assert!(reports().is_empty());
    }

    #[test]
    fn without_a_clock_spins_stand_in_for_time() {
        machine(0, 0, 0, 0);
        let lock = SpinLock::<(), Fake>::new("early", ());
        lock.lock().leak_for_test();
        let err = lock.try_lock_for(CONTENDED_REPORT_NS + 1).unwrap_err();
        let Waited::Spins(spins) = err.waited else {
            panic!("{err:?}")
        };
        assert!(spins * FALLBACK_NS_PER_SPIN > CONTENDED_REPORT_NS);
        let reports = reports();
        assert_eq!(reports.len(), 1);
        assert!(
            reports[0].1.contains(" spins (no clock): "),
            "{}",
            reports[0].1
        );
        assert!(reports[0].1.contains("held for an unknown time (no clock)"));
    }

    #[test]
    fn lock_keeps_waiting_after_the_report_and_gets_the_lock() {
        let lock = Arc::new(SpinLock::<u32, Fake>::new("shared", 0));
        let reported = Arc::new(AtomicBool::new(false));
        machine(0, tid(1, 1), MS, MS);
        let guard = lock.lock();
        let waiter = {
            let lock = Arc::clone(&lock);
            let reported = Arc::clone(&reported);
            std::thread::spawn(move || {
                machine(1, tid(2, 1), MS, MS);
                ON_REPORT.set(Some(reported));
                *lock.lock() += 1;
                reports()
            })
        };
        // Hold the lock until the waiter has complained, then let it in.
        while !reported.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
        drop(guard);
        let reports = waiter.join().unwrap();
        assert_eq!(reports.len(), 1);
        assert!(reports[0].1.contains("waiter cpu1 thread 2.1"));
        assert!(reports[0].1.contains("owner cpu0 thread 1.1"));
        assert_eq!(*lock.lock(), 1);
    }

    #[test]
    fn irqsave_masks_interrupts_and_restores_them_after_release() {
        machine(0, 0, MS, 0);
        let lock = SpinLock::<u32, Fake>::new("irq", 0);
        IRQ_ENABLED.set(true);
        {
            let outer = lock.lock_irqsave();
            assert!(!IRQ_ENABLED.get());
            assert_eq!(*outer, 0);
            let other = SpinLock::<u32, Fake>::new("nested", 0);
            drop(other.lock_irqsave());
            // The nested guard found interrupts masked and left them masked.
            assert!(!IRQ_ENABLED.get());
        }
        assert!(IRQ_ENABLED.get());
        // Masked before: still masked after.
        IRQ_ENABLED.set(false);
        drop(lock.lock_irqsave());
        assert!(!IRQ_ENABLED.get());
        // A leaked irqsave guard keeps the lock but gives the interrupts back.
        IRQ_ENABLED.set(true);
        lock.lock_irqsave().leak_for_test();
        assert!(IRQ_ENABLED.get());
        assert!(lock.is_locked());
    }

    #[derive(Debug, PartialEq)]
    struct Refused;

    fn update(lock: &SpinLock<Vec<u32>, Fake>, value: u32) -> Result<(), Refused> {
        let mut list = lock.lock();
        check(value)?;
        list.push(value);
        Ok(())
    }

    fn check(value: u32) -> Result<(), Refused> {
        if value.is_multiple_of(2) {
            Ok(())
        } else {
            Err(Refused)
        }
    }

    #[test]
    fn early_returns_and_panics_release_the_lock() {
        machine(0, 0, MS, 0);
        let lock = SpinLock::<Vec<u32>, Fake>::new("list", Vec::new());
        assert_eq!(update(&lock, 1), Err(Refused));
        assert!(!lock.is_locked());
        assert_eq!(lock.owner(), None);
        assert_eq!(update(&lock, 2), Ok(()));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = lock.lock();
            panic!("inside the critical section");
        }));
        assert!(panicked.is_err());
        assert!(!lock.is_locked());
        assert_eq!(*lock.try_lock().unwrap(), [2]);
    }

    #[test]
    fn call_sites_are_registered_once_and_listed() {
        #[track_caller]
        fn here() -> &'static Location<'static> {
            Location::caller()
        }
        let a = here();
        let b = here();
        let (ia, ib) = (register(a), register(b));
        assert_ne!(ia, NO_SITE);
        assert_ne!(ia, ib);
        assert_eq!(register(a), ia);
        assert_eq!(registered(ia), Some(a));
        assert_eq!(registered(NO_SITE), None);
        let mut out = String::new();
        write_call_sites(&mut out).unwrap();
        let line = std::format!("[trace] site {:#x} {a}\n", site_id(a));
        assert!(out.contains(&line), "{out}");
        assert_eq!(
            crate::trace::parse_site_line(&line),
            Some((site_id(a), std::format!("{a}").as_str()))
        );
    }

    #[test]
    fn contended_owners_stay_consistent_under_load() {
        machine(0, 0, 0, 0);
        let lock = Arc::new(SpinLock::<u64, Fake>::new("hot", 0));
        let threads: Vec<_> = (1..=3u32)
            .map(|cpu| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    machine(cpu, u64::from(cpu) << 32 | u64::from(cpu), 0, 0);
                    for _ in 0..20_000 {
                        *lock.lock() += 1;
                        // An observer's snapshot is one owner's, never a mix.
                        if let Some(o) = lock.owner() {
                            assert_eq!(o.thread, u64::from(o.cpu) << 32 | u64::from(o.cpu));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 60_000);
    }
}

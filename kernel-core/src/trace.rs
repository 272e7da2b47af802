//! The lock-free per-CPU trace ring: what the kernel did just before it stopped.
//!
//! Owns the trace event ([`TraceEvent`], [`EventKind`]), the ring that stores the most recent
//! events of one CPU ([`TraceRing`]), the set of rings of a machine ([`PerCpuTrace`]) and the exact
//! text of a dump, which `cargo xtask trace` decodes:
//!
//! ```text
//! [trace] begin
//! [trace] CPU TIMESTAMP KIND A B        (numbers in hex with 0x, KIND a short name)
//! [trace] site ADDRESS FILE:LINE:COL    (a lock call site, printed by `lock::write_call_sites`)
//! [trace] end
//! ```
//!
//! Recording must be possible from any context: a thread, the switch path, an interrupt handler
//! that interrupted another `record` on the same CPU, or a panic. So this module must never take a
//! lock, never spin waiting for another writer, never allocate and never print on its own. A
//! writer that cannot get its slot without waiting drops its event and counts it instead
//! ([`TraceRing::dropped`]); losing one event is better than a hang in the tracer.
//!
//! # How a slot is written (a per-entry sequence lock)
//!
//! A writer reserves a ticket with one `fetch_add` on the ring's head; ticket `t` owns slot
//! `t % N`. It claims the slot by moving the slot's sequence word from a published older ticket
//! to "ticket `t` being written" (a compare-exchange), writes the fields as plain relaxed atomics
//! and finally publishes "ticket `t` complete". A reader accepts an entry only when it sees the
//! same complete sequence word before and after reading the fields; anything else (being written,
//! overwritten by a newer lap) is skipped. No event a reader returns is ever torn.

use crate::thread::ThreadId;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering, fence};

/// What happened. The meaning of [`TraceEvent::a`] and [`TraceEvent::b`] depends on the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum EventKind {
    /// A context switch: `a` = thread switched away from, `b` = thread switched to.
    Switch = 1,
    /// An interrupt was taken: `a` = vector (x86_64) or INTID (GIC), `b` = free (arch detail).
    Irq = 2,
    /// A system call entered the kernel: `a` = syscall number, `b` = calling thread.
    Syscall = 3,
    /// A message was sent: `a` = endpoint (object id), `b` = sending thread.
    IpcSend = 4,
    /// A message was received: `a` = endpoint (object id), `b` = receiving thread.
    IpcReceive = 5,
    /// A lock was acquired: `a` = lock id (its address), `b` = call-site id.
    LockAcquire = 6,
    /// A lock was found held and the caller starts waiting: `a` = lock id, `b` = call-site id.
    LockContended = 7,
    /// A lock was released: `a` = lock id, `b` = call-site id of the acquisition.
    LockRelease = 8,
    /// A thread was made ready: `a` = woken thread, `b` = waking thread (0 from an interrupt).
    Wake = 9,
    /// A thread blocked: `a` = thread, `b` = what it waits on (object id, 0 if none).
    Block = 10,
    /// A thread went to sleep: `a` = thread, `b` = wake-up deadline (monotonic ns).
    Sleep = 11,
    /// Free use while debugging: `a` and `b` are whatever the caller wants.
    Log = 12,
    /// The watchdog found a stalled CPU: `a` = that CPU, `b` = ns without scheduling progress.
    Watchdog = 13,
}

impl EventKind {
    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 13] = [
        EventKind::Switch,
        EventKind::Irq,
        EventKind::Syscall,
        EventKind::IpcSend,
        EventKind::IpcReceive,
        EventKind::LockAcquire,
        EventKind::LockContended,
        EventKind::LockRelease,
        EventKind::Wake,
        EventKind::Block,
        EventKind::Sleep,
        EventKind::Log,
        EventKind::Watchdog,
    ];

    /// The short name used in dumps (one word, no spaces).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Switch => "switch",
            EventKind::Irq => "irq",
            EventKind::Syscall => "syscall",
            EventKind::IpcSend => "ipc-send",
            EventKind::IpcReceive => "ipc-recv",
            EventKind::LockAcquire => "lock-acquire",
            EventKind::LockContended => "lock-contended",
            EventKind::LockRelease => "lock-release",
            EventKind::Wake => "wake",
            EventKind::Block => "block",
            EventKind::Sleep => "sleep",
            EventKind::Log => "log",
            EventKind::Watchdog => "watchdog",
        }
    }

    /// The kind named `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind whose discriminant is `raw`.
    pub fn from_u16(raw: u16) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|&k| k as u16 == raw)
    }
}

/// One recorded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// Monotonic nanoseconds (0 before the timer runs).
    pub timestamp: u64,
    /// CPU that recorded it.
    pub cpu: u32,
    /// What happened.
    pub kind: EventKind,
    /// First argument; its meaning depends on `kind`.
    pub a: u64,
    /// Second argument; its meaning depends on `kind`.
    pub b: u64,
}

/// A raw thread ID as the trace carries it, displayed as `index.generation`.
///
/// The packing of index and generation is [`ThreadId`]'s alone: this wrapper only borrows its
/// `Display`, so a trace, a lock report and the thread table always agree on how a thread is
/// named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tid(pub u64);

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&ThreadId::from_u64(self.0), f)
    }
}

impl fmt::Display for TraceEvent {
    /// The human form, e.g. `t=123456 cpu0 switch 3.1 -> 7.2` (time in ns, thread IDs as
    /// `index.generation`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (self.a, self.b);
        write!(
            f,
            "t={} cpu{} {} ",
            self.timestamp,
            self.cpu,
            self.kind.name()
        )?;
        match self.kind {
            EventKind::Switch => write!(f, "{} -> {}", Tid(a), Tid(b)),
            EventKind::Irq if b == 0 => write!(f, "{a}"),
            EventKind::Irq => write!(f, "{a} ({b:#x})"),
            EventKind::Syscall => write!(f, "{a} by {}", Tid(b)),
            EventKind::IpcSend | EventKind::IpcReceive => {
                write!(f, "endpoint {a:#x} by {}", Tid(b))
            }
            EventKind::LockAcquire | EventKind::LockContended => {
                write!(f, "lock {a:#x} at site {b:#x}")
            }
            EventKind::LockRelease => write!(f, "lock {a:#x} taken at site {b:#x}"),
            EventKind::Wake => write!(f, "{} by {}", Tid(a), Tid(b)),
            EventKind::Block => write!(f, "{} on {b:#x}", Tid(a)),
            EventKind::Sleep => write!(f, "{} until t={b}", Tid(a)),
            EventKind::Log => write!(f, "{a:#x} {b:#x}"),
            EventKind::Watchdog => write!(f, "cpu{a} stalled for {} ms", b / 1_000_000),
        }
    }
}

/// The machine-readable dump line of `event`: `[trace] CPU TIMESTAMP KIND A B`.
pub fn write_line(out: &mut dyn Write, event: &TraceEvent) -> fmt::Result {
    writeln!(
        out,
        "[trace] {:#x} {:#x} {} {:#x} {:#x}",
        event.cpu,
        event.timestamp,
        event.kind.name(),
        event.a,
        event.b
    )
}

/// The dump line that names a call site: `[trace] site ADDRESS FILE:LINE:COL`.
pub fn write_site_line(
    out: &mut dyn Write,
    id: u64,
    location: &core::panic::Location<'_>,
) -> fmt::Result {
    writeln!(out, "[trace] site {id:#x} {location}")
}

/// The text after the `[trace] ` tag of `line`, without a trailing `\r`/`\n`. The tag may be
/// preceded by other text: on a shared serial line another CPU can print into the middle of it.
fn body(line: &str) -> Option<&str> {
    let line = line.trim_end_matches(['\r', '\n']);
    let at = line.find("[trace] ")?;
    Some(&line[at + "[trace] ".len()..])
}

fn parse_hex(word: &str) -> Option<u64> {
    let digits = word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))
        .unwrap_or(word);
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Parses an event line written by [`write_line`]; `None` for any other line (including
/// `[trace] begin`, `[trace] end` and site lines).
pub fn parse_line(line: &str) -> Option<TraceEvent> {
    let mut words = body(line)?.split(' ');
    let cpu = u32::try_from(parse_hex(words.next()?)?).ok()?;
    let timestamp = parse_hex(words.next()?)?;
    let kind = EventKind::from_name(words.next()?)?;
    let a = parse_hex(words.next()?)?;
    let b = parse_hex(words.next()?)?;
    if words.next().is_some() {
        return None;
    }
    Some(TraceEvent {
        timestamp,
        cpu,
        kind,
        a,
        b,
    })
}

/// Parses a site line written by [`write_site_line`]: `(id, "FILE:LINE:COL")`.
pub fn parse_site_line(line: &str) -> Option<(u64, &str)> {
    let rest = body(line)?.strip_prefix("site ")?;
    let (id, location) = rest.split_once(' ')?;
    if location.is_empty() {
        return None;
    }
    Some((parse_hex(id)?, location))
}

// The sequence word of a slot: 0 = never written, `(t + 1) << 1` = ticket `t` complete,
// `((t + 1) << 1) | 1` = ticket `t` being written.
const fn complete(ticket: u64) -> u64 {
    (ticket + 1) << 1
}

const fn writing(ticket: u64) -> u64 {
    complete(ticket) | 1
}

/// One entry of a ring. Every field is an atomic so that a reader racing a writer reads stale or
/// new values, never undefined ones; the sequence word tells which.
struct Slot {
    seq: AtomicU64,
    timestamp: AtomicU64,
    /// `cpu << 32 | kind`.
    meta: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            timestamp: AtomicU64::new(0),
            meta: AtomicU64::new(0),
            a: AtomicU64::new(0),
            b: AtomicU64::new(0),
        }
    }

    /// Writes the fields. Only the claimer of the slot calls this.
    fn write(&self, event: &TraceEvent) {
        self.timestamp.store(event.timestamp, Ordering::Relaxed);
        self.meta.store(
            (u64::from(event.cpu) << 32) | event.kind as u64,
            Ordering::Relaxed,
        );
        self.a.store(event.a, Ordering::Relaxed);
        self.b.store(event.b, Ordering::Relaxed);
    }

    /// Makes ticket `ticket` visible to readers; its field stores happen before.
    fn publish(&self, ticket: u64) {
        self.seq.store(complete(ticket), Ordering::Release);
    }

    /// The event of `ticket`, if the slot holds it completely.
    fn read(&self, ticket: u64) -> Option<TraceEvent> {
        let before = self.seq.load(Ordering::Acquire);
        if before != complete(ticket) {
            return None;
        }
        let timestamp = self.timestamp.load(Ordering::Relaxed);
        let meta = self.meta.load(Ordering::Relaxed);
        let a = self.a.load(Ordering::Relaxed);
        let b = self.b.load(Ordering::Relaxed);
        // Pairs with the release fence in `claim`: if any field above came from a later writer,
        // that writer's claim is visible to the load below, which then differs from `before`.
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != before {
            return None;
        }
        Some(TraceEvent {
            timestamp,
            cpu: (meta >> 32) as u32,
            kind: EventKind::from_u16(meta as u16)?,
            a,
            b,
        })
    }
}

/// The most recent `N` events of one CPU. `const`-constructible, so it can be a `static`.
pub struct TraceRing<const N: usize> {
    /// Next ticket; tickets are never reused (a `u64` of events does not wrap).
    head: AtomicU64,
    /// Events lost because their slot was being written by an interrupted writer, or because a
    /// newer lap had already overwritten it.
    dropped: AtomicU64,
    slots: [Slot; N],
}

impl<const N: usize> fmt::Debug for TraceRing<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceRing")
            .field("capacity", &N)
            .field("recorded", &self.recorded())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<const N: usize> Default for TraceRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TraceRing<N> {
    /// An empty ring. `N` must not be 0 (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(N > 0, "a trace ring needs at least one slot") };
        TraceRing {
            head: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slots: [const { Slot::new() }; N],
        }
    }

    /// Records `event`. Callable from any context; never blocks, never locks, never allocates.
    pub fn record(&self, event: TraceEvent) {
        let ticket = self.reserve();
        if let Some(slot) = self.claim(ticket) {
            slot.write(&event);
            slot.publish(ticket);
        }
    }

    /// Step 1 of a record: takes the next ticket.
    fn reserve(&self) -> u64 {
        self.head.fetch_add(1, Ordering::Relaxed)
    }

    fn slot(&self, ticket: u64) -> &Slot {
        // The remainder is below N, so it fits a usize.
        &self.slots[(ticket % N as u64) as usize]
    }

    /// Step 2 of a record: takes the slot of `ticket` for writing, or gives up (counting a drop)
    /// when a writer that this one interrupted is still in it, or a newer ticket already used it.
    fn claim(&self, ticket: u64) -> Option<&Slot> {
        let slot = self.slot(ticket);
        let mut seen = slot.seq.load(Ordering::Relaxed);
        loop {
            // Busy (odd) or already newer: waiting could deadlock (the other writer may be the
            // code this interrupt stopped), and overwriting newer data would lose the newer event.
            if seen & 1 == 1 || seen >= complete(ticket) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match slot.seq.compare_exchange_weak(
                seen,
                writing(ticket),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        // Orders the claim before the field stores (see `Slot::read`).
        fence(Ordering::Release);
        Some(slot)
    }

    /// Events recorded so far (including dropped ones).
    pub fn recorded(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    /// Events that could not be stored (see the module documentation).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The tickets that may still be in the ring: the last `N` reserved.
    fn window(&self) -> (u64, u64) {
        let end = self.head.load(Ordering::Acquire);
        (end.saturating_sub(N as u64), end)
    }

    /// The first complete event at or after ticket `*next` before `end`; advances `*next` past it.
    fn next_event(&self, next: &mut u64, end: u64) -> Option<TraceEvent> {
        while *next < end {
            let ticket = *next;
            *next += 1;
            if let Some(event) = self.slot(ticket).read(ticket) {
                return Some(event);
            }
        }
        None
    }

    /// Visits the surviving events, oldest to newest (in recording order). Entries being written
    /// or overwritten while this runs are skipped, never returned torn.
    pub fn for_each_recent(&self, mut f: impl FnMut(TraceEvent)) {
        let (mut next, end) = self.window();
        while let Some(event) = self.next_event(&mut next, end) {
            f(event);
        }
    }
}

/// One [`TraceRing`] per CPU.
pub struct PerCpuTrace<const CPUS: usize, const N: usize> {
    rings: [TraceRing<N>; CPUS],
}

impl<const CPUS: usize, const N: usize> fmt::Debug for PerCpuTrace<CPUS, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rings.iter()).finish()
    }
}

impl<const CPUS: usize, const N: usize> Default for PerCpuTrace<CPUS, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize, const N: usize> PerCpuTrace<CPUS, N> {
    /// Empty rings.
    pub const fn new() -> Self {
        PerCpuTrace {
            rings: [const { TraceRing::new() }; CPUS],
        }
    }

    /// The ring of `cpu`, if there is one.
    pub fn ring(&self, cpu: u32) -> Option<&TraceRing<N>> {
        self.rings.get(usize::try_from(cpu).ok()?)
    }

    /// Records `event` in the ring of `cpu` (the stored event's `cpu` is set to `cpu`). An event
    /// of a CPU beyond `CPUS` is ignored: the tracer must never fail its caller.
    pub fn record(&self, cpu: u32, event: TraceEvent) {
        if let Some(ring) = self.ring(cpu) {
            ring.record(TraceEvent { cpu, ..event });
        }
    }

    /// Prints every CPU's surviving events merged by timestamp, between `[trace] begin` and
    /// `[trace] end` (see the module documentation). Allocates nothing and takes no lock, so a
    /// panic handler or the watchdog can call it while other CPUs keep recording.
    pub fn dump(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(out, "[trace] begin")?;
        // A k-way merge: per CPU, the next ticket to read and the event read ahead.
        let mut next = [0u64; CPUS];
        let mut end = [0u64; CPUS];
        let mut ahead: [Option<TraceEvent>; CPUS] = [None; CPUS];
        for (i, ring) in self.rings.iter().enumerate() {
            (next[i], end[i]) = ring.window();
            ahead[i] = ring.next_event(&mut next[i], end[i]);
        }
        loop {
            let earliest = ahead
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.map(|e| (e.timestamp, i)))
                .min();
            let Some((_, i)) = earliest else { break };
            if let Some(event) = ahead[i] {
                write_line(out, &event)?;
            }
            ahead[i] = self.rings[i].next_event(&mut next[i], end[i]);
        }
        writeln!(out, "[trace] end")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::{String, ToString};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::vec::Vec;

    fn ev(timestamp: u64, kind: EventKind, a: u64, b: u64) -> TraceEvent {
        TraceEvent {
            timestamp,
            cpu: 0,
            kind,
            a,
            b,
        }
    }

    fn recent<const N: usize>(ring: &TraceRing<N>) -> Vec<TraceEvent> {
        let mut v = Vec::new();
        ring.for_each_recent(|e| v.push(e));
        v
    }

    fn timestamps<const N: usize>(ring: &TraceRing<N>) -> Vec<u64> {
        recent(ring).iter().map(|e| e.timestamp).collect()
    }

    #[test]
    fn kinds_round_trip_through_name_and_discriminant() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(k));
            assert_eq!(EventKind::from_u16(k as u16), Some(k));
            assert!(!k.name().contains(' '));
        }
        assert_eq!(EventKind::from_u16(0), None);
        assert_eq!(EventKind::from_name("nope"), None);
    }

    #[test]
    fn empty_ring_visits_nothing() {
        static RING: TraceRing<4> = TraceRing::new();
        assert!(recent(&RING).is_empty());
    }

    #[test]
    fn keeps_the_last_n_events_across_wrap_around() {
        let ring = TraceRing::<4>::new();
        for t in 1..=3 {
            ring.record(ev(t, EventKind::Log, t, 0));
        }
        assert_eq!(timestamps(&ring), [1, 2, 3]);
        for t in 4..=10 {
            ring.record(ev(t, EventKind::Log, t, 0));
        }
        assert_eq!(timestamps(&ring), [7, 8, 9, 10]);
        assert_eq!(ring.recorded(), 10);
        assert_eq!(ring.dropped(), 0);
    }

    #[test]
    fn a_record_interrupted_mid_write_is_skipped_then_published() {
        let ring = TraceRing::<8>::new();
        ring.record(ev(1, EventKind::Log, 1, 1));
        // The outer record reserves and claims its slot and writes half of its fields...
        let outer = ring.reserve();
        let slot = ring.claim(outer).unwrap();
        slot.timestamp.store(2, Ordering::Relaxed);
        slot.a.store(0xdead, Ordering::Relaxed);
        // ...when an interrupt records on the same ring.
        ring.record(ev(3, EventKind::Irq, 32, 0));
        // A dump now (a panic in the interrupt handler) sees both complete events, not the
        // half-written one.
        assert_eq!(timestamps(&ring), [1, 3]);
        // The outer record resumes and finishes.
        slot.write(&ev(2, EventKind::Switch, 0x1_0003, 0x2_0007));
        slot.publish(outer);
        let events = recent(&ring);
        assert_eq!(
            events.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(events[1], ev(2, EventKind::Switch, 0x1_0003, 0x2_0007));
        assert_eq!(ring.dropped(), 0);
    }

    #[test]
    fn a_nested_lap_over_a_busy_slot_drops_instead_of_waiting() {
        let ring = TraceRing::<4>::new();
        let outer = ring.reserve();
        let slot = ring.claim(outer).unwrap();
        slot.timestamp.store(100, Ordering::Relaxed);
        // The interrupt records a whole lap: its fourth event wants the outer record's slot.
        for t in 1..=4 {
            ring.record(ev(t, EventKind::Log, t, 0));
        }
        assert_eq!(ring.dropped(), 1);
        slot.write(&ev(100, EventKind::Log, 0, 0));
        slot.publish(outer);
        // Window = tickets 1..=4: ticket 4 was dropped, ticket 0 is a lap behind.
        assert_eq!(timestamps(&ring), [1, 2, 3]);
    }

    #[test]
    fn a_writer_overtaken_before_its_claim_drops_its_stale_event() {
        let ring = TraceRing::<4>::new();
        // Reserved ticket 0, interrupted before claiming slot 0.
        let outer = ring.reserve();
        for t in 1..=4 {
            ring.record(ev(t, EventKind::Log, t, 0));
        }
        // Ticket 4 already lives in slot 0: the older event must not overwrite it.
        assert!(ring.claim(outer).is_none());
        assert_eq!(ring.dropped(), 1);
        assert_eq!(timestamps(&ring), [1, 2, 3, 4]);
    }

    #[test]
    fn concurrent_writers_never_show_a_torn_event() {
        const WRITERS: u64 = 4;
        const MIN_EACH: u64 = 20_000;
        const PASSES: u64 = 2_000;
        // A small ring shared by every writer: laps are short, so writers collide on slots and
        // readers race overwrites all the time (far harsher than one ring per CPU).
        let ring = Arc::new(TraceRing::<16>::new());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let ring = Arc::clone(&ring);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut i = 0;
                    while i < MIN_EACH || !stop.load(Ordering::Relaxed) {
                        // Every field is derived from `a`, so a mix of two events shows.
                        let a = (w << 32) | i;
                        ring.record(TraceEvent {
                            timestamp: a ^ 0x5555,
                            cpu: w as u32,
                            kind: EventKind::ALL[(a % 13) as usize],
                            a,
                            b: !a,
                        });
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        // Read only while the writers are running.
        while ring.recorded() < 1_000 {
            std::thread::yield_now();
        }
        let mut seen = 0u64;
        for _ in 0..PASSES {
            let mut last = [None::<u64>; WRITERS as usize];
            ring.for_each_recent(|e| {
                assert_eq!(e.b, !e.a, "torn: {e:?}");
                assert_eq!(e.timestamp, e.a ^ 0x5555, "torn: {e:?}");
                assert_eq!(u64::from(e.cpu), e.a >> 32, "torn: {e:?}");
                assert_eq!(e.kind, EventKind::ALL[(e.a % 13) as usize], "torn: {e:?}");
                // One writer's events come out in its recording order.
                let w = e.cpu as usize;
                assert!(last[w].is_none_or(|l| l < e.a), "out of order: {e:?}");
                last[w] = Some(e.a);
                seen += 1;
            });
        }
        stop.store(true, Ordering::Relaxed);
        let written: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(seen > 0);
        assert_eq!(ring.recorded(), written);
        // Quiescent now: every ticket of the last lap is there unless its writer dropped it.
        let left = recent(&ring).len() as u64;
        assert!(left <= 16 && left + ring.dropped() >= 16);
    }

    #[test]
    fn per_cpu_dump_merges_by_timestamp_and_parses_back() {
        let trace = PerCpuTrace::<2, 8>::new();
        trace.record(0, ev(10, EventKind::Switch, 0x1_0003, 0x2_0007));
        trace.record(1, ev(5, EventKind::Irq, 32, 0));
        trace.record(
            1,
            ev(
                20,
                EventKind::LockAcquire,
                0xffff_8000_1000,
                0xffff_8000_2000,
            ),
        );
        trace.record(0, ev(15, EventKind::Watchdog, 1, 2_500_000_000));
        trace.record(7, ev(1, EventKind::Log, 0, 0)); // no such CPU: ignored
        let mut out = String::new();
        trace.dump(&mut out).unwrap();
        assert_eq!(
            out,
            "[trace] begin\n\
             [trace] 0x1 0x5 irq 0x20 0x0\n\
             [trace] 0x0 0xa switch 0x10003 0x20007\n\
             [trace] 0x0 0xf watchdog 0x1 0x9502f900\n\
             [trace] 0x1 0x14 lock-acquire 0xffff80001000 0xffff80002000\n\
             [trace] end\n"
        );
        let parsed: Vec<TraceEvent> = out.lines().filter_map(parse_line).collect();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[0],
            TraceEvent {
                cpu: 1,
                ..ev(5, EventKind::Irq, 32, 0)
            }
        );
        assert_eq!(parsed[1], ev(10, EventKind::Switch, 0x1_0003, 0x2_0007));
        let again: String = parsed
            .iter()
            .map(|e| {
                let mut s = String::new();
                write_line(&mut s, e).unwrap();
                s
            })
            .collect();
        assert_eq!(
            again,
            out.lines()
                .skip(1)
                .take(4)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
    }

    #[test]
    fn parse_line_accepts_the_form_and_nothing_else() {
        assert_eq!(
            parse_line("noise[trace] 0x2 0x10 wake 0x10001 0x0\r"),
            Some(TraceEvent {
                timestamp: 16,
                cpu: 2,
                kind: EventKind::Wake,
                a: 0x1_0001,
                b: 0
            })
        );
        assert_eq!(
            parse_line("[trace] 2 10 wake 10001 0").map(|e| e.a),
            Some(0x1_0001)
        );
        for bad in [
            "[trace] begin",
            "[trace] end",
            "[trace] site 0x10 a.rs:1:2",
            "[trace] 0x0 0x1 bogus 0x0 0x0",
            "[trace] 0x0 0x1 log 0x0",
            "[trace] 0x0 0x1 log 0x0 0x0 0x0",
            "[trace] 0x0 0x1 log 0x 0x0",
            "[trace] 0x100000000 0x1 log 0x0 0x0",
            "[stage] trace ok",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
        assert_eq!(
            parse_site_line("[trace] site 0xffff0000 kernel-core/src/lock.rs:10:5\r"),
            Some((0xffff_0000, "kernel-core/src/lock.rs:10:5"))
        );
        assert_eq!(parse_site_line("[trace] site 0x10"), None);
    }

    #[test]
    fn human_form() {
        let show = |kind, a, b| {
            format!(
                "{}",
                TraceEvent {
                    timestamp: 123_456,
                    cpu: 0,
                    kind,
                    a,
                    b
                }
            )
        };
        let tid = |index, generation| ThreadId::new(index, generation).as_u64();
        assert_eq!(
            show(EventKind::Switch, tid(3, 1), tid(7, 2)),
            "t=123456 cpu0 switch 3.1 -> 7.2"
        );
        assert_eq!(show(EventKind::Irq, 27, 0), "t=123456 cpu0 irq 27");
        assert_eq!(
            show(EventKind::Syscall, 4, tid(2, 1)),
            "t=123456 cpu0 syscall 4 by 2.1"
        );
        assert_eq!(
            show(EventKind::LockContended, 0x1000, 0x2000),
            "t=123456 cpu0 lock-contended lock 0x1000 at site 0x2000"
        );
        assert_eq!(
            show(EventKind::Wake, tid(5, 3), 0),
            "t=123456 cpu0 wake 5.3 by 0.0"
        );
        assert_eq!(
            show(EventKind::Watchdog, 1, 2_000_000_000),
            "t=123456 cpu0 watchdog cpu1 stalled for 2000 ms"
        );
        assert_eq!(Tid(tid(16, 42)).to_string(), "16.42");
    }
}

//! Synchronous endpoints: the rendezvous of senders and receivers, and the reply relation.
//!
//! Owns the endpoint table (generation-checked [`EndpointId`]s), the FIFO queues of blocked
//! senders and waiting receivers of each endpoint, and the IPC state of every thread: idle,
//! queued to send (with its message), queued to receive, or awaiting a reply (from exactly one
//! thread, under exactly one [`ReplyToken`]). It must never deliver a reply to anyone but the
//! caller that token was issued for, never leave a cancelled or exited thread in a queue, and never
//! drop a message: every message handed in is delivered, or comes back in a [`Refused`] or a
//! [`Cancelled`].
//!
//! # Design
//!
//! The queues are intrusive doubly-linked lists threaded through the per-thread records (a thread
//! waits on at most one endpoint at a time), as in seL4 and [`crate::sched::RunQueue`]. So no
//! endpoint can run out of queue space (any number of threads may block on one endpoint), the
//! whole table is a few fixed arrays built by a `const fn`, and every operation on the message
//! path, cancellation included, is O(1). Only [`Endpoints::exit`] (a kill, which must find every
//! caller awaiting the dying thread's reply) scans the thread records.
//!
//! A blocked sender's message waits in its record, not in its registers: the table is then a
//! complete, host-testable model of IPC, and a queued message cannot be confused with the
//! registers of whatever the thread does next.
//!
//! A reply token packs the caller's thread-slot index (low 32 bits) with a per-slot call
//! sequence number (high 32 bits, never 0, incremented at every delivered call and never reset,
//! not even when the slot is reused). A token is accepted only while its caller's record says
//! "awaiting the reply of *this* replier under *this* sequence number", so a forged, replayed,
//! misdirected or stale token (caller timed out, was killed, or called again since) is refused.

use super::message::{Delivery, Message};
use crate::cap::EndpointId;
use crate::thread::{MAX_THREADS, ThreadId};
use abi::{Badge, Error, ReplyToken};
use core::{fmt, mem};

/// "No thread" / "no endpoint" in the link fields.
const NIL: u16 = u16::MAX;

/// A FIFO of thread-slot indices, linked through [`Record::next`]/[`Record::prev`].
#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u16,
    tail: u16,
    len: u16,
}

impl Queue {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

#[derive(Debug, Clone, Copy)]
struct EndpointSlot {
    /// Generation of the current (or, while dead, the last) occupant. 0: never created.
    generation: u32,
    live: bool,
    /// Threads blocked in `send`/`call`. Never non-empty together with `receivers`: a sender only
    /// queues when nobody receives, and the other way round.
    senders: Queue,
    /// Threads blocked in `recv`/`reply_recv`.
    receivers: Queue,
    /// Next free slot (meaningful only on the free list).
    next_free: u16,
}

/// What a thread is doing in IPC.
#[derive(Debug)]
enum Wait {
    Idle,
    /// Queued on `endpoint`'s senders.
    Send {
        endpoint: u16,
        badge: Badge,
        msg: Message,
        call: bool,
    },
    /// Queued on `endpoint`'s receivers.
    Recv {
        endpoint: u16,
    },
    /// Its call was delivered to `replier`, which holds the token with sequence number `seq`.
    Reply {
        replier: ThreadId,
        seq: u32,
    },
}

/// The IPC state of one thread slot.
#[derive(Debug)]
struct Record {
    /// The thread the record is about while it is not `Idle`.
    id: ThreadId,
    wait: Wait,
    next: u16,
    prev: u16,
    /// The sequence number of the last call delivered from this slot (0: none yet).
    seq: u32,
}

/// Why an operation that took a message refused it; nothing changed, and the message comes back
/// whole (with any capability in flight) so that the glue can give the capability back.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// The error for the calling thread.
    pub error: Error,
    /// The message it tried to send.
    pub msg: Message,
}

/// What [`Endpoints::send`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// A receiver was waiting: it gets `delivery` and becomes ready; the sender's `send` is
    /// complete and it carries on.
    Delivered {
        /// The receiver to wake.
        receiver: ThreadId,
        /// What it receives.
        delivery: Delivery,
    },
    /// Nobody was waiting: the sender is queued with its message; block it.
    Blocked,
}

/// What [`Endpoints::call`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// A receiver was waiting: it gets `delivery` (with the reply token), the caller now awaits
    /// the reply. The fast path: switch from the caller straight to the receiver.
    SwitchTo {
        /// The receiver to run.
        receiver: ThreadId,
        /// What it receives.
        delivery: Delivery,
    },
    /// Nobody was waiting: the caller is queued with its message; block it.
    Blocked,
}

/// A message taken from a queued sender.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    /// The thread that sent it.
    pub sender: ThreadId,
    /// What the receiver gets.
    pub delivery: Delivery,
    /// The sender was in `send`, which is now complete: wake it (success). False for a `call`:
    /// the caller keeps waiting, now for the reply (its timeout keeps running).
    pub wake_sender: bool,
}

/// What [`Endpoints::recv`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvOutcome {
    /// A sender was queued: here is its message; the receiver carries on.
    Received(Received),
    /// Nobody was sending: the receiver is queued; block it.
    Blocked,
}

/// A reply on its way to its caller.
#[derive(Debug, PartialEq, Eq)]
pub struct Replied {
    /// The caller: write `msg` into its registers and wake it.
    pub caller: ThreadId,
    /// The reply.
    pub msg: Message,
}

/// What [`Endpoints::reply_recv`] decided. The reply is always delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyRecvOutcome {
    /// A sender was queued: the replier carries on with its message; the caller becomes ready.
    Received {
        /// The reply to deliver.
        replied: Replied,
        /// What the replier received.
        received: Received,
    },
    /// Nobody was sending: the replier is queued as a receiver. The fast path: switch from the
    /// replier straight to the caller.
    SwitchToCaller {
        /// The reply to deliver.
        replied: Replied,
    },
    /// Nobody was sending and the replier may not block: it returns
    /// [`Error::WouldBlock`] (its reply stays delivered).
    RepliedOnly {
        /// The reply to deliver.
        replied: Replied,
    },
}

/// What a cancelled thread was doing; it is no longer in any queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// It was queued to send: the message was not delivered and comes back (with any capability
    /// in flight).
    Send {
        /// The undelivered message.
        msg: Message,
        /// It was a `call`.
        call: bool,
    },
    /// It was queued to receive.
    Recv,
    /// Its call had been delivered and it was awaiting the reply: the replier's token is now
    /// refused.
    Reply {
        /// The thread that held the token.
        replier: ThreadId,
    },
}

/// What a thread is blocked on in IPC (for dumps: a hang must explain itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Queued to send on an endpoint.
    Send {
        /// The endpoint.
        endpoint: EndpointId,
        /// In `call`, not `send`.
        call: bool,
    },
    /// Queued to receive on an endpoint.
    Recv {
        /// The endpoint.
        endpoint: EndpointId,
    },
    /// Awaiting the reply of a thread.
    Reply {
        /// The thread that holds the reply token.
        replier: ThreadId,
    },
}

/// The endpoint table and the IPC state of every thread: `E` endpoints ([`MAX_ENDPOINTS`] in the
/// kernel), `T` thread slots ([`MAX_THREADS`]), indexed by [`ThreadId::index`].
///
/// [`MAX_ENDPOINTS`]: super::MAX_ENDPOINTS
pub struct Endpoints<const E: usize = { super::MAX_ENDPOINTS }, const T: usize = MAX_THREADS> {
    endpoints: [EndpointSlot; E],
    threads: [Record; T],
    free_head: u16,
    free_tail: u16,
    live: usize,
}

impl<const E: usize, const T: usize> fmt::Debug for Endpoints<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("capacity", &E)
            .field("live", &self.live)
            .finish()
    }
}

impl<const E: usize, const T: usize> Default for Endpoints<E, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const E: usize, const T: usize> Endpoints<E, T> {
    /// No endpoints, every thread idle.
    #[must_use]
    pub const fn new() -> Self {
        // Indices are u16 in the links, with NIL reserved.
        const { assert!(E < NIL as usize && T < NIL as usize) };
        let mut endpoints = [EndpointSlot {
            generation: 0,
            live: false,
            senders: Queue::EMPTY,
            receivers: Queue::EMPTY,
            next_free: NIL,
        }; E];
        let mut i = 0;
        while i + 1 < E {
            endpoints[i].next_free = (i + 1) as u16;
            i += 1;
        }
        Self {
            endpoints,
            threads: [const {
                Record {
                    id: ThreadId::from_u64(0),
                    wait: Wait::Idle,
                    next: NIL,
                    prev: NIL,
                    seq: 0,
                }
            }; T],
            free_head: if E == 0 { NIL } else { 0 },
            free_tail: if E == 0 { NIL } else { (E - 1) as u16 },
            live: 0,
        }
    }

    /// Live endpoints.
    #[must_use]
    pub const fn live(&self) -> usize {
        self.live
    }

    /// Creates an endpoint with empty queues. [`Error::OutOfMemory`] if the table is full.
    pub fn create(&mut self) -> Result<EndpointId, Error> {
        if self.free_head == NIL {
            return Err(Error::OutOfMemory);
        }
        let e = self.free_head as usize;
        let slot = &mut self.endpoints[e];
        self.free_head = slot.next_free;
        if self.free_head == NIL {
            self.free_tail = NIL;
        }
        // Destroy retires a slot at generation u32::MAX, so this never wraps.
        slot.generation += 1;
        slot.live = true;
        slot.next_free = NIL;
        self.live += 1;
        Ok(EndpointId::new(e as u32, slot.generation))
    }

    /// Destroys an endpoint. Every thread queued on it is withdrawn and handed to `evicted` with
    /// what it was doing (senders with their undelivered messages), senders first, each queue in
    /// order; the glue wakes them with [`Error::Killed`]. Calls already delivered from this
    /// endpoint are unaffected (a reply goes from thread to thread). Every ID of the endpoint goes
    /// stale. Errors: those of an endpoint ID (see [`send`](Self::send)).
    pub fn destroy(
        &mut self,
        endpoint: EndpointId,
        mut evicted: impl FnMut(ThreadId, Cancelled),
    ) -> Result<(), Error> {
        let e = self.check_endpoint(endpoint)?;
        let Self {
            endpoints, threads, ..
        } = self;
        while let Some(i) = pop_front(&mut endpoints[e].senders, threads) {
            if let Wait::Send { msg, call, .. } = mem::replace(&mut threads[i].wait, Wait::Idle) {
                evicted(threads[i].id, Cancelled::Send { msg, call });
            }
        }
        while let Some(i) = pop_front(&mut endpoints[e].receivers, threads) {
            threads[i].wait = Wait::Idle;
            evicted(threads[i].id, Cancelled::Recv);
        }
        let slot = &mut self.endpoints[e];
        slot.live = false;
        self.live -= 1;
        // A slot at the last generation is retired rather than reused: a wrap would bring IDs of
        // its first occupant (still held in capabilities) back to life.
        if slot.generation != u32::MAX {
            match self.free_tail {
                NIL => self.free_head = e as u16,
                tail => self.endpoints[tail as usize].next_free = e as u16,
            }
            self.free_tail = e as u16;
        }
        Ok(())
    }

    /// `send`: delivers `msg` (sent through a capability with `badge`) to the first waiting
    /// receiver, or queues `sender` behind the endpoint's other senders.
    ///
    /// Refused (nothing changed, the message comes back):
    /// - [`Error::InvalidCapability`] / [`Error::StaleCapability`]: the endpoint ID was never
    ///   created / the endpoint was destroyed;
    /// - [`Error::InvalidArgument`]: the thread's slot index is outside the table;
    /// - [`Error::Busy`]: the thread is already blocked in IPC (a glue bug: a blocked thread does
    ///   not make calls);
    /// - [`Error::WouldBlock`]: no receiver and `may_block` is false.
    pub fn send(
        &mut self,
        endpoint: EndpointId,
        sender: ThreadId,
        badge: Badge,
        msg: Message,
        may_block: bool,
    ) -> Result<SendOutcome, Refused> {
        let (e, s) = match self.check_caller(endpoint, sender) {
            Ok(found) => found,
            Err(error) => return Err(Refused { error, msg }),
        };
        let delivery = Delivery {
            badge,
            msg,
            reply: ReplyToken::NONE,
        };
        match self.take_receiver(e) {
            Some(receiver) => Ok(SendOutcome::Delivered { receiver, delivery }),
            None if !may_block => Err(Refused {
                error: Error::WouldBlock,
                msg: delivery.msg,
            }),
            None => {
                self.queue_sender(e, s, sender, badge, delivery.msg, false);
                Ok(SendOutcome::Blocked)
            }
        }
    }

    /// `call`: like [`send`](Self::send), and the caller then awaits the reply. If a receiver
    /// was waiting the call is delivered now with a fresh reply token, and the decision is to
    /// switch to the receiver. Refused as [`send`](Self::send) (with `may_block` false only
    /// delivery is immediate-or-refused; the reply is still awaited).
    pub fn call(
        &mut self,
        endpoint: EndpointId,
        caller: ThreadId,
        badge: Badge,
        msg: Message,
        may_block: bool,
    ) -> Result<CallOutcome, Refused> {
        let (e, c) = match self.check_caller(endpoint, caller) {
            Ok(found) => found,
            Err(error) => return Err(Refused { error, msg }),
        };
        match self.take_receiver(e) {
            Some(receiver) => {
                let reply = self.await_reply(c, caller, receiver);
                Ok(CallOutcome::SwitchTo {
                    receiver,
                    delivery: Delivery { badge, msg, reply },
                })
            }
            None if !may_block => Err(Refused {
                error: Error::WouldBlock,
                msg,
            }),
            None => {
                self.queue_sender(e, c, caller, badge, msg, true);
                Ok(CallOutcome::Blocked)
            }
        }
    }

    /// `recv`: takes the message of the first queued sender, or queues `receiver` behind the
    /// endpoint's other receivers. A message from a `call` comes with a fresh reply token, and its
    /// caller now awaits `receiver`'s reply.
    ///
    /// Errors (nothing changed): as for [`send`](Self::send).
    pub fn recv(
        &mut self,
        endpoint: EndpointId,
        receiver: ThreadId,
        may_block: bool,
    ) -> Result<RecvOutcome, Error> {
        let (e, r) = self.check_caller(endpoint, receiver)?;
        match self.take_sender(e, receiver) {
            Some(received) => Ok(RecvOutcome::Received(received)),
            None if !may_block => Err(Error::WouldBlock),
            None => {
                self.queue_receiver(e, r, receiver);
                Ok(RecvOutcome::Blocked)
            }
        }
    }

    /// `reply`: delivers `msg` to the caller `token` was issued for, if `replier` holds that token
    /// and the caller still awaits it. Never blocks.
    ///
    /// Refused with [`Error::InvalidReply`] (nothing changed, the message comes back) if the token
    /// is forged, was issued to another thread, was already used, or its caller gave up (timeout)
    /// or was killed, or has called again since.
    pub fn reply(
        &mut self,
        replier: ThreadId,
        token: ReplyToken,
        msg: Message,
    ) -> Result<Replied, Refused> {
        match self.check_reply(replier, token) {
            Ok(c) => Ok(self.complete_reply(c, msg)),
            Err(error) => Err(Refused { error, msg }),
        }
    }

    /// `reply_recv`: [`reply`](Self::reply), then [`recv`](Self::recv) on `endpoint`, as one
    /// decision. Everything is checked before anything changes: refused (nothing changed) with the
    /// errors of either, but never with [`Error::WouldBlock`], which only concerns the receive
    /// ([`ReplyRecvOutcome::RepliedOnly`]). With no reply to send, use [`recv`](Self::recv).
    pub fn reply_recv(
        &mut self,
        endpoint: EndpointId,
        replier: ThreadId,
        token: ReplyToken,
        msg: Message,
        may_block: bool,
    ) -> Result<ReplyRecvOutcome, Refused> {
        let checked = self
            .check_caller(endpoint, replier)
            .and_then(|(e, r)| Ok((e, r, self.check_reply(replier, token)?)));
        let (e, r, c) = match checked {
            Ok(found) => found,
            Err(error) => return Err(Refused { error, msg }),
        };
        let replied = self.complete_reply(c, msg);
        Ok(match self.take_sender(e, replier) {
            Some(received) => ReplyRecvOutcome::Received { replied, received },
            None if !may_block => ReplyRecvOutcome::RepliedOnly { replied },
            None => {
                self.queue_receiver(e, r, replier);
                ReplyRecvOutcome::SwitchToCaller { replied }
            }
        })
    }

    /// The register-only fast path of [`call`](Self::call): if a receiver waits on `endpoint`, it
    /// is dequeued and `caller` now awaits its reply, as `call` would decide. Returns the
    /// receiver and the reply token; the glue moves the words from register file to register
    /// file itself, with no [`Message`] in between.
    ///
    /// `None`, with nothing changed, whenever `call` would decide anything else or refuse: the
    /// endpoint is not live, the caller is not idle, or no receiver waits. The caller then takes
    /// the full path, which explains the refusal.
    pub fn call_waiting(
        &mut self,
        endpoint: EndpointId,
        caller: ThreadId,
    ) -> Option<(ThreadId, ReplyToken)> {
        let (e, c) = self.check_caller(endpoint, caller).ok()?;
        let receiver = self.take_receiver(e)?;
        Some((receiver, self.await_reply(c, caller, receiver)))
    }

    /// The register-only fast path of [`reply_recv`](Self::reply_recv) with a receive that may
    /// block: if `token` is a reply `replier` owes, `accept` agrees to the caller it names, and no
    /// sender waits on `endpoint`, the reply is settled and `replier` is queued to receive, as
    /// `reply_recv` with `may_block` would decide ([`ReplyRecvOutcome::SwitchToCaller`]). Returns
    /// the caller; the glue writes the reply into its registers. (A receive that may not block
    /// takes the full path: it never queues the replier.)
    ///
    /// `None`, with nothing changed (`accept` may have been asked), whenever `reply_recv` would
    /// decide anything else or refuse. `accept` lets the glue keep callers whose reply it must
    /// handle itself (a faulting thread's pager call) off this path.
    pub fn reply_then_wait(
        &mut self,
        endpoint: EndpointId,
        replier: ThreadId,
        token: ReplyToken,
        accept: impl FnOnce(ThreadId) -> bool,
    ) -> Option<ThreadId> {
        let (e, r) = self.check_caller(endpoint, replier).ok()?;
        let c = self.check_reply(replier, token).ok()?;
        let caller = self.threads[c].id;
        if self.endpoints[e].senders.head != NIL || !accept(caller) {
            return None;
        }
        self.threads[c].wait = Wait::Idle;
        self.queue_receiver(e, r, replier);
        Some(caller)
    }

    /// Withdraws `thread` from whatever it waits for in IPC (its timeout expired, or it is being
    /// killed): out of its endpoint queue (with its undelivered message), or no longer awaiting a
    /// reply (the replier's token is then refused). `None` if it was not blocked in IPC (for
    /// example because a delivery woke it first): there is nothing to cancel, and the delivery
    /// stands.
    pub fn cancel(&mut self, thread: ThreadId) -> Option<Cancelled> {
        let i = self.blocked_slot(thread)?;
        let Self {
            endpoints, threads, ..
        } = self;
        match mem::replace(&mut threads[i].wait, Wait::Idle) {
            Wait::Send {
                endpoint,
                msg,
                call,
                ..
            } => {
                unlink(&mut endpoints[endpoint as usize].senders, threads, i);
                Some(Cancelled::Send { msg, call })
            }
            Wait::Recv { endpoint } => {
                unlink(&mut endpoints[endpoint as usize].receivers, threads, i);
                Some(Cancelled::Recv)
            }
            Wait::Reply { replier, .. } => Some(Cancelled::Reply { replier }),
            Wait::Idle => None,
        }
    }

    /// `thread` is going away (killed, or exited): [`cancel`](Self::cancel)s it, and releases
    /// every caller awaiting its reply, handing each to `orphaned` (the glue wakes them with
    /// [`Error::Killed`]). Afterwards no record mentions `thread`, so its slot can be reused.
    /// O(T).
    pub fn exit(
        &mut self,
        thread: ThreadId,
        mut orphaned: impl FnMut(ThreadId),
    ) -> Option<Cancelled> {
        let cancelled = self.cancel(thread);
        for record in &mut self.threads {
            if matches!(record.wait, Wait::Reply { replier, .. } if replier == thread) {
                record.wait = Wait::Idle;
                orphaned(record.id);
            }
        }
        cancelled
    }

    /// What `thread` is blocked on in IPC, if anything.
    #[must_use]
    pub fn blocked(&self, thread: ThreadId) -> Option<Blocked> {
        let i = self.blocked_slot(thread)?;
        let id = |e: u16| EndpointId::new(u32::from(e), self.endpoints[e as usize].generation);
        match self.threads[i].wait {
            Wait::Send { endpoint, call, .. } => Some(Blocked::Send {
                endpoint: id(endpoint),
                call,
            }),
            Wait::Recv { endpoint } => Some(Blocked::Recv {
                endpoint: id(endpoint),
            }),
            Wait::Reply { replier, .. } => Some(Blocked::Reply { replier }),
            Wait::Idle => None,
        }
    }

    /// The threads queued to send on `endpoint`, first to be served first.
    pub fn senders(
        &self,
        endpoint: EndpointId,
    ) -> Result<impl Iterator<Item = ThreadId> + '_, Error> {
        let e = self.check_endpoint(endpoint)?;
        Ok(self.iter_queue(self.endpoints[e].senders))
    }

    /// The threads queued to receive on `endpoint`, first to be served first.
    pub fn receivers(
        &self,
        endpoint: EndpointId,
    ) -> Result<impl Iterator<Item = ThreadId> + '_, Error> {
        let e = self.check_endpoint(endpoint)?;
        Ok(self.iter_queue(self.endpoints[e].receivers))
    }

    fn iter_queue(&self, queue: Queue) -> impl Iterator<Item = ThreadId> + '_ {
        let mut next = queue.head;
        core::iter::from_fn(move || {
            let record = self.threads.get(usize::from(next))?;
            next = record.next;
            Some(record.id)
        })
    }

    /// The endpoint's slot, if `endpoint` names a live endpoint.
    /// Whether `endpoint` names a live endpoint (not destroyed, its slot not reused).
    #[must_use]
    pub fn is_live(&self, endpoint: EndpointId) -> bool {
        self.check_endpoint(endpoint).is_ok()
    }

    fn check_endpoint(&self, endpoint: EndpointId) -> Result<usize, Error> {
        let e = endpoint.index();
        let Some(slot) = self.endpoints.get(e) else {
            return Err(Error::InvalidCapability);
        };
        let g = endpoint.generation();
        if g == 0 || g > slot.generation {
            Err(Error::InvalidCapability)
        } else if g < slot.generation || !slot.live {
            Err(Error::StaleCapability)
        } else {
            Ok(e)
        }
    }

    /// The endpoint's slot and the calling thread's, if the endpoint is live and the thread idle.
    fn check_caller(
        &self,
        endpoint: EndpointId,
        thread: ThreadId,
    ) -> Result<(usize, usize), Error> {
        let e = self.check_endpoint(endpoint)?;
        let t = thread.index();
        match self.threads.get(t) {
            None => Err(Error::InvalidArgument),
            Some(record) if !matches!(record.wait, Wait::Idle) => Err(Error::Busy),
            Some(_) => Ok((e, t)),
        }
    }

    /// The caller's slot, if `token` is one `replier` holds for a caller still awaiting it.
    fn check_reply(&self, replier: ThreadId, token: ReplyToken) -> Result<usize, Error> {
        let raw = token.into_raw();
        let (c, seq) = ((raw & 0xffff_ffff) as usize, (raw >> 32) as u32);
        match self.threads.get(c) {
            Some(Record {
                wait:
                    Wait::Reply {
                        replier: holder,
                        seq: issued,
                    },
                ..
            }) if *holder == replier && *issued == seq => Ok(c),
            _ => Err(Error::InvalidReply),
        }
    }

    /// The slot of `thread`, if it is blocked in IPC (under this very ID).
    fn blocked_slot(&self, thread: ThreadId) -> Option<usize> {
        let i = thread.index();
        let record = self.threads.get(i)?;
        (record.id == thread && !matches!(record.wait, Wait::Idle)).then_some(i)
    }

    /// Dequeues the first receiver of endpoint `e` (now idle), if any.
    fn take_receiver(&mut self, e: usize) -> Option<ThreadId> {
        let Self {
            endpoints, threads, ..
        } = self;
        let r = pop_front(&mut endpoints[e].receivers, threads)?;
        threads[r].wait = Wait::Idle;
        Some(threads[r].id)
    }

    /// Dequeues the first sender of endpoint `e` and hands its message to `receiver`; a caller
    /// now awaits `receiver`'s reply.
    fn take_sender(&mut self, e: usize, receiver: ThreadId) -> Option<Received> {
        let s = pop_front(&mut self.endpoints[e].senders, &mut self.threads)?;
        let sender = self.threads[s].id;
        let Wait::Send {
            badge, msg, call, ..
        } = mem::replace(&mut self.threads[s].wait, Wait::Idle)
        else {
            // Only `queue_sender` links a record into a sender queue, and always with `Send`.
            panic!("endpoint sender queue holds a thread that is not sending");
        };
        let reply = if call {
            self.await_reply(s, sender, receiver)
        } else {
            ReplyToken::NONE
        };
        Some(Received {
            sender,
            delivery: Delivery { badge, msg, reply },
            wake_sender: !call,
        })
    }

    /// Records that the caller in slot `c` awaits `replier`'s reply; returns the token.
    fn await_reply(&mut self, c: usize, caller: ThreadId, replier: ThreadId) -> ReplyToken {
        let record = &mut self.threads[c];
        // Never 0, so that no token has sequence 0 and raw tokens below 2^32 are never valid.
        record.seq = match record.seq.wrapping_add(1) {
            0 => 1,
            seq => seq,
        };
        record.id = caller;
        record.wait = Wait::Reply {
            replier,
            seq: record.seq,
        };
        ReplyToken::from_raw((u64::from(record.seq) << 32) | c as u64)
    }

    fn complete_reply(&mut self, c: usize, msg: Message) -> Replied {
        self.threads[c].wait = Wait::Idle;
        Replied {
            caller: self.threads[c].id,
            msg,
        }
    }

    fn queue_sender(
        &mut self,
        e: usize,
        s: usize,
        sender: ThreadId,
        badge: Badge,
        msg: Message,
        call: bool,
    ) {
        let record = &mut self.threads[s];
        record.id = sender;
        record.wait = Wait::Send {
            endpoint: e as u16,
            badge,
            msg,
            call,
        };
        push_back(&mut self.endpoints[e].senders, &mut self.threads, s);
    }

    fn queue_receiver(&mut self, e: usize, r: usize, receiver: ThreadId) {
        let record = &mut self.threads[r];
        record.id = receiver;
        record.wait = Wait::Recv { endpoint: e as u16 };
        push_back(&mut self.endpoints[e].receivers, &mut self.threads, r);
    }

    /// Test hook: sets the generation of dead endpoint slot `e` (to reach generation exhaustion
    /// without 4 billion creations).
    #[cfg(all(test, not(loom)))]
    pub(super) fn set_generation(&mut self, e: usize, generation: u32) {
        assert!(!self.endpoints[e].live);
        self.endpoints[e].generation = generation;
    }

    /// Test hook: checks every structural invariant, panicking with the first one broken.
    ///
    /// - sender and receiver queues of one endpoint are never both non-empty;
    /// - each queue's links are consistent both ways and its length is right;
    /// - every queued record waits on that endpoint, in that role;
    /// - every record waiting to send or receive is in exactly its endpoint's queue;
    /// - dead endpoints have empty queues; the live count is right.
    #[cfg(all(test, not(loom)))]
    pub(super) fn check_invariants(&self) {
        let mut queued = 0;
        let mut live = 0;
        for (e, slot) in self.endpoints.iter().enumerate() {
            live += usize::from(slot.live);
            if !slot.live {
                assert_eq!(
                    slot.senders.len + slot.receivers.len,
                    0,
                    "dead endpoint {e}"
                );
            }
            assert!(
                slot.senders.len == 0 || slot.receivers.len == 0,
                "endpoint {e} has both senders and receivers"
            );
            for (queue, sending) in [(slot.senders, true), (slot.receivers, false)] {
                let mut prev = NIL;
                let mut at = queue.head;
                let mut n = 0;
                while at != NIL {
                    let record = &self.threads[at as usize];
                    assert_eq!(record.prev, prev, "endpoint {e}: broken back link at {at}");
                    let ok = match record.wait {
                        Wait::Send { endpoint, .. } => sending && endpoint as usize == e,
                        Wait::Recv { endpoint } => !sending && endpoint as usize == e,
                        _ => false,
                    };
                    assert!(
                        ok,
                        "endpoint {e}: thread slot {at} queued in the wrong role"
                    );
                    prev = at;
                    at = record.next;
                    n += 1;
                    assert!(n <= T, "endpoint {e}: queue loops");
                }
                assert_eq!(queue.tail, prev, "endpoint {e}: wrong tail");
                assert_eq!(usize::from(queue.len), n, "endpoint {e}: wrong length");
                queued += n;
            }
        }
        let waiting = self
            .threads
            .iter()
            .filter(|r| matches!(r.wait, Wait::Send { .. } | Wait::Recv { .. }))
            .count();
        assert_eq!(queued, waiting, "a thread waits outside any queue");
        assert_eq!(live, self.live);
    }
}

fn push_back(queue: &mut Queue, threads: &mut [Record], i: usize) {
    threads[i].next = NIL;
    threads[i].prev = queue.tail;
    match queue.tail {
        NIL => queue.head = i as u16,
        tail => threads[tail as usize].next = i as u16,
    }
    queue.tail = i as u16;
    queue.len += 1;
}

fn pop_front(queue: &mut Queue, threads: &mut [Record]) -> Option<usize> {
    if queue.head == NIL {
        return None;
    }
    let i = queue.head as usize;
    unlink(queue, threads, i);
    Some(i)
}

/// Removes slot `i` from `queue`, which it must be in.
fn unlink(queue: &mut Queue, threads: &mut [Record], i: usize) {
    let (prev, next) = (threads[i].prev, threads[i].next);
    match prev {
        NIL => queue.head = next,
        p => threads[p as usize].next = next,
    }
    match next {
        NIL => queue.tail = prev,
        n => threads[n as usize].prev = prev,
    }
    threads[i].next = NIL;
    threads[i].prev = NIL;
    queue.len -= 1;
}

//! IPC: the portable state machines of synchronous endpoints and asynchronous notifications.
//!
//! Owns *who meets whom*: which thread a message goes to, which thread blocks, which waits for a
//! reply and from whom, what a timeout or a kill withdraws, and which bits a notification holds.
//! Every operation is a **decision** the kernel glue carries out: it returns the message to put in
//! a receiver's registers, the thread to wake, whether to switch straight to another thread (the
//! fast path), or that the caller must block. It must never touch registers, switch contexts,
//! touch the scheduler or the timer, allocate, or block; and it must never leave a thread in a
//! queue it can no longer be woken from, or lose a message, a capability in flight or a signalled
//! bit.
//!
//! - [`Endpoints`]: the table of endpoints and the IPC state of every thread (blocked sending,
//!   blocked receiving, or awaiting a reply). `&mut self` throughout, under one IPC lock, O(1) per
//!   operation on the message path.
//! - [`Notification`]: one notification word, lock-free (it is signalled from interrupt handlers).
//! - [`Message`], [`Delivery`]: what travels.
//!
//! # What the glue does with a decision
//!
//! - `Blocked`: block the calling thread (through [`crate::thread::ThreadTable::block`]) and, for
//!   a finite [`Timeout`](abi::Timeout), arm its deadline in the timer queue.
//! - A thread to wake (a receiver that got a message, a sender whose send completed, a caller that
//!   got its reply): write the outcome into its saved registers, cancel its deadline, make it
//!   ready. `SwitchTo…` outcomes say the glue may switch to that thread directly, without the run
//!   queue (the IPC fast path), when scheduling policy allows it.
//! - A timeout expired, or a blocked thread is killed: [`Endpoints::cancel`] (or
//!   [`Endpoints::exit`] for a kill, which also releases the callers awaiting the dying thread's
//!   reply) or [`Notification::cancel_wait`]. If that returns "nothing to cancel", the thread was
//!   woken by a delivery in the meantime and the delivery wins: the thread completes normally.
//! - Capabilities in flight: the glue lends the sender's capability
//!   ([`CapTable::lend`](crate::cap::CapTable::lend)) and puts the copy in the [`Message`]. On
//!   delivery it inserts the copy into the receiver's table and the sender settles its lend when
//!   its call completes; a [`Refused`] or cancelled message comes back whole, so the sender
//!   unlends. Nothing is ever dropped here.
//!
//! The glue records, per blocked thread, whether it waits on an endpoint (this table) or on a
//! notification (and which), to route a cancellation.

mod endpoint;
mod message;
mod notification;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use endpoint::{
    Blocked, CallOutcome, Cancelled, Endpoints, Received, RecvOutcome, Refused, Replied,
    ReplyRecvOutcome, SendOutcome,
};
pub use message::{Delivery, Message};
pub use notification::{Notification, SignalOutcome, WaitOutcome};

/// Endpoints in the kernel's endpoint table.
pub const MAX_ENDPOINTS: usize = 1024;

//! Host tests of IPC: message normal form; endpoint lifetimes; delivery, FIFO order and the fast
//! path; replies reaching exactly the right caller; cancellation and exit leaving the queues
//! consistent; a deterministic randomized run of the endpoint table against a model; and
//! notifications (bits never lost), including a std-threads stress.

use super::*;
use crate::cap::{Capability, EndpointId, ObjectRef};
use crate::thread::ThreadId;
use abi::{Error, MSG_WORDS, MessageInfo, ReplyToken, UNBADGED};
use std::collections::VecDeque;
use std::vec::Vec;

type Small = Endpoints<4, 8>;

fn t(i: u32) -> ThreadId {
    ThreadId::new(i, 1)
}

/// A message that says who made it: label `label`, words `[label, label + 1]`.
fn msg(label: u32) -> Message {
    let l = u64::from(label);
    Message::new(
        MessageInfo::new(label, 2, false).unwrap(),
        [l, l + 1, 0, 0],
        None,
    )
}

fn cap() -> Capability {
    Capability::full(ObjectRef::Endpoint(EndpointId::new(3, 3)))
}

fn msg_with_cap(label: u32) -> Message {
    Message::new(
        MessageInfo::new(label, 0, true).unwrap(),
        [0; MSG_WORDS],
        Some(cap()),
    )
}

fn delivery(badge: u64, label: u32, reply: ReplyToken) -> Delivery {
    Delivery {
        badge,
        msg: msg(label),
        reply,
    }
}

fn senders(ipc: &Small, ep: EndpointId) -> Vec<ThreadId> {
    ipc.senders(ep).unwrap().collect()
}

fn receivers(ipc: &Small, ep: EndpointId) -> Vec<ThreadId> {
    ipc.receivers(ep).unwrap().collect()
}

/// Server `server` receives a call from `caller` (queued first), returning the reply token.
fn deliver_call(ipc: &mut Small, ep: EndpointId, caller: ThreadId, server: ThreadId) -> ReplyToken {
    assert_eq!(
        ipc.call(ep, caller, UNBADGED, msg(caller.index() as u32), true),
        Ok(CallOutcome::Blocked)
    );
    match ipc.recv(ep, server, true) {
        Ok(RecvOutcome::Received(received)) => {
            assert_eq!(received.sender, caller);
            assert!(!received.wake_sender);
            assert!(!received.delivery.reply.is_none());
            received.delivery.reply
        }
        other => panic!("expected a call: {other:?}"),
    }
}

// --- messages --------------------------------------------------------------------------------

#[test]
fn messages_are_in_normal_form() {
    // Words past the length are the sender's stale registers: never delivered.
    let m = Message::new(MessageInfo::new(9, 1, false).unwrap(), [1, 2, 3, 4], None);
    assert_eq!(m.words(), &[1, 0, 0, 0]);
    // The capability flag follows the capability, whatever the descriptor said.
    let m = Message::new(MessageInfo::new(9, 4, true).unwrap(), [1, 2, 3, 4], None);
    assert!(!m.info().has_cap());
    assert_eq!(m.words(), &[1, 2, 3, 4]);
    let m = Message::new(MessageInfo::new(9, 0, false).unwrap(), [5; 4], Some(cap()));
    assert!(m.info().has_cap());
    assert_eq!(m.cap(), Some(&cap()));
    let (info, words, c) = m.into_parts();
    assert_eq!((info.label(), words, c), (9, [0; 4], Some(cap())));
    assert_eq!(Message::empty().info(), MessageInfo::EMPTY);
}

// --- endpoint lifetimes ----------------------------------------------------------------------

#[test]
fn endpoint_ids_are_generation_checked() {
    let mut ipc = Small::new();
    let a = ipc.create().unwrap();
    assert_eq!((a.index(), a.generation()), (0, 1));
    ipc.destroy(a, |_, _| panic!("nobody queued")).unwrap();
    assert_eq!(ipc.recv(a, t(0), true), Err(Error::StaleCapability));
    assert_eq!(ipc.destroy(a, |_, _| {}), Err(Error::StaleCapability));
    for forged in [
        EndpointId::new(0, 0),
        EndpointId::new(0, 2),
        EndpointId::new(1, 1),
        EndpointId::new(4, 1),
        EndpointId::from_u64(u64::MAX),
    ] {
        assert_eq!(
            ipc.recv(forged, t(0), true),
            Err(Error::InvalidCapability),
            "{forged:?}"
        );
        let refused = ipc.send(forged, t(0), UNBADGED, msg(1), true).unwrap_err();
        assert_eq!(
            refused,
            Refused {
                error: Error::InvalidCapability,
                msg: msg(1)
            }
        );
    }
    // The table fills, and the oldest free slot is reused with a new generation.
    let ids: Vec<_> = (0..4).map(|_| ipc.create().unwrap()).collect();
    assert_eq!(ids[3], EndpointId::new(0, 2));
    assert_eq!(ipc.create(), Err(Error::OutOfMemory));
    assert_eq!(ipc.live(), 4);
    ipc.destroy(ids[0], |_, _| {}).unwrap();
    assert_eq!(ipc.create().unwrap(), EndpointId::new(1, 2));
    ipc.check_invariants();
}

#[test]
fn an_exhausted_endpoint_slot_is_retired() {
    let mut ipc = Endpoints::<2, 4>::new();
    ipc.set_generation(0, u32::MAX - 1);
    let a = ipc.create().unwrap();
    assert_eq!(a.generation(), u32::MAX);
    ipc.destroy(a, |_, _| {}).unwrap();
    assert_eq!(ipc.recv(a, t(0), true), Err(Error::StaleCapability));
    let b = ipc.create().unwrap();
    assert_eq!(b.index(), 1);
    assert_eq!(ipc.create(), Err(Error::OutOfMemory));
    ipc.destroy(b, |_, _| {}).unwrap();
    assert_eq!(ipc.create().unwrap(), EndpointId::new(1, 2));
}

// --- send, call, recv ------------------------------------------------------------------------

#[test]
fn send_to_a_waiting_receiver_delivers_at_once() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    assert_eq!(ipc.recv(ep, t(1), true), Ok(RecvOutcome::Blocked));
    assert_eq!(ipc.blocked(t(1)), Some(Blocked::Recv { endpoint: ep }));
    assert_eq!(
        ipc.send(ep, t(2), 7, msg(5), true),
        Ok(SendOutcome::Delivered {
            receiver: t(1),
            delivery: delivery(7, 5, ReplyToken::NONE),
        })
    );
    assert_eq!(ipc.blocked(t(1)), None);
    assert_eq!(ipc.blocked(t(2)), None);
    ipc.check_invariants();
}

#[test]
fn send_without_a_receiver_blocks_until_recv() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    assert_eq!(
        ipc.send(ep, t(2), 7, msg(5), true),
        Ok(SendOutcome::Blocked)
    );
    assert_eq!(
        ipc.blocked(t(2)),
        Some(Blocked::Send {
            endpoint: ep,
            call: false
        })
    );
    assert_eq!(
        ipc.recv(ep, t(1), true),
        Ok(RecvOutcome::Received(Received {
            sender: t(2),
            delivery: delivery(7, 5, ReplyToken::NONE),
            wake_sender: true,
        }))
    );
    assert_eq!(ipc.blocked(t(2)), None);
    ipc.check_invariants();
}

#[test]
fn call_to_a_waiting_server_takes_the_fast_path() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    assert_eq!(ipc.recv(ep, t(1), true), Ok(RecvOutcome::Blocked));
    let Ok(CallOutcome::SwitchTo { receiver, delivery }) = ipc.call(ep, t(2), 3, msg(5), true)
    else {
        panic!("a waiting server must be switched to");
    };
    assert_eq!(receiver, t(1));
    assert_eq!((delivery.badge, delivery.msg), (3, msg(5)));
    assert!(!delivery.reply.is_none());
    // The server runs; the caller awaits its reply.
    assert_eq!(ipc.blocked(t(1)), None);
    assert_eq!(ipc.blocked(t(2)), Some(Blocked::Reply { replier: t(1) }));
    assert_eq!(
        ipc.reply(t(1), delivery.reply, msg(6)),
        Ok(Replied {
            caller: t(2),
            msg: msg(6)
        })
    );
    assert_eq!(ipc.blocked(t(2)), None);
    ipc.check_invariants();
}

#[test]
fn the_register_only_fast_path_decides_like_call_and_reply_recv() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    // No receiver: the fast path declines and nothing changes.
    assert_eq!(ipc.call_waiting(ep, t(2)), None);
    assert_eq!(ipc.blocked(t(2)), None);
    assert_eq!(ipc.recv(ep, t(1), true), Ok(RecvOutcome::Blocked));
    let (receiver, token) = ipc.call_waiting(ep, t(2)).expect("a server waits");
    assert_eq!(receiver, t(1));
    assert_eq!(ipc.blocked(t(1)), None);
    assert_eq!(ipc.blocked(t(2)), Some(Blocked::Reply { replier: t(1) }));
    // A caller already awaiting a reply cannot call again.
    assert_eq!(ipc.call_waiting(ep, t(2)), None);
    // A vetoed reply changes nothing; a forged token is declined without asking.
    assert_eq!(ipc.reply_then_wait(ep, t(1), token, |_| false), None);
    let forged = ReplyToken::from_raw(token.into_raw() ^ (1 << 32));
    assert_eq!(
        ipc.reply_then_wait(ep, t(1), forged, |_| panic!("asked about a forged token")),
        None
    );
    assert_eq!(ipc.blocked(t(2)), Some(Blocked::Reply { replier: t(1) }));
    // A queued sender sends the replier down the full path (it must receive that message).
    assert_eq!(
        ipc.send(ep, t(3), 0, msg(4), true),
        Ok(SendOutcome::Blocked)
    );
    assert_eq!(ipc.reply_then_wait(ep, t(1), token, |_| true), None);
    assert_eq!(
        ipc.cancel(t(3)),
        Some(Cancelled::Send {
            msg: msg(4),
            call: false
        })
    );
    // Accepted: the caller is free, the server waits for the next call, the token is used up.
    assert_eq!(
        ipc.reply_then_wait(ep, t(1), token, |c| c == t(2)),
        Some(t(2))
    );
    assert_eq!(ipc.blocked(t(2)), None);
    assert_eq!(ipc.blocked(t(1)), Some(Blocked::Recv { endpoint: ep }));
    assert_eq!(
        ipc.reply(t(1), token, msg(5)).unwrap_err().error,
        Error::InvalidReply
    );
    ipc.check_invariants();
}

#[test]
fn a_queued_call_waits_for_the_reply_after_delivery() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(2), t(1));
    assert_eq!(ipc.blocked(t(2)), Some(Blocked::Reply { replier: t(1) }));
    assert_eq!(ipc.reply(t(1), token, msg(9)).unwrap().caller, t(2));
    ipc.check_invariants();
}

#[test]
fn senders_are_served_first_come_first_served() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    assert!(ipc.send(ep, t(5), 1, msg(50), true).is_ok());
    assert!(ipc.call(ep, t(3), 2, msg(30), true).is_ok());
    assert!(ipc.send(ep, t(4), 3, msg(40), true).is_ok());
    assert_eq!(senders(&ipc, ep), [t(5), t(3), t(4)]);
    assert!(receivers(&ipc, ep).is_empty());
    let mut order = Vec::new();
    while let Ok(RecvOutcome::Received(r)) = ipc.recv(ep, t(0), false) {
        order.push((
            r.sender,
            r.delivery.badge,
            r.delivery.msg.info().label(),
            r.wake_sender,
        ));
        ipc.check_invariants();
    }
    assert_eq!(
        order,
        [
            (t(5), 1, 50, true),
            (t(3), 2, 30, false),
            (t(4), 3, 40, true)
        ]
    );
}

#[test]
fn receivers_are_served_first_come_first_served() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    for r in [6, 2, 4] {
        assert_eq!(ipc.recv(ep, t(r), true), Ok(RecvOutcome::Blocked));
    }
    assert_eq!(receivers(&ipc, ep), [t(6), t(2), t(4)]);
    let mut order = Vec::new();
    for label in 0..3 {
        match ipc.send(ep, t(1), UNBADGED, msg(label), false) {
            Ok(SendOutcome::Delivered { receiver, delivery }) => {
                order.push((receiver, delivery.msg.info().label()));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(order, [(t(6), 0), (t(2), 1), (t(4), 2)]);
    ipc.check_invariants();
}

#[test]
fn refusals_change_nothing_and_give_the_message_back() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let would_block = |m| Refused {
        error: Error::WouldBlock,
        msg: m,
    };
    assert_eq!(
        ipc.send(ep, t(1), 0, msg_with_cap(1), false),
        Err(would_block(msg_with_cap(1)))
    );
    assert_eq!(
        ipc.call(ep, t(1), 0, msg_with_cap(1), false),
        Err(would_block(msg_with_cap(1)))
    );
    assert_eq!(ipc.recv(ep, t(1), false), Err(Error::WouldBlock));
    assert!(senders(&ipc, ep).is_empty() && receivers(&ipc, ep).is_empty());
    // A blocked thread cannot make another call (a glue bug, refused rather than corrupting).
    assert_eq!(ipc.recv(ep, t(1), true), Ok(RecvOutcome::Blocked));
    assert_eq!(
        ipc.send(ep, t(1), 0, msg(2), true),
        Err(Refused {
            error: Error::Busy,
            msg: msg(2)
        })
    );
    assert_eq!(ipc.recv(ep, t(1), true), Err(Error::Busy));
    // A thread index outside the table.
    assert_eq!(
        ipc.recv(ep, ThreadId::new(8, 1), true),
        Err(Error::InvalidArgument)
    );
    assert_eq!(receivers(&ipc, ep), [t(1)]);
    ipc.check_invariants();
}

// --- replies ---------------------------------------------------------------------------------

#[test]
fn replies_reach_exactly_the_caller_their_token_names() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let server = t(0);
    let other_server = t(7);
    let t1 = deliver_call(&mut ipc, ep, t(1), server);
    let t2 = deliver_call(&mut ipc, ep, t(2), server);
    assert_ne!(t1, t2);

    let invalid = |m| Refused {
        error: Error::InvalidReply,
        msg: m,
    };
    // Another thread cannot use the server's tokens.
    assert_eq!(ipc.reply(other_server, t1, msg(9)), Err(invalid(msg(9))));
    assert_eq!(ipc.reply(t(1), t1, msg(9)), Err(invalid(msg(9))));
    // Forged tokens.
    let raw = t1.into_raw();
    for forged in [
        ReplyToken::NONE,
        ReplyToken::from_raw(1),
        ReplyToken::from_raw(raw & 0xffff_ffff),
        ReplyToken::from_raw(raw + (1 << 32)),
        ReplyToken::from_raw(raw ^ 4),
        ReplyToken::from_raw(raw | 0xffff),
        ReplyToken::from_raw(u64::MAX),
    ] {
        assert_eq!(
            ipc.reply(server, forged, msg(9)),
            Err(invalid(msg(9))),
            "{forged:?}"
        );
    }
    // Deferred replies, in any order; each token works once.
    assert_eq!(ipc.reply(server, t2, msg(22)).unwrap().caller, t(2));
    assert_eq!(ipc.reply(server, t2, msg(22)), Err(invalid(msg(22))));
    assert_eq!(ipc.blocked(t(1)), Some(Blocked::Reply { replier: server }));
    assert_eq!(ipc.reply(server, t1, msg(11)).unwrap().caller, t(1));
    assert_eq!(ipc.reply(server, t1, msg(11)), Err(invalid(msg(11))));
    ipc.check_invariants();
}

#[test]
fn a_token_goes_stale_when_its_caller_gives_up_or_calls_again() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(1), t(0));
    // The caller's timeout fires while the server works on the call.
    assert_eq!(ipc.cancel(t(1)), Some(Cancelled::Reply { replier: t(0) }));
    assert_eq!(ipc.blocked(t(1)), None);
    assert_eq!(
        ipc.reply(t(0), token, msg(1)).unwrap_err().error,
        Error::InvalidReply
    );
    // It calls the same server again: the old token must not answer the new call.
    let fresh = deliver_call(&mut ipc, ep, t(1), t(0));
    assert_ne!(fresh, token);
    assert_eq!(
        ipc.reply(t(0), token, msg(1)).unwrap_err().error,
        Error::InvalidReply
    );
    assert_eq!(ipc.reply(t(0), fresh, msg(2)).unwrap().caller, t(1));
    // The same slot reused by a new thread (new generation): old tokens still refused.
    let reborn = ThreadId::new(1, 2);
    let newest = deliver_call(&mut ipc, ep, reborn, t(0));
    assert_eq!(
        ipc.reply(t(0), fresh, msg(3)).unwrap_err().error,
        Error::InvalidReply
    );
    assert_eq!(ipc.reply(t(0), newest, msg(3)).unwrap().caller, reborn);
}

#[test]
fn reply_recv_switches_back_to_the_caller_when_nothing_waits() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(1), t(0));
    assert_eq!(
        ipc.reply_recv(ep, t(0), token, msg(8), true),
        Ok(ReplyRecvOutcome::SwitchToCaller {
            replied: Replied {
                caller: t(1),
                msg: msg(8)
            }
        })
    );
    assert_eq!(ipc.blocked(t(0)), Some(Blocked::Recv { endpoint: ep }));
    assert_eq!(ipc.blocked(t(1)), None);
    // The next call takes the fast path to the server waiting in reply_recv.
    assert!(matches!(
        ipc.call(ep, t(1), 0, msg(9), true),
        Ok(CallOutcome::SwitchTo { receiver, .. }) if receiver == t(0)
    ));
    ipc.check_invariants();
}

#[test]
fn reply_recv_continues_with_a_queued_sender() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(1), t(0));
    assert_eq!(
        ipc.send(ep, t(2), 4, msg(20), true),
        Ok(SendOutcome::Blocked)
    );
    assert_eq!(
        ipc.reply_recv(ep, t(0), token, msg(8), true),
        Ok(ReplyRecvOutcome::Received {
            replied: Replied {
                caller: t(1),
                msg: msg(8)
            },
            received: Received {
                sender: t(2),
                delivery: delivery(4, 20, ReplyToken::NONE),
                wake_sender: true,
            },
        })
    );
    assert_eq!(ipc.blocked(t(0)), None);
    ipc.check_invariants();
}

#[test]
fn reply_recv_without_blocking_still_replies() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(1), t(0));
    assert_eq!(
        ipc.reply_recv(ep, t(0), token, msg(8), false),
        Ok(ReplyRecvOutcome::RepliedOnly {
            replied: Replied {
                caller: t(1),
                msg: msg(8)
            }
        })
    );
    assert_eq!(ipc.blocked(t(0)), None);
    assert_eq!(ipc.blocked(t(1)), None);
}

#[test]
fn a_refused_reply_recv_neither_replies_nor_receives() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let other = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(1), t(0));
    ipc.destroy(other, |_, _| {}).unwrap();
    for (endpoint, token, error) in [
        (
            ep,
            ReplyToken::from_raw(token.into_raw() + (1 << 32)),
            Error::InvalidReply,
        ),
        (ep, ReplyToken::NONE, Error::InvalidReply),
        (other, token, Error::StaleCapability),
    ] {
        assert_eq!(
            ipc.reply_recv(endpoint, t(0), token, msg_with_cap(8), true),
            Err(Refused {
                error,
                msg: msg_with_cap(8)
            })
        );
        assert_eq!(ipc.blocked(t(0)), None);
        assert_eq!(ipc.blocked(t(1)), Some(Blocked::Reply { replier: t(0) }));
    }
    assert_eq!(ipc.reply(t(0), token, msg(1)).unwrap().caller, t(1));
}

// --- cancellation, exit, destruction ---------------------------------------------------------

#[test]
fn cancel_removes_a_sender_from_anywhere_in_the_queue() {
    for victim in [1, 2, 3] {
        let mut ipc = Small::new();
        let ep = ipc.create().unwrap();
        for s in [1, 2, 3] {
            let m = if s == victim { msg_with_cap(s) } else { msg(s) };
            assert_eq!(ipc.call(ep, t(s), 0, m, true), Ok(CallOutcome::Blocked));
        }
        // Its message comes back whole, capability included: nothing leaks.
        assert_eq!(
            ipc.cancel(t(victim)),
            Some(Cancelled::Send {
                msg: msg_with_cap(victim),
                call: true
            })
        );
        assert_eq!(ipc.cancel(t(victim)), None);
        ipc.check_invariants();
        let rest: Vec<_> = [1, 2, 3]
            .into_iter()
            .filter(|&s| s != victim)
            .map(t)
            .collect();
        assert_eq!(senders(&ipc, ep), rest);
        for expected in rest {
            match ipc.recv(ep, t(0), false) {
                Ok(RecvOutcome::Received(r)) => assert_eq!(r.sender, expected),
                other => panic!("{other:?}"),
            }
            ipc.check_invariants();
        }
        assert_eq!(ipc.recv(ep, t(0), false), Err(Error::WouldBlock));
    }
}

#[test]
fn cancel_removes_a_receiver() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    for r in [1, 2, 3] {
        ipc.recv(ep, t(r), true).unwrap();
    }
    assert_eq!(ipc.cancel(t(2)), Some(Cancelled::Recv));
    assert_eq!(receivers(&ipc, ep), [t(1), t(3)]);
    assert_eq!(ipc.cancel(t(3)), Some(Cancelled::Recv));
    assert_eq!(ipc.cancel(t(1)), Some(Cancelled::Recv));
    assert!(receivers(&ipc, ep).is_empty());
    // The endpoint works normally afterwards.
    assert_eq!(
        ipc.send(ep, t(4), 0, msg(1), true),
        Ok(SendOutcome::Blocked)
    );
    ipc.check_invariants();
}

#[test]
fn cancel_ignores_idle_and_stale_threads() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    assert_eq!(ipc.cancel(t(1)), None);
    ipc.recv(ep, t(1), true).unwrap();
    // Same slot, other generation: not the thread that is blocked.
    assert_eq!(ipc.cancel(ThreadId::new(1, 2)), None);
    assert_eq!(ipc.cancel(ThreadId::new(100, 1)), None);
    assert_eq!(receivers(&ipc, ep), [t(1)]);
}

#[test]
fn exit_withdraws_the_thread_and_releases_its_callers() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let server = t(0);
    let t1 = deliver_call(&mut ipc, ep, t(1), server);
    let t2 = deliver_call(&mut ipc, ep, t(2), server);
    let t3 = deliver_call(&mut ipc, ep, t(3), t(7));
    ipc.recv(ep, server, true).unwrap();
    let mut orphans = Vec::new();
    assert_eq!(ipc.exit(server, |c| orphans.push(c)), Some(Cancelled::Recv));
    assert_eq!(orphans, [t(1), t(2)]);
    for token in [t1, t2] {
        assert_eq!(
            ipc.reply(server, token, msg(0)).unwrap_err().error,
            Error::InvalidReply
        );
    }
    assert_eq!(ipc.blocked(t(1)), None);
    assert!(receivers(&ipc, ep).is_empty());
    // Another server's caller is untouched.
    assert_eq!(ipc.blocked(t(3)), Some(Blocked::Reply { replier: t(7) }));
    assert_eq!(ipc.reply(t(7), t3, msg(0)).unwrap().caller, t(3));
    // An idle thread exits with nothing to cancel.
    assert_eq!(ipc.exit(t(5), |_| panic!("no callers")), None);
    ipc.check_invariants();
}

#[test]
fn destroy_evicts_every_queued_thread_in_order() {
    let mut ipc = Small::new();
    let ep = ipc.create().unwrap();
    let keep = ipc.create().unwrap();
    let token = deliver_call(&mut ipc, ep, t(5), t(6));
    ipc.send(ep, t(1), 0, msg(1), true).unwrap();
    ipc.call(ep, t(2), 0, msg_with_cap(2), true).unwrap();
    ipc.recv(keep, t(3), true).unwrap();
    let mut evicted = Vec::new();
    ipc.destroy(ep, |id, what| evicted.push((id, what)))
        .unwrap();
    assert_eq!(
        evicted,
        [
            (
                t(1),
                Cancelled::Send {
                    msg: msg(1),
                    call: false
                }
            ),
            (
                t(2),
                Cancelled::Send {
                    msg: msg_with_cap(2),
                    call: true
                }
            ),
        ]
    );
    assert_eq!(ipc.blocked(t(1)), None);
    assert_eq!(
        ipc.send(ep, t(1), 0, msg(1), true).unwrap_err().error,
        Error::StaleCapability
    );
    assert!(matches!(ipc.senders(ep), Err(Error::StaleCapability)));
    // A call delivered before the destruction can still be answered; other endpoints carry on.
    assert_eq!(ipc.reply(t(6), token, msg(0)).unwrap().caller, t(5));
    assert_eq!(receivers(&ipc, keep), [t(3)]);
    // Receivers are evicted too.
    let mut evicted = Vec::new();
    ipc.destroy(keep, |id, what| evicted.push((id, what)))
        .unwrap();
    assert_eq!(evicted, [(t(3), Cancelled::Recv)]);
    ipc.check_invariants();
}

// --- randomized model check ------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ModelWait {
    Idle,
    Send {
        ep: usize,
        label: u32,
        badge: u64,
        call: bool,
    },
    Recv {
        ep: usize,
    },
    Reply {
        replier: ThreadId,
        token: ReplyToken,
    },
}

struct ModelEndpoint {
    id: EndpointId,
    live: bool,
    senders: VecDeque<usize>,
    receivers: VecDeque<usize>,
}

/// The model: plain queues and per-thread states, no links, no generations.
struct IpcModel {
    endpoints: Vec<ModelEndpoint>,
    threads: Vec<(ThreadId, ModelWait)>,
    /// Every token ever issued.
    tokens: Vec<ReplyToken>,
}

impl IpcModel {
    fn endpoint(&self, id: EndpointId) -> Result<usize, Error> {
        match self.endpoints.iter().position(|e| e.id == id) {
            Some(e) if self.endpoints[e].live => Ok(e),
            Some(_) => Err(Error::StaleCapability),
            None => Err(Error::InvalidCapability),
        }
    }

    fn caller(&self, id: EndpointId, t: usize) -> Result<usize, Error> {
        let e = self.endpoint(id)?;
        if self.threads[t].1 == ModelWait::Idle {
            Ok(e)
        } else {
            Err(Error::Busy)
        }
    }

    fn reply_target(&self, replier: ThreadId, token: ReplyToken) -> Result<usize, Error> {
        self.threads
            .iter()
            .position(|&(_, w)| w == ModelWait::Reply { replier, token })
            .ok_or(Error::InvalidReply)
    }

    fn fresh_token(&mut self, token: ReplyToken) {
        assert!(!token.is_none());
        assert!(
            !self.tokens.contains(&token),
            "token {token:?} issued twice"
        );
        self.tokens.push(token);
    }

    /// What a receiver `r` gets from the first queued sender of `e`, checking `got`.
    fn take_sender(&mut self, e: usize, r: usize, got: Received) {
        let s = self.endpoints[e]
            .senders
            .pop_front()
            .expect("the model has a sender");
        let ModelWait::Send {
            label, badge, call, ..
        } = self.threads[s].1
        else {
            panic!("queued sender not sending");
        };
        assert_eq!(got.sender, self.threads[s].0);
        assert_eq!(
            (got.delivery.badge, got.delivery.msg.info().label()),
            (badge, label)
        );
        assert_eq!(got.wake_sender, !call);
        self.threads[s].1 = if call {
            self.fresh_token(got.delivery.reply);
            ModelWait::Reply {
                replier: self.threads[r].0,
                token: got.delivery.reply,
            }
        } else {
            assert!(got.delivery.reply.is_none());
            ModelWait::Idle
        };
    }

    fn cancel(&mut self, t: usize) -> Option<(bool, Option<(u32, bool)>)> {
        let wait = std::mem::replace(&mut self.threads[t].1, ModelWait::Idle);
        match wait {
            ModelWait::Idle => None,
            ModelWait::Send {
                ep, label, call, ..
            } => {
                self.endpoints[ep].senders.retain(|&s| s != t);
                Some((true, Some((label, call))))
            }
            ModelWait::Recv { ep } => {
                self.endpoints[ep].receivers.retain(|&r| r != t);
                Some((false, None))
            }
            ModelWait::Reply { .. } => Some((false, None)),
        }
    }
}

fn run_ipc_model(seed: u64, steps: u32) {
    const E: usize = 3;
    const T: usize = 6;
    let mut rng = Rng(seed);
    let mut ipc = Endpoints::<E, T>::new();
    let mut model = IpcModel {
        endpoints: Vec::new(),
        threads: (0..T as u32)
            .map(|i| (ThreadId::new(i, 1), ModelWait::Idle))
            .collect(),
        tokens: Vec::new(),
    };

    for step in 0..steps {
        let ctx = std::format!("seed {seed:#x} step {step}");
        let t = rng.below(T as u64) as usize;
        let me = model.threads[t].0;
        // An endpoint: mostly one created before (live or destroyed), sometimes a forgery.
        let ep = if !model.endpoints.is_empty() && rng.below(6) != 0 {
            model.endpoints[rng.below(model.endpoints.len() as u64) as usize].id
        } else {
            EndpointId::new(rng.below(E as u64 + 1) as u32, rng.below(4) as u32)
        };
        let may_block = rng.below(4) != 0;
        let badge = rng.below(3);
        let label = step;
        match rng.below(14) {
            0 => match ipc.create() {
                Ok(id) => {
                    assert!(
                        model.endpoints.iter().all(|e| e.id != id),
                        "{ctx}: id reused"
                    );
                    model.endpoints.push(ModelEndpoint {
                        id,
                        live: true,
                        senders: VecDeque::new(),
                        receivers: VecDeque::new(),
                    });
                }
                Err(error) => {
                    assert_eq!(error, Error::OutOfMemory, "{ctx}");
                    assert_eq!(
                        model.endpoints.iter().filter(|e| e.live).count(),
                        E,
                        "{ctx}"
                    );
                }
            },
            1 | 2 => {
                let call = rng.below(2) == 0;
                let expected = model.caller(ep, t);
                let got = if call {
                    ipc.call(ep, me, badge, msg(label), may_block)
                        .map(|o| match o {
                            CallOutcome::SwitchTo { receiver, delivery } => {
                                Some((receiver, delivery))
                            }
                            CallOutcome::Blocked => None,
                        })
                } else {
                    ipc.send(ep, me, badge, msg(label), may_block)
                        .map(|o| match o {
                            SendOutcome::Delivered { receiver, delivery } => {
                                Some((receiver, delivery))
                            }
                            SendOutcome::Blocked => None,
                        })
                };
                match (expected, got) {
                    (Err(want), Err(refused)) => {
                        assert_eq!(
                            refused,
                            Refused {
                                error: want,
                                msg: msg(label)
                            },
                            "{ctx}"
                        );
                    }
                    (Ok(e), got) => {
                        if let Some(r) = model.endpoints[e].receivers.pop_front() {
                            let Ok(Some((receiver, delivery))) = got else {
                                panic!("{ctx}: a receiver was waiting: {got:?}");
                            };
                            assert_eq!(receiver, model.threads[r].0, "{ctx}");
                            assert_eq!(delivery.msg, msg(label), "{ctx}");
                            assert_eq!(delivery.badge, badge, "{ctx}");
                            model.threads[r].1 = ModelWait::Idle;
                            if call {
                                model.fresh_token(delivery.reply);
                                model.threads[t].1 = ModelWait::Reply {
                                    replier: receiver,
                                    token: delivery.reply,
                                };
                            } else {
                                assert!(delivery.reply.is_none(), "{ctx}");
                            }
                        } else if may_block {
                            assert!(matches!(got, Ok(None)), "{ctx}: {got:?}");
                            model.endpoints[e].senders.push_back(t);
                            model.threads[t].1 = ModelWait::Send {
                                ep: e,
                                label,
                                badge,
                                call,
                            };
                        } else {
                            assert_eq!(
                                got.unwrap_err(),
                                Refused {
                                    error: Error::WouldBlock,
                                    msg: msg(label)
                                },
                                "{ctx}"
                            );
                        }
                    }
                    (Err(want), Ok(got)) => panic!("{ctx}: expected {want:?}, got {got:?}"),
                }
            }
            3 | 4 => {
                let expected = model.caller(ep, t);
                let got = ipc.recv(ep, me, may_block);
                match expected {
                    Err(want) => assert_eq!(got, Err(want), "{ctx}"),
                    Ok(e) if !model.endpoints[e].senders.is_empty() => {
                        let Ok(RecvOutcome::Received(received)) = got else {
                            panic!("{ctx}: a sender was queued: {got:?}");
                        };
                        model.take_sender(e, t, received);
                    }
                    Ok(e) if may_block => {
                        assert_eq!(got, Ok(RecvOutcome::Blocked), "{ctx}");
                        model.endpoints[e].receivers.push_back(t);
                        model.threads[t].1 = ModelWait::Recv { ep: e };
                    }
                    Ok(_) => assert_eq!(got, Err(Error::WouldBlock), "{ctx}"),
                }
            }
            5..=7 => {
                // A token: mostly one issued before (maybe used up, maybe someone else's).
                let token = if !model.tokens.is_empty() && rng.below(5) != 0 {
                    model.tokens[rng.below(model.tokens.len() as u64) as usize]
                } else {
                    ReplyToken::from_raw(rng.below(4) << 32 | rng.below(T as u64 + 1))
                };
                if rng.below(2) == 0 {
                    let got = ipc.reply(me, token, msg(label));
                    match model.reply_target(me, token) {
                        Ok(c) => {
                            assert_eq!(
                                got,
                                Ok(Replied {
                                    caller: model.threads[c].0,
                                    msg: msg(label)
                                }),
                                "{ctx}"
                            );
                            model.threads[c].1 = ModelWait::Idle;
                        }
                        Err(error) => {
                            assert_eq!(
                                got,
                                Err(Refused {
                                    error,
                                    msg: msg(label)
                                }),
                                "{ctx}"
                            );
                        }
                    }
                } else {
                    let got = ipc.reply_recv(ep, me, token, msg(label), may_block);
                    let expected = model
                        .caller(ep, t)
                        .and_then(|e| Ok((e, model.reply_target(me, token)?)));
                    match expected {
                        Err(error) => {
                            assert_eq!(
                                got,
                                Err(Refused {
                                    error,
                                    msg: msg(label)
                                }),
                                "{ctx}"
                            );
                        }
                        Ok((e, c)) => {
                            let want = Replied {
                                caller: model.threads[c].0,
                                msg: msg(label),
                            };
                            model.threads[c].1 = ModelWait::Idle;
                            match got {
                                Ok(ReplyRecvOutcome::Received { replied, received }) => {
                                    assert_eq!(replied, want, "{ctx}");
                                    model.take_sender(e, t, received);
                                }
                                Ok(ReplyRecvOutcome::SwitchToCaller { replied }) => {
                                    assert_eq!(replied, want, "{ctx}");
                                    assert!(may_block, "{ctx}");
                                    assert!(model.endpoints[e].senders.is_empty(), "{ctx}");
                                    model.endpoints[e].receivers.push_back(t);
                                    model.threads[t].1 = ModelWait::Recv { ep: e };
                                }
                                Ok(ReplyRecvOutcome::RepliedOnly { replied }) => {
                                    assert_eq!(replied, want, "{ctx}");
                                    assert!(!may_block, "{ctx}");
                                    assert!(model.endpoints[e].senders.is_empty(), "{ctx}");
                                }
                                Err(refused) => panic!("{ctx}: refused {refused:?}"),
                            }
                        }
                    }
                }
            }
            8 | 9 => {
                // A timeout fires (sometimes for an ID of another generation: must be ignored).
                let target = if rng.below(8) == 0 {
                    ThreadId::new(me.index() as u32, me.generation() + 1)
                } else {
                    me
                };
                let got = ipc.cancel(target);
                if target != me {
                    assert_eq!(got, None, "{ctx}");
                } else {
                    match (model.cancel(t), got) {
                        (None, None) => {}
                        (
                            Some((true, Some((label, call)))),
                            Some(Cancelled::Send { msg: m, call: c }),
                        ) => {
                            assert_eq!((m, c), (msg(label), call), "{ctx}");
                        }
                        (Some((false, None)), Some(Cancelled::Recv | Cancelled::Reply { .. })) => {}
                        (want, got) => panic!("{ctx}: expected {want:?}, got {got:?}"),
                    }
                }
            }
            10 => {
                // The thread is killed; its slot is reused by a new generation.
                let mut orphans = Vec::new();
                let got = ipc.exit(me, |c| orphans.push(c));
                assert_eq!(got.is_some(), model.cancel(t).is_some(), "{ctx}");
                let mut expected = Vec::new();
                for (id, wait) in &mut model.threads {
                    if matches!(*wait, ModelWait::Reply { replier, .. } if replier == me) {
                        *wait = ModelWait::Idle;
                        expected.push(*id);
                    }
                }
                assert_eq!(orphans, expected, "{ctx}");
                model.threads[t].0 = ThreadId::new(t as u32, me.generation() + 1);
            }
            11 => {
                // The fast path of `call`: exactly what `call` decides when a receiver waits,
                // nothing at all otherwise (the later checks compare every queue and state).
                let got = ipc.call_waiting(ep, me);
                match model.caller(ep, t) {
                    Ok(e) if !model.endpoints[e].receivers.is_empty() => {
                        let r = model.endpoints[e].receivers.pop_front().unwrap();
                        let Some((receiver, token)) = got else {
                            panic!("{ctx}: a receiver was waiting");
                        };
                        assert_eq!(receiver, model.threads[r].0, "{ctx}");
                        model.threads[r].1 = ModelWait::Idle;
                        model.fresh_token(token);
                        model.threads[t].1 = ModelWait::Reply {
                            replier: receiver,
                            token,
                        };
                    }
                    _ => assert_eq!(got, None, "{ctx}"),
                }
            }
            12 => {
                // The fast path of `reply_recv`, sometimes vetoed by the glue.
                let token = if !model.tokens.is_empty() && rng.below(5) != 0 {
                    model.tokens[rng.below(model.tokens.len() as u64) as usize]
                } else {
                    ReplyToken::from_raw(rng.below(4) << 32 | rng.below(T as u64 + 1))
                };
                let accept = rng.below(4) != 0;
                let mut asked = None;
                let got = ipc.reply_then_wait(ep, me, token, |caller| {
                    asked = Some(caller);
                    accept
                });
                let expected = model
                    .caller(ep, t)
                    .and_then(|e| Ok((e, model.reply_target(me, token)?)));
                match expected {
                    Ok((e, c)) if model.endpoints[e].senders.is_empty() => {
                        assert_eq!(asked, Some(model.threads[c].0), "{ctx}");
                        if accept {
                            assert_eq!(got, Some(model.threads[c].0), "{ctx}");
                            model.threads[c].1 = ModelWait::Idle;
                            model.endpoints[e].receivers.push_back(t);
                            model.threads[t].1 = ModelWait::Recv { ep: e };
                        } else {
                            assert_eq!(got, None, "{ctx}");
                        }
                    }
                    _ => assert_eq!(got, None, "{ctx}"),
                }
            }
            _ => {
                let mut evicted = Vec::new();
                let got = ipc.destroy(ep, |id, what| evicted.push((id, what)));
                match model.endpoint(ep) {
                    Err(error) => assert_eq!(got, Err(error), "{ctx}"),
                    Ok(e) => {
                        assert_eq!(got, Ok(()), "{ctx}");
                        let queued: Vec<usize> = model.endpoints[e]
                            .senders
                            .iter()
                            .chain(&model.endpoints[e].receivers)
                            .copied()
                            .collect();
                        assert_eq!(evicted.len(), queued.len(), "{ctx}");
                        for ((id, what), s) in evicted.into_iter().zip(queued) {
                            assert_eq!(id, model.threads[s].0, "{ctx}");
                            let was = model.threads[s].1;
                            match (was, what) {
                                (
                                    ModelWait::Send { label, call, .. },
                                    Cancelled::Send { msg: m, call: c },
                                ) => {
                                    assert_eq!((m, c), (msg(label), call), "{ctx}");
                                }
                                (ModelWait::Recv { .. }, Cancelled::Recv) => {}
                                (was, what) => panic!("{ctx}: {was:?} evicted as {what:?}"),
                            }
                            model.threads[s].1 = ModelWait::Idle;
                        }
                        let endpoint = &mut model.endpoints[e];
                        endpoint.live = false;
                        endpoint.senders.clear();
                        endpoint.receivers.clear();
                    }
                }
            }
        }

        // After every step: structure intact, queues and thread states as in the model.
        ipc.check_invariants();
        for endpoint in model.endpoints.iter().filter(|e| e.live) {
            let ids =
                |q: &VecDeque<usize>| q.iter().map(|&i| model.threads[i].0).collect::<Vec<_>>();
            assert_eq!(
                ipc.senders(endpoint.id).unwrap().collect::<Vec<_>>(),
                ids(&endpoint.senders),
                "{ctx}"
            );
            assert_eq!(
                ipc.receivers(endpoint.id).unwrap().collect::<Vec<_>>(),
                ids(&endpoint.receivers),
                "{ctx}"
            );
        }
        for &(id, wait) in &model.threads {
            let expected = match wait {
                ModelWait::Idle => None,
                ModelWait::Send { ep, call, .. } => Some(Blocked::Send {
                    endpoint: model.endpoints[ep].id,
                    call,
                }),
                ModelWait::Recv { ep } => Some(Blocked::Recv {
                    endpoint: model.endpoints[ep].id,
                }),
                ModelWait::Reply { replier, .. } => Some(Blocked::Reply { replier }),
            };
            assert_eq!(ipc.blocked(id), expected, "{ctx}: thread {id}");
        }
    }
}

#[test]
fn randomized_endpoints_against_a_model() {
    for seed in 1..=30u64 {
        run_ipc_model(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 2000);
    }
}

// --- notifications ---------------------------------------------------------------------------

#[test]
fn a_signal_before_wait_is_kept() {
    let n = Notification::new();
    assert_eq!(n.signal(0b100), Ok(SignalOutcome::Pending));
    assert_eq!(n.peek(), 0b100);
    assert_eq!(n.wait(t(1), true), Ok(WaitOutcome::Ready(0b100)));
    assert_eq!((n.peek(), n.waiter()), (0, None));
}

#[test]
fn a_signal_during_wait_wakes_the_waiter_with_its_bits() {
    let n = Notification::new();
    assert_eq!(n.wait(t(1), true), Ok(WaitOutcome::Block));
    assert_eq!(n.waiter(), Some(t(1)));
    assert_eq!(n.poll(), 0, "nothing to poll while a waiter is blocked");
    assert_eq!(
        n.signal(0b11),
        Ok(SignalOutcome::Wake {
            waiter: t(1),
            bits: 0b11
        })
    );
    assert_eq!((n.peek(), n.waiter()), (0, None));
    // The next signal finds nobody waiting and stays pending.
    assert_eq!(n.signal(0b1), Ok(SignalOutcome::Pending));
    assert_eq!(n.poll(), 0b1);
}

#[test]
fn signals_merge() {
    let n = Notification::new();
    for bits in [0b001, 0b100, 0b001, 1 << 62] {
        assert_eq!(n.signal(bits), Ok(SignalOutcome::Pending));
    }
    assert_eq!(n.poll(), 0b101 | 1 << 62);
    assert_eq!(n.poll(), 0);
}

#[test]
fn wait_refusals() {
    let n = Notification::new();
    assert_eq!(n.wait(t(1), false), Err(Error::WouldBlock));
    assert_eq!(n.waiter(), None, "a refused wait does not stay registered");
    assert_eq!(n.wait(t(1), true), Ok(WaitOutcome::Block));
    assert_eq!(n.wait(t(2), true), Err(Error::Busy));
    assert_eq!(n.wait(t(2), false), Err(Error::Busy));
    assert_eq!(n.signal(0), Err(Error::InvalidArgument));
    assert_eq!(n.signal(1 << 63), Err(Error::InvalidArgument));
    assert_eq!(n.signal(u64::MAX), Err(Error::InvalidArgument));
    assert_eq!(n.waiter(), Some(t(1)), "refused signals wake nobody");
}

#[test]
fn cancel_wait_withdraws_only_a_blocked_waiter() {
    let n = Notification::new();
    assert!(!n.cancel_wait(t(1)));
    n.wait(t(1), true).unwrap();
    assert!(!n.cancel_wait(t(2)));
    assert!(n.cancel_wait(t(1)));
    assert!(!n.cancel_wait(t(1)));
    assert_eq!(n.waiter(), None);
    // A signal after the timeout stays pending for the next wait.
    assert_eq!(n.signal(4), Ok(SignalOutcome::Pending));
    assert_eq!(n.wait(t(2), true), Ok(WaitOutcome::Ready(4)));
    // A timeout that loses to a signal must not withdraw: the wake carries the bits.
    n.wait(t(1), true).unwrap();
    assert!(matches!(n.signal(8), Ok(SignalOutcome::Wake { .. })));
    assert!(!n.cancel_wait(t(1)));
}

#[test]
fn reset_returns_the_blocked_waiter() {
    let n = Notification::new();
    n.signal(1).unwrap();
    assert_eq!(n.reset(), None);
    assert_eq!(n.peek(), 0);
    n.wait(t(3), true).unwrap();
    assert_eq!(n.reset(), Some(t(3)));
    assert_eq!((n.peek(), n.waiter()), (0, None));
    assert!(std::format!("{n:?}").contains("waiting: false"));
}

/// Real threads: each signaller owns one bit and signals it `ROUNDS` times, each time waiting
/// until the waiter has seen it (so its own signals never merge, and each must be seen exactly
/// once), while one waiter loops on `wait` (blocking on a channel that the signaller who wakes it
/// feeds) and `poll`. A lost bit shows as a timeout, a duplicated one as a count above `ROUNDS`,
/// a wake of a thread that was not blocked as a leftover wake.
#[test]
fn stress_every_bit_is_seen_exactly_once() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::{Arc, mpsc};
    use std::time::{Duration, Instant};

    const SIGNALLERS: usize = 4;
    const ROUNDS: u64 = 2000;
    const PATIENCE: Duration = Duration::from_secs(20);
    let n = Arc::new(Notification::new());
    let me = t(1);
    let (wake_tx, wake_rx) = mpsc::channel::<u64>();
    let seen: Arc<[AtomicU64; SIGNALLERS]> = Arc::new(Default::default());

    let signallers: Vec<_> = (0..SIGNALLERS)
        .map(|i| {
            let (n, wake_tx, seen) = (n.clone(), wake_tx.clone(), seen.clone());
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    match n.signal(1 << i).unwrap() {
                        SignalOutcome::Pending => {}
                        SignalOutcome::Wake { waiter, bits } => {
                            assert_eq!(waiter, me);
                            assert_ne!(bits, 0);
                            wake_tx.send(bits).unwrap();
                        }
                    }
                    let start = Instant::now();
                    while seen[i].load(SeqCst) < round {
                        assert!(start.elapsed() < PATIENCE, "bit {i} round {round} lost");
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    drop(wake_tx);

    let mut iteration = 0u64;
    while seen.iter().any(|count| count.load(SeqCst) < ROUNDS) {
        iteration += 1;
        let bits = if iteration.is_multiple_of(3) {
            n.poll()
        } else {
            match n.wait(me, true).unwrap() {
                WaitOutcome::Ready(bits) => bits,
                WaitOutcome::Block => wake_rx.recv_timeout(PATIENCE).expect("a signal wakes us"),
            }
        };
        for (i, count) in seen.iter().enumerate() {
            if bits & (1 << i) != 0 {
                count.fetch_add(1, SeqCst);
            }
        }
    }
    for s in signallers {
        s.join().unwrap();
    }
    for count in seen.iter() {
        assert_eq!(count.load(SeqCst), ROUNDS);
    }
    assert!(
        wake_rx.try_recv().is_err(),
        "a wake for a thread that was not blocked"
    );
    assert_eq!((n.peek(), n.waiter()), (0, None));
}

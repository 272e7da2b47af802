//! `cap_errors`: every error of the capability layer, each checked for the exact code.
//!
//! Owns the checks of handle validation (null, small integers, generation 0, a forged future
//! generation, an index beyond any table: `InvalidCapability`; deleted: `StaleCapability`), of
//! the documented check order (stale before wrong type, type before rights), of types
//! (`WrongType`), of rights (`InsufficientRights`: using, copying and granting beyond one's
//! rights) and of badges (`InvalidArgument` for re-badging, a reserved notification bit, a badge
//! on a type that takes none). It must never leave a capability it made in init's table.

use super::{Context, TestResult, expect_eq, expect_err, owned};
use crate::Env;
use abi::{CapHandle, Error, ObjectType, Rights, Timeout};
use rt::syscall::{
    Message, address_space_create, call, cap_copy, cap_delete, cap_grant, cap_identify,
    endpoint_create, frame_alloc, notification_create, recv, signal, wait,
};

/// Runs the test.
pub fn run(_env: &Env) -> TestResult {
    let ep = owned("endpoint_create", endpoint_create())?;
    let info = cap_identify(ep.get()).context("cap_identify of a new endpoint")?;
    expect_eq("type of a new endpoint", info.object, ObjectType::Endpoint)?;
    expect_eq(
        "rights of a new endpoint",
        info.rights,
        ObjectType::Endpoint.rights(),
    )?;
    expect_eq("badge of a new endpoint", info.badge, 0)?;

    // Handles that never named anything.
    let invalid = Error::InvalidCapability;
    expect_err("cap_identify(NULL)", cap_identify(CapHandle::NULL), invalid)?;
    expect_err(
        "cap_identify(raw 5)",
        cap_identify(CapHandle::from_raw(5)),
        invalid,
    )?;
    let (index, generation) = (ep.get().index(), ep.get().generation());
    expect_err(
        "cap_identify(live index, generation 0)",
        cap_identify(CapHandle::new(index, 0)),
        invalid,
    )?;
    if generation < u32::MAX {
        expect_err(
            "cap_identify(live index, forged next generation)",
            cap_identify(CapHandle::new(index, generation + 1)),
            invalid,
        )?;
    }
    expect_err(
        "cap_identify(index 0xff0000, beyond any table)",
        cap_identify(CapHandle::new(0x00ff_0000, 1)),
        invalid,
    )?;

    // A deleted handle is stale, also for a second delete and after its slot is reused.
    let gone = notification_create().context("notification_create")?;
    cap_delete(gone).context("cap_delete")?;
    let stale = Error::StaleCapability;
    expect_err(
        "cap_identify of a deleted handle",
        cap_identify(gone),
        stale,
    )?;
    expect_err("cap_delete twice", cap_delete(gone), stale)?;
    let n = owned("notification_create (second)", notification_create())?;
    expect_err(
        "cap_identify of a deleted handle after a new create",
        cap_identify(gone),
        stale,
    )?;
    let probe = Message::label_only(1);
    expect_err(
        "call on a deleted notification (stale before wrong type)",
        call(gone, &probe, Timeout::POLL),
        stale,
    )?;

    // Wrong types, checked before rights.
    let wrong = Error::WrongType;
    expect_err(
        "call on a notification",
        call(n.get(), &probe, Timeout::POLL),
        wrong,
    )?;
    expect_err("signal on an endpoint", signal(ep.get(), 1), wrong)?;
    expect_err("wait on an endpoint", wait(ep.get(), Timeout::POLL), wrong)?;
    let n_recv = owned(
        "cap_copy notification RECEIVE",
        cap_copy(n.get(), Rights::RECEIVE, 0),
    )?;
    expect_err(
        "call on a RECEIVE-only notification (type before rights)",
        call(n_recv.get(), &probe, Timeout::POLL),
        wrong,
    )?;

    // Rights.
    let rights = Error::InsufficientRights;
    let send_only = owned(
        "cap_copy endpoint SEND",
        cap_copy(ep.get(), Rights::SEND, 0),
    )?;
    expect_err(
        "call without CALL",
        call(send_only.get(), &probe, Timeout::POLL),
        rights,
    )?;
    expect_err(
        "recv without RECEIVE",
        recv(send_only.get(), Timeout::POLL),
        rights,
    )?;
    expect_err("signal without SEND", signal(n_recv.get(), 1), rights)?;
    expect_err(
        "cap_copy adding RECEIVE",
        cap_copy(send_only.get(), Rights::SEND | Rights::RECEIVE, 0),
        rights,
    )?;
    expect_err(
        "cap_copy adding GRANT",
        cap_copy(send_only.get(), Rights::SEND | Rights::GRANT, 0),
        rights,
    )?;
    expect_err(
        "cap_copy of an endpoint with READ (not an endpoint right)",
        cap_copy(ep.get(), Rights::READ, 0),
        rights,
    )?;
    let space = owned("address_space_create", address_space_create())?;
    expect_err(
        "cap_grant of a capability without GRANT",
        cap_grant(send_only.get(), space.get(), Rights::SEND),
        rights,
    )?;
    let space_map = owned(
        "cap_copy address space MAP",
        cap_copy(space.get(), Rights::MAP, 0),
    )?;
    expect_err(
        "cap_grant into a space without CONTROL",
        cap_grant(ep.get(), space_map.get(), Rights::SEND),
        rights,
    )?;
    let send_grant = owned(
        "cap_copy endpoint SEND|GRANT",
        cap_copy(ep.get(), Rights::SEND | Rights::GRANT, 0),
    )?;
    expect_err(
        "cap_grant with more rights than the source",
        cap_grant(send_grant.get(), space.get(), Rights::SEND | Rights::CALL),
        rights,
    )?;

    // Badges.
    let badged = owned(
        "cap_copy endpoint with badge 7",
        cap_copy(ep.get(), Rights::SEND | Rights::CALL, 7),
    )?;
    let info = cap_identify(badged.get()).context("cap_identify of the badged copy")?;
    expect_eq("badge of the badged copy", info.badge, 7)?;
    expect_eq(
        "rights of the badged copy",
        info.rights,
        Rights::SEND | Rights::CALL,
    )?;
    let kept = owned(
        "cap_copy of a badged copy with badge 0",
        cap_copy(badged.get(), Rights::SEND, 0),
    )?;
    let info = cap_identify(kept.get()).context("cap_identify of the copy of the badged copy")?;
    expect_eq("badge kept by a copy with badge 0", info.badge, 7)?;
    let bad_arg = Error::InvalidArgument;
    expect_err(
        "cap_copy re-badging a badged endpoint",
        cap_copy(badged.get(), Rights::SEND, 9),
        bad_arg,
    )?;
    expect_err(
        "cap_copy of a notification with badge bit 63",
        cap_copy(n.get(), Rights::SEND, 1 << 63),
        bad_arg,
    )?;
    let frame = owned("frame_alloc(1)", frame_alloc(1))?;
    expect_err(
        "cap_copy of a frame range with a badge",
        cap_copy(frame.get(), Rights::READ, 1),
        bad_arg,
    )?;
    Ok(())
}

//! Error codes, and how a result travels in the result register.
//!
//! Owns the numeric value of every [`Error`] and the rule that splits a raw result register into
//! success and failure. It must never reuse or renumber a code: they are ABI (pinned by the
//! crate's tests); new codes take the next free negative number.
//!
//! # The result register
//!
//! Every system call returns one word in the result register (see [`crate::regs`]). Read as a
//! signed number, a value in `-4095..=-1` ([`ERROR_MIN`]`..=-1`) is an error code; every other
//! value is a success value (a count, a handle, a bit set, or 0). The kernel never returns a
//! success value inside the error range: handles, counts and bit sets all stay far below it.

use core::fmt;

/// The most negative raw value that still encodes an error. Raw results in `ERROR_MIN..=-1` are
/// errors; everything else is success.
pub const ERROR_MIN: isize = -4095;

/// Why a system call failed.
///
/// The values are stable and negative, so that they fit the result register next to success
/// values (see the module documentation). A call that returns an error had no effect, except
/// where its [`Syscall`](crate::Syscall) documentation says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(isize)]
pub enum Error {
    /// The capability handle names no capability: it is [`CapHandle::NULL`](crate::CapHandle::NULL),
    /// its index is outside the caller's capability table, or it was never handed out (a forged or
    /// corrupted handle).
    InvalidCapability = -1,
    /// The capability handle was valid once, but its capability has since been deleted or moved
    /// away (the slot's generation moved on), or the object it names was destroyed.
    StaleCapability = -2,
    /// The capability names an object of another type than the operation needs (for example a
    /// notification handle passed to `Call`).
    WrongType = -3,
    /// The capability lacks a right the operation needs, or a copy asked for rights its source
    /// does not have (rights can only shrink).
    InsufficientRights = -4,
    /// An argument that is not an address is out of range or malformed: unknown flag bits,
    /// non-zero reserved bits, a message length above [`MSG_WORDS`](crate::MSG_WORDS), and so on.
    InvalidArgument = -5,
    /// A pointer or address argument cannot be used: it lies outside user space, is not mapped
    /// (and the process's pager, asked, did not map it: see [`fault`](crate::fault)), lacks the
    /// access the call needs, or is misaligned where alignment is required.
    BadAddress = -6,
    /// The kernel has no memory left for the object or mapping the call asked for.
    OutOfMemory = -7,
    /// The call's timeout expired before it could complete.
    Timeout = -8,
    /// The call would have had to block, and its timeout was [`Timeout::POLL`](crate::Timeout::POLL)
    /// ("do not block").
    WouldBlock = -9,
    /// The operation was aborted because the object or thread it waited on went away: the
    /// endpoint was destroyed while the caller was queued on it, or the thread that was to reply
    /// to a `Call` was killed.
    Killed = -10,
    /// The system-call number is not one of [`Syscall`](crate::Syscall).
    NoSuchSyscall = -11,
    /// The target capability table has no free slot.
    TableFull = -12,
    /// The object is already in use in a way that excludes this call: a notification has at most
    /// one waiting thread.
    Busy = -13,
    /// The reply token names no call awaiting a reply from this thread: it is forged, the call was
    /// already answered, or the caller gave up (timeout) or was killed.
    InvalidReply = -14,
    /// An error code inside the error range that this version of the ABI does not know (a newer
    /// kernel). The kernel itself never returns it; decoding produces it so that every raw result
    /// has a meaning.
    Unknown = ERROR_MIN,
}

impl Error {
    /// Every error code this version knows, in numeric order (most recent last), `Unknown`
    /// excepted.
    pub const ALL: [Error; 14] = [
        Error::InvalidCapability,
        Error::StaleCapability,
        Error::WrongType,
        Error::InsufficientRights,
        Error::InvalidArgument,
        Error::BadAddress,
        Error::OutOfMemory,
        Error::Timeout,
        Error::WouldBlock,
        Error::Killed,
        Error::NoSuchSyscall,
        Error::TableFull,
        Error::Busy,
        Error::InvalidReply,
    ];

    /// Decodes an error code. `None` when `raw` is not in the error range (`ERROR_MIN..=-1`);
    /// [`Error::Unknown`] when it is in the range but unassigned in this version.
    #[must_use]
    pub const fn from_raw(raw: isize) -> Option<Self> {
        if raw < ERROR_MIN || raw >= 0 {
            return None;
        }
        Some(match raw {
            -1 => Self::InvalidCapability,
            -2 => Self::StaleCapability,
            -3 => Self::WrongType,
            -4 => Self::InsufficientRights,
            -5 => Self::InvalidArgument,
            -6 => Self::BadAddress,
            -7 => Self::OutOfMemory,
            -8 => Self::Timeout,
            -9 => Self::WouldBlock,
            -10 => Self::Killed,
            -11 => Self::NoSuchSyscall,
            -12 => Self::TableFull,
            -13 => Self::Busy,
            -14 => Self::InvalidReply,
            _ => Self::Unknown,
        })
    }

    /// The stable numeric code (negative).
    #[must_use]
    pub const fn into_raw(self) -> isize {
        self as isize
    }

    /// A short lower-case name, for logs and test reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::InvalidCapability => "invalid capability",
            Self::StaleCapability => "stale capability",
            Self::WrongType => "wrong object type",
            Self::InsufficientRights => "insufficient rights",
            Self::InvalidArgument => "invalid argument",
            Self::BadAddress => "bad address",
            Self::OutOfMemory => "out of memory",
            Self::Timeout => "timed out",
            Self::WouldBlock => "would block",
            Self::Killed => "peer killed or object destroyed",
            Self::NoSuchSyscall => "no such system call",
            Self::TableFull => "capability table full",
            Self::Busy => "busy",
            Self::InvalidReply => "invalid reply token",
            Self::Unknown => "unknown error code",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.into_raw())
    }
}

impl core::error::Error for Error {}

/// The result of a system call, as user space sees it.
pub type Result<T> = core::result::Result<T, Error>;

/// Decodes the raw result register: an error for values in the error range, otherwise the value
/// itself.
pub const fn result_from_raw(raw: usize) -> Result<usize> {
    match Error::from_raw(raw as isize) {
        Some(error) => Err(error),
        None => Ok(raw),
    }
}

/// Encodes a result for the result register (what the kernel writes on return).
///
/// A success value must lie outside the error range (every value the kernel returns does; see
/// the module documentation): one that does not would read back as an error, which debug builds
/// catch with an assertion.
#[must_use]
pub const fn result_into_raw(result: Result<usize>) -> usize {
    match result {
        Ok(value) => {
            debug_assert!(
                Error::from_raw(value as isize).is_none(),
                "success value inside the error range"
            );
            value
        }
        Err(error) => error.into_raw() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for error in Error::ALL.into_iter().chain([Error::Unknown]) {
            assert_eq!(Error::from_raw(error.into_raw()), Some(error));
            assert_eq!(result_from_raw(result_into_raw(Err(error))), Err(error));
        }
    }

    #[test]
    fn codes_are_distinct_and_consecutive() {
        for (i, error) in Error::ALL.into_iter().enumerate() {
            assert_eq!(error.into_raw(), -(i as isize) - 1, "{error:?}");
        }
    }

    #[test]
    fn range_boundaries() {
        assert_eq!(Error::from_raw(0), None);
        assert_eq!(Error::from_raw(1), None);
        assert_eq!(Error::from_raw(isize::MAX), None);
        assert_eq!(Error::from_raw(ERROR_MIN - 1), None);
        assert_eq!(Error::from_raw(isize::MIN), None);
        assert_eq!(Error::from_raw(-15), Some(Error::Unknown));
        assert_eq!(Error::from_raw(ERROR_MIN), Some(Error::Unknown));
        assert_eq!(result_from_raw(0), Ok(0));
        assert_eq!(result_from_raw(usize::MAX - 4095), Ok(usize::MAX - 4095));
        assert_eq!(result_from_raw(usize::MAX), Err(Error::InvalidCapability));
        assert_eq!(result_from_raw(usize::MAX - 4094), Err(Error::Unknown));
        // A capability handle never reads as an error: with its index below 2^32 - 4095 (tables
        // hold at most 2^16 slots), even generation u32::MAX leaves it below the range.
        assert_eq!(
            result_from_raw(0xffff_fffe_0000_ffff),
            Ok(0xffff_fffe_0000_ffff)
        );
    }

    #[test]
    fn success_values_pass_through() {
        for value in [0, 1, 42, 1 << 32, (1 << 63) - 1, 1 << 63] {
            assert_eq!(result_into_raw(Ok(value)), value);
            assert_eq!(result_from_raw(value), Ok(value));
        }
    }

    #[test]
    fn display_names_the_code() {
        extern crate std;
        assert_eq!(
            std::format!("{}", Error::StaleCapability),
            "stale capability (-2)"
        );
    }
}

//! The one place where the kernel binary names its architecture.
//!
//! Everything else in `boot` uses [`Machine`] through the `kernel_core::hal::Platform` trait, so
//! no other file needs a `cfg(target_arch)`.

#[cfg(target_arch = "aarch64")]
pub use arch_aarch64::{Machine, context, entry_point};
#[cfg(target_arch = "x86_64")]
pub use arch_x86_64::{Machine, context, entry_point};

//! The two target architectures and every per-architecture constant the host tool needs.
//!
//! Owns: the names used on the command line and in file names, the Rust targets of the kernel and
//! of user programs and their `RUSTFLAGS` variables, the QEMU binary, the default machine and
//! CPU (and the CPU of `run`), and how to tell the architecture of a kernel address. Nothing else in xtask spells a
//! target triple.

use std::fmt;
use std::str::FromStr;

/// A kernel architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86_64, booted through the PVH note.
    X86_64,
    /// AArch64, booted as a Linux arm64 `Image`.
    Aarch64,
}

impl Arch {
    /// Both architectures, in the order builds and test runs use.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The name used on the command line, in scenario tables and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The Rust target the kernel is built for.
    pub fn target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none-softfloat",
        }
    }

    /// The per-target `RUSTFLAGS` variable and its value for the kernel build.
    pub fn rustflags(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => (
                "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
                "-C force-frame-pointers=yes -C relocation-model=static -C code-model=kernel",
            ),
            Arch::Aarch64 => (
                "CARGO_TARGET_AARCH64_UNKNOWN_NONE_SOFTFLOAT_RUSTFLAGS",
                "-C force-frame-pointers=yes -C relocation-model=static",
            ),
        }
    }

    /// The Rust target user programs are built for (hard-float on AArch64: user programs may
    /// use FP/SIMD, the kernel does not).
    pub fn user_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none",
        }
    }

    /// The per-target `RUSTFLAGS` variable of [`Arch::user_target`].
    pub fn user_rustflags_var(self) -> &'static str {
        match self {
            Arch::X86_64 => "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS",
            Arch::Aarch64 => "CARGO_TARGET_AARCH64_UNKNOWN_NONE_RUSTFLAGS",
        }
    }

    /// The package of this architecture's support crate.
    pub fn arch_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "strait-arch-x86_64",
            Arch::Aarch64 => "strait-arch-aarch64",
        }
    }

    /// True when QEMU boots a flat binary made from the ELF (`kernel.img`) rather than the ELF.
    pub fn needs_flat_image(self) -> bool {
        matches!(self, Arch::Aarch64)
    }

    /// The QEMU system emulator for this architecture.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The `-M` value when a scenario names none.
    pub fn default_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "q35",
            Arch::Aarch64 => "virt,gic-version=3",
        }
    }

    /// The `-cpu` value when a scenario names none (`None`: QEMU's own default).
    pub fn default_cpu(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::Aarch64 => Some("cortex-a72"),
        }
    }

    /// The `-cpu` value of `cargo xtask run`: a CPU with every protection the kernel turns on
    /// (x86_64: `max`, which has SMEP and SMAP; QEMU's default `qemu64` has neither). AArch64
    /// keeps the scenarios' default.
    pub fn run_cpu(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => Some("max"),
            Arch::Aarch64 => self.default_cpu(),
        }
    }

    /// The architecture whose kernel lives at `addr`: x86_64 kernels run at the top 2 GiB
    /// (`0xffffffff8...`), AArch64 kernels elsewhere in the TTBR1 half (the image at
    /// `0xffffff80...`, the HHDM at `0xffff0000...`).
    pub fn of_kernel_address(addr: u64) -> Option<Arch> {
        if addr >= 0xffff_ffff_8000_0000 {
            Some(Arch::X86_64)
        } else if addr >> 48 == 0xffff {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown architecture `{s}` (expected x86_64 or aarch64)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for arch in Arch::ALL {
            assert_eq!(arch.name().parse::<Arch>(), Ok(arch));
        }
        assert!("riscv64".parse::<Arch>().is_err());
    }

    #[test]
    fn rustflags_variables_name_their_targets() {
        let var = |target: &str| {
            format!(
                "CARGO_TARGET_{}_RUSTFLAGS",
                target.to_uppercase().replace('-', "_")
            )
        };
        for arch in Arch::ALL {
            assert_eq!(arch.rustflags().0, var(arch.target()));
            assert_eq!(arch.user_rustflags_var(), var(arch.user_target()));
        }
    }

    #[test]
    fn kernel_addresses_tell_the_architecture() {
        assert_eq!(
            Arch::of_kernel_address(0xffff_ffff_8010_2030),
            Some(Arch::X86_64)
        );
        assert_eq!(
            Arch::of_kernel_address(0xffff_ff80_0000_1234),
            Some(Arch::Aarch64)
        );
        assert_eq!(
            Arch::of_kernel_address(0xffff_0000_4008_0000),
            Some(Arch::Aarch64)
        );
        assert_eq!(Arch::of_kernel_address(0x4008_0000), None);
    }
}

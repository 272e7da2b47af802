//! Where things are: the workspace root and every path xtask reads or writes under it.
//!
//! Owns the on-disk layout the tool relies on (`target/kernel`, `target/user`,
//! `target/images/<arch>` (and U-Boot's flash bank there), `target/test-logs`, `target/bench`, `servers/`, `tests/scenarios`,
//! `tests/stages.toml`, `rust-toolchain.toml`) and which `cargo` to call.
//! Nothing else in xtask joins path components onto the root.

use crate::arch::Arch;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the parent of this crate's manifest directory.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Which kernel an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The kernel as it ships: no in-kernel tests, no `TestReport`, no test hooks.
    Normal,
    /// A test image: built with the kernel's `testing` feature (`cargo xtask test`).
    Test,
}

impl Flavor {
    /// What it is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Normal => "kernel",
            Flavor::Test => "test kernel",
        }
    }

    /// The flavor of the kernel that printed `log`: a test image when its command line (the
    /// `[bootinfo] cmdline` line) selects tests, else a normal one. Symbolizing with the other
    /// flavor's ELF would name the wrong functions.
    pub fn of_log(log: &str) -> Flavor {
        let selects_tests = log.lines().any(|line| {
            line.trim_start().starts_with("[bootinfo] cmdline")
                && Flavor::of_cmdline(
                    line.trim_end()
                        .trim_end_matches('"')
                        .replace('"', " ")
                        .as_str(),
                ) == Flavor::Test
        });
        if selects_tests {
            Flavor::Test
        } else {
            Flavor::Normal
        }
    }

    /// The kernel a command line needs: the test image when it selects tests (the normal kernel
    /// ignores `test=`).
    pub fn of_cmdline(cmdline: &str) -> Flavor {
        if test_catalog::Selection::from_cmdline(cmdline).is_test_boot() {
            Flavor::Test
        } else {
            Flavor::Normal
        }
    }
}

/// `cargo SUBCOMMAND` for the `arch` kernel of `flavor`: the boot package for the kernel target,
/// the flavor's features and target directory, and the kernel's own flags (global flags would
/// override the per-target ones and drop the kernel code model). The caller adds its own
/// arguments.
pub fn kernel_cargo(subcommand: &str, arch: Arch, flavor: Flavor) -> Command {
    let (flags_var, flags) = arch.rustflags();
    let mut cargo = Command::new(cargo());
    cargo
        .current_dir(root())
        .args([subcommand, "-p", "strait-boot", "--target", arch.target()]);
    if flavor == Flavor::Test {
        cargo.args(["--features", "strait-boot/testing"]);
    }
    cargo
        .arg("--target-dir")
        .arg(kernel_target_dir(flavor))
        .env(flags_var, flags)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cargo
}

/// The target directory of the kernel builds (kept apart from the host builds, and the test
/// kernel apart from the normal one, so that switching does not rebuild either).
pub fn kernel_target_dir(flavor: Flavor) -> PathBuf {
    match flavor {
        Flavor::Normal => root().join("target").join("kernel"),
        Flavor::Test => root().join("target").join("kernel-test"),
    }
}

/// Where `cargo build` leaves the kernel ELF for `arch`.
pub fn built_kernel(arch: Arch, flavor: Flavor) -> PathBuf {
    kernel_target_dir(flavor)
        .join(arch.target())
        .join("release")
        .join("kernel")
}

/// The target directory of the user program builds (kept apart from the kernel builds).
pub fn user_target_dir() -> PathBuf {
    root().join("target").join("user")
}

/// `servers/`: every workspace package whose manifest is below it is userspace.
pub fn servers_dir() -> PathBuf {
    root().join("servers")
}

/// The linker script every user program is linked with.
pub fn user_linker_script() -> PathBuf {
    servers_dir().join("rt").join("user.ld")
}

/// `target/images/<arch>` (normal) or `target/images/<arch>/test` (test image): the images
/// QEMU boots.
pub fn image_dir(arch: Arch, flavor: Flavor) -> PathBuf {
    let dir = root().join("target").join("images").join(arch.name());
    match flavor {
        Flavor::Normal => dir,
        Flavor::Test => dir.join("test"),
    }
}

/// The kernel ELF with symbols (both architectures).
pub fn image_elf(arch: Arch, flavor: Flavor) -> PathBuf {
    image_dir(arch, flavor).join("kernel.elf")
}

/// The flat binary made from the ELF (AArch64 only).
pub fn image_flat(arch: Arch, flavor: Flavor) -> PathBuf {
    image_dir(arch, flavor).join("kernel.img")
}

/// The file QEMU's `-kernel` gets for `arch`.
pub fn boot_image(arch: Arch, flavor: Flavor) -> PathBuf {
    if arch.needs_flat_image() {
        image_flat(arch, flavor)
    } else {
        image_elf(arch, flavor)
    }
}

/// The initial RAM disk of the user programs (cpio `newc`, both architectures; the same user
/// programs for both flavors, so it lives beside the normal image).
pub fn image_initrd(arch: Arch) -> PathBuf {
    image_dir(arch, Flavor::Normal).join("initrd.cpio")
}

/// The flash bank holding U-Boot's boot environment (`uboot::write_flash`), beside the AArch64
/// images: it is the same for every U-Boot boot, and a failed boot's QEMU command line names it.
pub fn uboot_flash() -> PathBuf {
    image_dir(Arch::Aarch64, Flavor::Normal).join("u-boot-env.img")
}

/// `target/bench`: `<arch>.json` of each benchmark run, `<arch>.log` of a failed one.
pub fn bench_dir() -> PathBuf {
    root().join("target").join("bench")
}

/// `target/test-logs`: serial logs of failed or timed-out boot runs.
pub fn test_logs_dir() -> PathBuf {
    root().join("target").join("test-logs")
}

/// `tests/scenarios`: one TOML file per boot scenario.
pub fn scenarios_dir() -> PathBuf {
    root().join("tests").join("scenarios")
}

/// `tests/stages.toml`: the boot stages in order and the hint for each.
pub fn stages_file() -> PathBuf {
    root().join("tests").join("stages.toml")
}

/// `rust-toolchain.toml`: the pinned toolchain with its targets and components.
pub fn toolchain_file() -> PathBuf {
    root().join("rust-toolchain.toml")
}

/// The `cargo` that started us (so the pinned toolchain is used), else `cargo` from `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A path relative to the workspace root when it is below it (for short messages).
pub fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

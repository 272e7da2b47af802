//! Building the bootable kernel images.
//!
//! Owns the kernel build recipe: `cargo build -p strait-boot --release` per target with the
//! kernel's code-generation flags, the flat `Image` for AArch64 (llvm-objcopy from the pinned
//! toolchain's llvm-tools), and the copies under `target/images/<arch>/`, next to the initrd of
//! the user programs that [`userspace`](crate::userspace) builds. Architectures are built one
//! after another, never in parallel (they share the target directory lock anyway).

use crate::arch::Arch;
use crate::workspace::Flavor;
use crate::{userspace, workspace};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The images of one architecture, ready to boot.
#[derive(Debug, Clone)]
pub struct Image {
    /// The ELF with symbols, for symbolization (`target/images/<arch>/kernel.elf`).
    pub elf: PathBuf,
    /// What QEMU's `-kernel` gets (the ELF on x86_64, `kernel.img` on AArch64).
    pub boot: PathBuf,
    /// What QEMU's `-initrd` gets: the user programs (`target/images/<arch>/initrd.cpio`).
    pub initrd: PathBuf,
}

impl Image {
    /// Where the images of `arch` in `flavor` are (built or not).
    pub fn paths_of(arch: Arch, flavor: Flavor) -> Image {
        Image {
            elf: workspace::image_elf(arch, flavor),
            boot: workspace::boot_image(arch, flavor),
            initrd: workspace::image_initrd(arch),
        }
    }
}

/// Builds the normal kernel and the initrd for `arch` into `target/images/<arch>/` and prints
/// the paths.
pub fn build(arch: Arch) -> Result<Image> {
    build_flavor(arch, Flavor::Normal)
}

/// Builds the test kernel (feature `testing`) into `target/images/<arch>/test/` and the initrd,
/// and prints the paths.
pub fn build_test(arch: Arch) -> Result<Image> {
    build_flavor(arch, Flavor::Test)
}

fn build_flavor(arch: Arch, flavor: Flavor) -> Result<Image> {
    let what = flavor.name();
    eprintln!("building the {arch} {what} ({})", arch.target());
    let status = workspace::kernel_cargo("build", arch, flavor)
        .args(["--bin", "kernel", "--release"])
        .status()
        .context("cannot start cargo")?;
    if !status.success() {
        bail!("the {arch} {what} build failed ({status})");
    }

    let dir = workspace::image_dir(arch, flavor);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let built = workspace::built_kernel(arch, flavor);
    let elf = workspace::image_elf(arch, flavor);
    std::fs::copy(&built, &elf)
        .with_context(|| format!("cannot copy {} to {}", built.display(), elf.display()))?;
    println!("{arch}: {}", workspace::display(&elf));

    if arch.needs_flat_image() {
        let flat = workspace::image_flat(arch, flavor);
        objcopy_binary(&elf, &flat)?;
        println!("{arch}: {}", workspace::display(&flat));
    }
    userspace::build_initrd(arch)?;
    Ok(Image::paths_of(arch, flavor))
}

/// `llvm-objcopy -O binary elf flat`.
fn objcopy_binary(elf: &Path, flat: &Path) -> Result<()> {
    let objcopy = llvm_objcopy()?;
    let status = Command::new(&objcopy)
        .args(["-O", "binary"])
        .arg(elf)
        .arg(flat)
        .status()
        .with_context(|| format!("cannot start {}", objcopy.display()))?;
    if !status.success() {
        bail!("llvm-objcopy failed ({status})");
    }
    Ok(())
}

/// The llvm-objcopy of the pinned toolchain's llvm-tools component.
fn llvm_objcopy() -> Result<PathBuf> {
    let sysroot = rustc_output(&["--print", "sysroot"])?;
    let version = rustc_output(&["-vV"])?;
    let host = host_triple(&version).context("`rustc -vV` printed no host triple")?;
    let path = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-objcopy");
    if !path.is_file() {
        bail!(
            "{} is missing: run `rustup component add llvm-tools` (or `rustup toolchain install` \
             in the workspace root)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `rustc ARGS` in the workspace root (so rust-toolchain.toml applies) and returns stdout.
fn rustc_output(args: &[&str]) -> Result<String> {
    let out = Command::new("rustc")
        .current_dir(workspace::root())
        .args(args)
        .output()
        .context("cannot start rustc")?;
    if !out.status.success() {
        bail!(
            "rustc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `host:` line of `rustc -vV`.
fn host_triple(version: &str) -> Option<&str> {
    version
        .lines()
        .find_map(|l| l.strip_prefix("host:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_triple_comes_from_rustc_vv() {
        let v = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\n\
                 release: 1.95.0\n";
        assert_eq!(host_triple(v), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(host_triple("nothing"), None);
    }
}

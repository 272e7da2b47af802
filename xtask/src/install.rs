//! Making sure QEMU (and, for the scenarios that boot through it, U-Boot) is installed.
//!
//! Owns the check for the QEMU system emulators on `PATH` and for the U-Boot firmware file, and
//! what to do when one is missing: install Debian's packages when running as root, otherwise
//! print the command and fail.

use crate::arch::Arch;
use crate::uboot;
use anyhow::{Result, bail};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages that carry both emulators.
const PACKAGES: [&str; 2] = ["qemu-system-x86", "qemu-system-arm"];

/// Where `program` is on the `PATH` value `path`, if it is there and executable.
pub fn find_in_path(program: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn missing(arches: &[Arch]) -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    arches
        .iter()
        .map(|a| a.qemu_binary())
        .filter(|bin| find_in_path(bin, &path).is_none())
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The install command line for `packages`, for messages.
fn install_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Installs `packages` with apt-get (as root), or fails with the command to run. `problem` says
/// what is missing.
fn apt_install(problem: &str, packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "{problem}; install it with:\n  sudo {}",
            install_command(packages)
        );
    }
    eprintln!("{problem}: {}", install_command(packages));
    let update = Command::new("apt-get").arg("update").status()?;
    if !update.success() {
        bail!("apt-get update failed ({update})");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !install.success() {
        bail!("apt-get install failed ({install})");
    }
    Ok(())
}

/// Ensures the emulators for `arches` are on `PATH`, installing them when running as root.
pub fn ensure_qemu(arches: &[Arch]) -> Result<()> {
    let absent = missing(arches);
    if absent.is_empty() {
        return Ok(());
    }
    apt_install(
        &format!("{} not found on PATH", absent.join(" and ")),
        &PACKAGES,
    )?;
    let still = missing(arches);
    if !still.is_empty() {
        bail!("{} still not found after installing", still.join(" and "));
    }
    Ok(())
}

/// Ensures the U-Boot firmware for QEMU `virt` is there, installing `u-boot-qemu` when running
/// as root.
pub fn ensure_uboot() -> Result<()> {
    let firmware = Path::new(uboot::FIRMWARE);
    if firmware.is_file() {
        return Ok(());
    }
    apt_install(
        &format!("the U-Boot firmware {} not found", firmware.display()),
        &[uboot::PACKAGE],
    )?;
    if !firmware.is_file() {
        bail!(
            "{} still not found after installing {}",
            firmware.display(),
            uboot::PACKAGE
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("qemu-fake");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("not-exec");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(find_in_path("qemu-fake", &path), Some(exe));
        assert_eq!(find_in_path("not-exec", &path), None);
        assert_eq!(find_in_path("absent", &path), None);
    }
}

//! `cargo xtask lint`: clippy, warnings denied, on the host crates, on each kernel target and on
//! the user programs of each architecture.
//!
//! Owns the lint recipe: the host crates (the workspace's default members, all targets) with a
//! plain host build, the kernel crates per architecture with `-p` and their own `--target`
//! and code-generation flags (a `--workspace` build for one target would also build the other
//! architecture's crates and fail), and the user programs per architecture exactly as
//! [`userspace`] builds them (same packages, user target, flags and `target/user`, through
//! [`userspace::user_cargo`]).

use crate::arch::Arch;
use crate::userspace;
use crate::workspace;
use crate::workspace::Flavor;
use anyhow::{Context, Result};
use std::process::Command;

/// Runs every lint; returns the names of the parts that failed.
pub fn run(arches: &[Arch]) -> Result<Vec<String>> {
    let mut failed = Vec::new();
    eprintln!("clippy: host crates");
    let host = Command::new(workspace::cargo())
        .current_dir(workspace::root())
        // No `-p`: the workspace's default members are exactly the host-buildable crates.
        .args(["clippy", "--all-targets"])
        .args(["--", "-D", "warnings"])
        .status()
        .context("cannot start cargo clippy")?;
    if !host.success() {
        failed.push("host crates".to_owned());
    }
    for &arch in arches {
        // Both kernels: the test-only code (`testing` feature) and the normal build without it
        // (where a test helper left behind would be dead code).
        for flavor in [Flavor::Normal, Flavor::Test] {
            let what = flavor.name();
            eprintln!("clippy: {arch} {what} ({})", arch.target());
            let status = workspace::kernel_cargo("clippy", arch, flavor)
                .args(["-p", arch.arch_package()])
                .args(["--", "-D", "warnings"])
                .status()
                .context("cannot start cargo clippy")?;
            if !status.success() {
                failed.push(format!("{arch} {what}"));
            }
        }
    }
    let packages = userspace::user_packages()?;
    if packages.is_empty() {
        eprintln!("clippy: no user programs");
        return Ok(failed);
    }
    for &arch in arches {
        eprintln!("clippy: {arch} user programs ({})", arch.user_target());
        let status = userspace::user_cargo(arch, "clippy", &packages)?
            .args(["--", "-D", "warnings"])
            .status()
            .context("cannot start cargo clippy")?;
        if !status.success() {
            failed.push(format!("{arch} user programs"));
        }
    }
    Ok(failed)
}

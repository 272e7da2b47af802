//! User programs and the initrd that carries them to the kernel.
//!
//! Owns: which packages are user programs (the bin targets of the workspace packages whose
//! manifest is below `servers/`; packages without a bin target, like the runtime library, are
//! only built as dependencies), the user build recipe (`cargo build --release --bins` for
//! [`Arch::user_target`] into `target/user`, linked with `servers/rt/user.ld`), and the cpio
//! `newc` archive `target/images/<arch>/initrd.cpio` with one entry per program, named after it.
//! The archive is deterministic: entries sorted by name, mtime 0, inodes counted from 1.

use crate::arch::Arch;
use crate::workspace;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A workspace package below `servers/` with at least one bin target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPackage {
    /// The package name (what `-p` takes).
    pub name: String,
    /// Its bin targets.
    pub bins: Vec<String>,
}

/// Builds the user programs of `arch`, packs them into `target/images/<arch>/initrd.cpio` and
/// prints its path. Returns the path.
pub fn build_initrd(arch: Arch) -> Result<PathBuf> {
    let packages = user_packages()?;
    let executables = if packages.is_empty() {
        Vec::new()
    } else {
        build_programs(arch, &packages)?
    };
    let mut files = Vec::new();
    for exe in &executables {
        let name = exe
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("user program {} has no UTF-8 file name", exe.display()))?
            .to_owned();
        let data = std::fs::read(exe).with_context(|| format!("cannot read {}", exe.display()))?;
        if u32::try_from(data.len()).is_err() {
            bail!(
                "user program {} is too big for a cpio newc archive",
                exe.display()
            );
        }
        files.push((name, data));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = files.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("two user programs are both named `{}`", pair[0].0);
    }

    let path = workspace::image_initrd(arch);
    let dir = workspace::image_dir(arch);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&path, pack_newc(&files))
        .with_context(|| format!("cannot write {}", path.display()))?;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    if names.is_empty() {
        eprintln!("{arch}: no user programs; the initrd holds only the trailer");
    } else {
        eprintln!("{arch}: user programs: {}", names.join(", "));
    }
    println!("{arch}: {}", workspace::display(&path));
    Ok(path)
}

/// The user packages of the workspace, from `cargo metadata --no-deps`.
fn user_packages() -> Result<Vec<UserPackage>> {
    let out = Command::new(workspace::cargo())
        .current_dir(workspace::root())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let json = String::from_utf8(out.stdout).context("cargo metadata printed non-UTF-8")?;
    user_packages_from_metadata(&json)
}

#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<MetadataPackage>,
    workspace_root: PathBuf,
}

#[derive(Debug, Deserialize)]
struct MetadataPackage {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<MetadataTarget>,
}

#[derive(Debug, Deserialize)]
struct MetadataTarget {
    name: String,
    kind: Vec<String>,
}

/// The packages of a `cargo metadata` document whose manifest is below `<workspace_root>/servers`
/// and that have bin targets, sorted by name.
fn user_packages_from_metadata(json: &str) -> Result<Vec<UserPackage>> {
    let metadata: Metadata =
        serde_json::from_str(json).context("cannot read the output of cargo metadata")?;
    let servers = metadata.workspace_root.join("servers");
    let mut packages: Vec<UserPackage> = metadata
        .packages
        .into_iter()
        .filter(|p| p.manifest_path.starts_with(&servers))
        .map(|p| UserPackage {
            name: p.name,
            bins: p
                .targets
                .into_iter()
                .filter(|t| t.kind.iter().any(|k| k == "bin"))
                .map(|t| t.name)
                .collect(),
        })
        .filter(|p| !p.bins.is_empty())
        .collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

/// The `RUSTFLAGS` of user programs: linked at their fixed addresses by `linker_script`.
fn user_rustflags(linker_script: &Path) -> Result<String> {
    let script = linker_script.to_str().with_context(|| {
        format!(
            "the linker script path {} is not UTF-8",
            linker_script.display()
        )
    })?;
    if script.chars().any(char::is_whitespace) {
        bail!(
            "the linker script path `{script}` has whitespace, which RUSTFLAGS cannot carry; \
             move the workspace"
        );
    }
    Ok(format!(
        "-C link-arg=-T{script} -C relocation-model=static -C force-frame-pointers=yes"
    ))
}

/// Builds every bin of `packages` for `arch` and returns the executables cargo reported.
fn build_programs(arch: Arch, packages: &[UserPackage]) -> Result<Vec<PathBuf>> {
    let script = workspace::user_linker_script();
    if !script.is_file() {
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "the user linker script {} is missing, but there are user programs to link ({})",
            workspace::display(&script),
            names.join(", ")
        );
    }
    let flags = user_rustflags(&script)?;
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    eprintln!(
        "building the {arch} user programs ({}): {}",
        arch.user_target(),
        names.join(", ")
    );
    let mut cmd = Command::new(workspace::cargo());
    cmd.current_dir(workspace::root())
        .args(["build", "--release"]);
    for p in packages {
        cmd.args(["-p", &p.name]);
    }
    let out = cmd
        .args(["--bins", "--target", arch.user_target()])
        .arg("--target-dir")
        .arg(workspace::user_target_dir())
        .arg("--message-format=json-render-diagnostics")
        .env(arch.user_rustflags_var(), flags)
        // Global flags would override the per-target ones and drop the linker script.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start cargo")?;
    if !out.status.success() {
        bail!("the {arch} user program build failed ({})", out.status);
    }
    let executables = executables_from_messages(&String::from_utf8_lossy(&out.stdout));
    let expected: usize = packages.iter().map(|p| p.bins.len()).sum();
    if executables.len() != expected {
        bail!(
            "cargo reported {} user executables, expected {expected} (the bins of {})",
            executables.len(),
            names.join(", ")
        );
    }
    Ok(executables)
}

/// The `executable` of every `compiler-artifact` message of a bin target in cargo's JSON output
/// (one JSON object per line; other lines are ignored).
fn executables_from_messages(stdout: &str) -> Vec<PathBuf> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .collect()
}

/// `newc` mode of a regular file with permissions 0755.
const REGULAR_0755: u32 = 0o100_755;

/// A cpio `newc` archive of `files` (name, contents), in the given order: regular files, mode
/// 0755, inodes from 1, mtime 0, then the `TRAILER!!!` entry. Each header plus its NUL-terminated
/// name, and each file's data, is padded with zeros to a multiple of 4 bytes.
///
/// Panics if a name or a file does not fit the format's 32-bit sizes.
pub fn pack_newc(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, data)) in files.iter().enumerate() {
        let ino = u32::try_from(i + 1).expect("fewer than 2^32 files");
        push_entry(&mut out, ino, REGULAR_0755, name, data);
    }
    push_entry(&mut out, 0, 0, "TRAILER!!!", &[]);
    out
}

fn push_entry(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
    let size = |n: usize| u32::try_from(n).expect("cpio newc sizes are 32-bit");
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        1, // nlink
        0, // mtime
        size(data.len()),
        0,                    // devmajor
        0,                    // devminor
        0,                    // rdevmajor
        0,                    // rdevminor
        size(name.len() + 1), // namesize, with the NUL
        0,                    // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: usize = 110;

    /// The 13 header fields at `at`, after checking the magic.
    fn fields(archive: &[u8], at: usize) -> Vec<u32> {
        assert_eq!(&archive[at..at + 6], b"070701", "magic at {at}");
        (0..13)
            .map(|i| {
                let start = at + 6 + 8 * i;
                let text = std::str::from_utf8(&archive[start..start + 8]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            })
            .collect()
    }

    /// Reads an archive back: (ino, mode, name, data) of each entry, trailer included. Checks
    /// that every header starts on a 4-byte boundary and that padding is zeros.
    fn unpack(archive: &[u8]) -> Vec<(u32, u32, String, Vec<u8>)> {
        let mut entries = Vec::new();
        let mut at = 0;
        while at < archive.len() {
            assert_eq!(at % 4, 0, "header at {at} is not aligned");
            let f = fields(archive, at);
            let (filesize, namesize) = (f[6] as usize, f[11] as usize);
            let name_start = at + HEADER;
            let name_end = name_start + namesize;
            assert_eq!(archive[name_end - 1], 0, "name is NUL-terminated");
            let name = String::from_utf8(archive[name_start..name_end - 1].to_vec()).unwrap();
            let data_start = name_end.next_multiple_of(4);
            assert!(archive[name_end..data_start].iter().all(|&b| b == 0));
            let data_end = data_start + filesize;
            let next = data_end.next_multiple_of(4);
            assert!(archive[data_end..next].iter().all(|&b| b == 0));
            entries.push((f[0], f[1], name, archive[data_start..data_end].to_vec()));
            at = next;
        }
        assert_eq!(at, archive.len());
        entries
    }

    #[test]
    fn one_file_archive_field_by_field() {
        let archive = pack_newc(&[("init".to_owned(), b"\x7fELF!".to_vec())]);
        // Header 110 + "init\0" 5 = 115 -> 116; data 5 -> 8; trailer 110 + 11 = 121 -> 124.
        assert_eq!(archive.len(), 116 + 8 + 124);
        let f = fields(&archive, 0);
        assert_eq!(f[0], 1, "ino");
        assert_eq!(f[1], 0o100_755, "mode");
        assert_eq!((f[2], f[3]), (0, 0), "uid, gid");
        assert_eq!(f[4], 1, "nlink");
        assert_eq!(f[5], 0, "mtime");
        assert_eq!(f[6], 5, "filesize");
        assert_eq!(
            &f[7..11],
            [0, 0, 0, 0],
            "devmajor, devminor, rdevmajor, rdevminor"
        );
        assert_eq!(f[11], 5, "namesize with the NUL");
        assert_eq!(f[12], 0, "check");
        assert_eq!(
            &archive[..HEADER],
            concat!(
                "070701", "00000001", // ino
                "000081ED", // mode
                "00000000", // uid
                "00000000", // gid
                "00000001", // nlink
                "00000000", // mtime
                "00000005", // filesize
                "00000000", // devmajor
                "00000000", // devminor
                "00000000", // rdevmajor
                "00000000", // rdevminor
                "00000005", // namesize
                "00000000", // check
            )
            .as_bytes()
        );
        assert_eq!(&archive[110..116], b"init\0\0");
        assert_eq!(&archive[116..124], b"\x7fELF!\0\0\0");
        let trailer = fields(&archive, 124);
        assert_eq!(trailer[4], 1, "trailer nlink");
        assert_eq!(trailer[6], 0, "trailer filesize");
        assert_eq!(trailer[11], 11, "trailer namesize");
        assert_eq!(&archive[124 + HEADER..], b"TRAILER!!!\0\0\0\0");
    }

    #[test]
    fn empty_archive_is_only_the_trailer() {
        let archive = pack_newc(&[]);
        assert_eq!(archive.len(), 124);
        assert_eq!(
            unpack(&archive),
            [(0, 0, "TRAILER!!!".to_owned(), Vec::new())]
        );
    }

    #[test]
    fn names_and_data_of_every_length_mod_4_are_padded() {
        for name_len in 1..=8 {
            for data_len in 0..=8 {
                let name = "n".repeat(name_len);
                let data: Vec<u8> = (1..=data_len as u8).collect();
                let files = vec![(name.clone(), data.clone()), ("x".to_owned(), vec![0xaa])];
                let archive = pack_newc(&files);
                assert_eq!(archive.len() % 4, 0);
                let entries = unpack(&archive);
                assert_eq!(
                    entries,
                    [
                        (1, 0o100_755, name, data),
                        (2, 0o100_755, "x".to_owned(), vec![0xaa]),
                        (0, 0, "TRAILER!!!".to_owned(), Vec::new()),
                    ],
                    "name length {name_len}, data length {data_len}"
                );
            }
        }
    }

    #[test]
    fn metadata_selects_bin_packages_below_servers() {
        let json = r#"{
            "workspace_root": "/w",
            "packages": [
                {"name": "strait-abi", "manifest_path": "/w/abi/Cargo.toml",
                 "targets": [{"name": "strait_abi", "kind": ["lib"]}]},
                {"name": "strait-rt", "manifest_path": "/w/servers/rt/Cargo.toml",
                 "targets": [{"name": "strait_rt", "kind": ["lib"]}]},
                {"name": "strait-init", "manifest_path": "/w/servers/init/Cargo.toml",
                 "targets": [{"name": "init", "kind": ["bin"]},
                             {"name": "build-script-build", "kind": ["custom-build"]}]},
                {"name": "strait-bench", "manifest_path": "/w/servers/bench/Cargo.toml",
                 "targets": [{"name": "bench", "kind": ["bin"]}, {"name": "b2", "kind": ["bin"]}]},
                {"name": "xtask", "manifest_path": "/w/xtask/Cargo.toml",
                 "targets": [{"name": "xtask", "kind": ["bin"]}]}
            ]
        }"#;
        assert_eq!(
            user_packages_from_metadata(json).unwrap(),
            [
                UserPackage {
                    name: "strait-bench".into(),
                    bins: vec!["bench".into(), "b2".into()]
                },
                UserPackage {
                    name: "strait-init".into(),
                    bins: vec!["init".into()]
                },
            ]
        );
        assert!(user_packages_from_metadata("not json").is_err());
    }

    #[test]
    fn executables_come_from_bin_artifacts() {
        let stdout = concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"strait_rt"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["custom-build"],"name":"build-script-build"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"init"},"executable":"/w/target/user/x/release/init"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
            "not json\n",
        );
        assert_eq!(
            executables_from_messages(stdout),
            [PathBuf::from("/w/target/user/x/release/init")]
        );
    }

    #[test]
    fn user_rustflags_name_the_linker_script() {
        assert_eq!(
            user_rustflags(Path::new("/w/servers/rt/user.ld")).unwrap(),
            "-C link-arg=-T/w/servers/rt/user.ld -C relocation-model=static \
             -C force-frame-pointers=yes"
        );
        assert!(user_rustflags(Path::new("/my work/servers/rt/user.ld")).is_err());
    }
}

//! User programs and the initrd that carries them to the kernel.
//!
//! Owns: which packages are user programs (the bin targets of the workspace packages whose
//! manifest is below `servers/`; packages without a bin target, like the runtime library, are
//! only built as dependencies), the user build recipe (`cargo build --release --bins` for
//! [`Arch::user_target`] into `target/user`, linked with `servers/rt/user.ld`), and the cpio
//! `newc` archive `target/images/<arch>/initrd.cpio` with one entry per program, named after it.
//! The archive is deterministic: entries sorted by name, mtime 0, inodes counted from 1.
//!
//! Next to the programs, every initrd carries deliberately corrupt copies of `init`
//! ([`corrupt_fixtures`]: `bad_init_truncated`, `bad_init_magic`, `bad_init_machine`,
//! `bad_init_segment`), which the `init_*` scenarios boot with `init=NAME` to prove that the
//! kernel refuses each with a clear `[stage] init FAILED` line.
//!
//! Also owns the cargo invocation over the user programs ([`user_cargo`]), which `cargo xtask
//! lint` reuses to run clippy with exactly the build's packages, target, flags and target dir.

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
    let fixtures = match files.iter().find(|(name, _)| name == INIT_NAME) {
        Some((_, init)) => corrupt_fixtures(init),
        None => Vec::new(),
    };
    let fixture_names: Vec<String> = fixtures.iter().map(|(n, _)| n.clone()).collect();
    if !fixtures.is_empty() && fixtures.len() != FIXTURE_NAMES.len() {
        eprintln!(
            "warning: {arch}: `{INIT_NAME}` is not the ELF64 executable expected; only these \
             corrupt copies could be made: {}",
            fixture_names.join(", ")
        );
    }
    files.extend(fixtures);
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = files.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!(
            "two initrd entries are both named `{}` (a user program or a corrupt copy of init)",
            pair[0].0
        );
    }

    let path = workspace::image_initrd(arch);
    let dir = workspace::image_dir(arch, workspace::Flavor::Normal);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&path, pack_newc(&files))
        .with_context(|| format!("cannot write {}", path.display()))?;
    let names: Vec<&str> = files
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !fixture_names.iter().any(|f| f == n))
        .collect();
    if names.is_empty() {
        eprintln!("{arch}: no user programs; the initrd holds only the trailer");
    } else {
        eprintln!("{arch}: user programs: {}", names.join(", "));
    }
    if !fixture_names.is_empty() {
        eprintln!(
            "{arch}: corrupt copies of {INIT_NAME}: {}",
            fixture_names.join(", ")
        );
    }
    println!("{arch}: {}", workspace::display(&path));
    Ok(path)
}

/// The user packages of the workspace, from `cargo metadata --no-deps`.
pub fn user_packages() -> Result<Vec<UserPackage>> {
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

/// `cargo SUBCOMMAND` (`build`, `clippy`, ...) over every bin of `packages` for `arch`, exactly as
/// the user programs are built: `--release --bins`, [`Arch::user_target`], `target/user`, and the
/// user `RUSTFLAGS` in the target's own variable (a global `RUSTFLAGS` is removed: it would
/// override them and drop the linker script). Arguments for the subcommand's tool (`-- ...`) go
/// after. Fails when the user linker script is missing.
pub fn user_cargo(arch: Arch, subcommand: &str, packages: &[UserPackage]) -> Result<Command> {
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
    let mut cmd = Command::new(workspace::cargo());
    cmd.current_dir(workspace::root())
        .args([subcommand, "--release"]);
    for p in packages {
        cmd.args(["-p", &p.name]);
    }
    cmd.args(["--bins", "--target", arch.user_target()])
        .arg("--target-dir")
        .arg(workspace::user_target_dir())
        .env(arch.user_rustflags_var(), flags)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    Ok(cmd)
}

/// Builds every bin of `packages` for `arch` and returns the executables cargo reported.
fn build_programs(arch: Arch, packages: &[UserPackage]) -> Result<Vec<PathBuf>> {
    let mut cmd = user_cargo(arch, "build", packages)?;
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    eprintln!(
        "building the {arch} user programs ({}): {}",
        arch.user_target(),
        names.join(", ")
    );
    let out = cmd
        .arg("--message-format=json-render-diagnostics")
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

/// The initrd entry the kernel starts first, and the one [`corrupt_fixtures`] copies.
const INIT_NAME: &str = "init";
/// The names of the corrupt copies of `init`, in the order [`corrupt_fixtures`] returns them.
pub const FIXTURE_NAMES: [&str; 4] = [
    "bad_init_truncated",
    "bad_init_magic",
    "bad_init_machine",
    "bad_init_segment",
];
/// How many leading bytes of `init` `bad_init_truncated` keeps.
pub const TRUNCATED_LEN: usize = 100;
/// Size of an ELF64 file header.
const EHDR_LEN: usize = 64;
/// Size of an ELF64 program header.
const PHDR_LEN: usize = 56;
/// `e_machine` of x86_64 and of AArch64.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
/// `p_type` of a loadable segment.
const PT_LOAD: u32 = 1;
/// `bad_init_segment` keeps its segment offset congruent to the original modulo this (the
/// largest page size), so that only the bounds check can object to it.
const SEGMENT_ALIGN: u64 = 0x1_0000;

/// Deliberately corrupt copies of the executable `init`, each with one defect that the loader
/// (`servers/loader`, `elf_image::plan`) must refuse, as `(entry name, contents)`:
///
/// - `bad_init_truncated`: the first [`TRUNCATED_LEN`] bytes (the program header table is cut);
/// - `bad_init_magic`: byte 0 set to 0;
/// - `bad_init_machine`: `e_machine` swapped between x86_64 (62) and AArch64 (183);
/// - `bad_init_segment`: the first non-empty `PT_LOAD`'s `p_offset` moved past the end of the file
///   (by a multiple of 64 KiB, so its alignment still agrees with `p_vaddr`).
///
/// All but the first are kept small: only the ELF header and the program header table, with the
/// section header fields (`e_shoff`, `e_shnum`, `e_shstrndx`) cleared so that nothing points
/// past the cut. A fixture that cannot be made from `init` (too short to truncate, not a
/// little-endian ELF64 with a readable program header table, an `e_machine` that is neither
/// architecture's, no non-empty `PT_LOAD`) is left out. Pure: no I/O, never panics.
pub fn corrupt_fixtures(init: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if init.len() > TRUNCATED_LEN {
        out.push((FIXTURE_NAMES[0].to_owned(), init[..TRUNCATED_LEN].to_vec()));
    }
    let Some(headers) = elf_headers(init) else {
        return out;
    };

    let mut magic = headers.clone();
    magic[0] = 0;
    out.push((FIXTURE_NAMES[1].to_owned(), magic));

    let other_machine = match read_u16(&headers, 18) {
        Some(EM_X86_64) => Some(EM_AARCH64),
        Some(EM_AARCH64) => Some(EM_X86_64),
        _ => None,
    };
    if let Some(machine) = other_machine {
        let mut wrong = headers.clone();
        wrong[18..20].copy_from_slice(&machine.to_le_bytes());
        out.push((FIXTURE_NAMES[2].to_owned(), wrong));
    }

    if let Some(ph) = first_load(&headers) {
        let mut segment = headers.clone();
        let old = read_u64(&segment, ph + 8).unwrap_or(0);
        let len = u64::try_from(segment.len()).unwrap_or(u64::MAX);
        // Above the end of the file whatever p_filesz is, and congruent with the old offset.
        let new = len
            .saturating_add(1)
            .next_multiple_of(SEGMENT_ALIGN)
            .saturating_add(old % SEGMENT_ALIGN);
        segment[ph + 8..ph + 16].copy_from_slice(&new.to_le_bytes());
        out.push((FIXTURE_NAMES[3].to_owned(), segment));
    }
    out
}

/// The ELF header and program header table of `elf` (everything up to the end of the table),
/// with the section header fields cleared; `None` unless `elf` is a little-endian ELF64 whose
/// program header table (of 56-byte entries) lies after the header and within the file.
fn elf_headers(elf: &[u8]) -> Option<Vec<u8>> {
    if elf.len() < EHDR_LEN || elf[..4] != *b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let phoff = usize::try_from(read_u64(elf, 32)?).ok()?;
    let phentsize = usize::from(read_u16(elf, 54)?);
    let phnum = usize::from(read_u16(elf, 56)?);
    if phoff < EHDR_LEN || phentsize != PHDR_LEN || phnum == 0 {
        return None;
    }
    let end = phoff.checked_add(phentsize.checked_mul(phnum)?)?;
    let mut headers = elf.get(..end)?.to_vec();
    headers[40..48].fill(0); // e_shoff
    headers[60..64].fill(0); // e_shnum, e_shstrndx
    Some(headers)
}

/// The offset of the first `PT_LOAD` program header with a non-zero file or memory size (the
/// loader skips empty ones) in `headers` (checked by [`elf_headers`]).
fn first_load(headers: &[u8]) -> Option<usize> {
    let phoff = usize::try_from(read_u64(headers, 32)?).ok()?;
    let phnum = usize::from(read_u16(headers, 56)?);
    (0..phnum).map(|i| phoff + i * PHDR_LEN).find(|&ph| {
        read_u32(headers, ph) == Some(PT_LOAD)
            && (read_u64(headers, ph + 32) != Some(0) || read_u64(headers, ph + 40) != Some(0))
    })
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
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

    use crate::scenario::Scenario;
    use crate::stages::Stages;
    use crate::verdict::Expect;
    use loader::elf_image::{self, ElfError, Limits, Machine};

    const PT_GNU_STACK: u32 = 0x6474_e551;
    /// Program headers of [`tiny_elf`]: an empty `PT_LOAD` (skipped by the loader), text, data
    /// and `PT_GNU_STACK`.
    const PHNUM: usize = 4;
    const HEADERS_LEN: usize = EHDR_LEN + PHNUM * PHDR_LEN;

    /// A minimal static executable for `e_machine` that the loader accepts: text at 0x401000,
    /// data at 0x402000, a one-entry section header table at the end.
    fn tiny_elf(e_machine: u16) -> Vec<u8> {
        let mut elf = vec![0u8; 0x2010];
        elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        let put16 =
            |b: &mut Vec<u8>, at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put16(&mut elf, 16, 2); // ET_EXEC
        put16(&mut elf, 18, e_machine);
        put32(&mut elf, 20, 1); // e_version
        put64(&mut elf, 24, 0x40_1000); // e_entry
        put64(&mut elf, 32, EHDR_LEN as u64); // e_phoff
        put64(&mut elf, 40, 0x2010); // e_shoff
        put16(&mut elf, 52, EHDR_LEN as u16); // e_ehsize
        put16(&mut elf, 54, PHDR_LEN as u16); // e_phentsize
        put16(&mut elf, 56, PHNUM as u16); // e_phnum
        put16(&mut elf, 58, 64); // e_shentsize
        put16(&mut elf, 60, 1); // e_shnum
        // (p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz, p_align)
        let phdrs: [(u32, u32, u64, u64, u64, u64, u64); PHNUM] = [
            (PT_LOAD, 4, 0, 0, 0, 0, 0x1000),
            (PT_LOAD, 5, 0x1000, 0x40_1000, 0x100, 0x100, 0x1000),
            (PT_LOAD, 6, 0x2000, 0x40_2000, 0x10, 0x1000, 0x1000),
            (PT_GNU_STACK, 6, 0, 0, 0, 0, 16),
        ];
        for (i, (ty, flags, off, va, filesz, memsz, align)) in phdrs.into_iter().enumerate() {
            let ph = EHDR_LEN + i * PHDR_LEN;
            put32(&mut elf, ph, ty);
            put32(&mut elf, ph + 4, flags);
            put64(&mut elf, ph + 8, off);
            put64(&mut elf, ph + 16, va);
            put64(&mut elf, ph + 24, va);
            put64(&mut elf, ph + 32, filesz);
            put64(&mut elf, ph + 40, memsz);
            put64(&mut elf, ph + 48, align);
        }
        elf[0x1000..0x1100].fill(0xcc);
        elf.extend_from_slice(&[0u8; 64]); // the null section header
        elf
    }

    fn limits() -> Limits {
        Limits {
            user_start: 0x1_0000,
            user_end: 1 << 36,
            page_size: 0x1000,
            max_file_bytes: 64 << 20,
        }
    }

    fn fixture<'a>(fixtures: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
        &fixtures.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn each_fixture_has_its_one_defect() {
        let elf = tiny_elf(EM_X86_64);
        let fixtures = corrupt_fixtures(&elf);
        let names: Vec<&str> = fixtures.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, FIXTURE_NAMES);
        assert_eq!(fixture(&fixtures, "bad_init_truncated"), &elf[..100]);

        // The others are the headers, section header fields cleared, plus their defect.
        let mut headers = elf[..HEADERS_LEN].to_vec();
        headers[40..48].fill(0);
        headers[60..62].fill(0);
        let differs = |name: &str| -> Vec<usize> {
            let f = fixture(&fixtures, name);
            assert_eq!(f.len(), HEADERS_LEN, "{name}");
            (0..f.len()).filter(|&i| f[i] != headers[i]).collect()
        };
        assert_eq!(differs("bad_init_magic"), [0]);
        assert_eq!(fixture(&fixtures, "bad_init_magic")[0], 0);
        assert_eq!(
            &fixture(&fixtures, "bad_init_machine")[18..20],
            183u16.to_le_bytes()
        );
        // The first non-empty PT_LOAD is program header 1; its p_offset is at +8.
        let ph1 = EHDR_LEN + PHDR_LEN;
        assert!(
            differs("bad_init_segment")
                .iter()
                .all(|i| (ph1 + 8..ph1 + 16).contains(i))
        );
        let seg = fixture(&fixtures, "bad_init_segment");
        let offset = read_u64(seg, ph1 + 8).unwrap();
        assert_eq!(offset, 0x1_1000, "past the end, congruent with 0x1000");
        assert!(offset + read_u64(seg, ph1 + 32).unwrap() > seg.len() as u64);

        let arm = corrupt_fixtures(&tiny_elf(EM_AARCH64));
        assert_eq!(
            &fixture(&arm, "bad_init_machine")[18..20],
            62u16.to_le_bytes()
        );
    }

    #[test]
    fn the_loader_refuses_each_fixture_for_its_reason() {
        for (e_machine, machine) in [(EM_X86_64, Machine::X86_64), (EM_AARCH64, Machine::Aarch64)] {
            let elf = tiny_elf(e_machine);
            assert!(elf_image::plan(&elf, machine, &limits()).is_ok());
            let fixtures = corrupt_fixtures(&elf);
            let refuse = |name: &str| {
                elf_image::plan(fixture(&fixtures, name), machine, &limits()).unwrap_err()
            };
            assert!(matches!(
                refuse("bad_init_truncated"),
                ElfError::ProgramHeadersOutOfBounds {
                    offset: 0x40,
                    count: 4,
                    file_size: 100
                }
            ));
            assert!(matches!(
                refuse("bad_init_magic"),
                ElfError::BadMagic {
                    found: [0, b'E', b'L', b'F']
                }
            ));
            assert!(
                matches!(refuse("bad_init_machine"), ElfError::WrongMachine { expected, .. } if expected == machine)
            );
            assert!(matches!(
                refuse("bad_init_segment"),
                ElfError::SegmentOutsideFile {
                    index: 1,
                    offset: 0x1_1000,
                    ..
                }
            ));
        }
    }

    #[test]
    fn the_init_scenarios_match_the_loader_messages() {
        let stages = Stages::load(&workspace::stages_file()).unwrap();
        let scenarios = [
            ("init_truncated", "bad_init_truncated"),
            ("init_bad_magic", "bad_init_magic"),
            ("init_wrong_machine", "bad_init_machine"),
            ("init_bad_segment", "bad_init_segment"),
        ];
        for (arch, e_machine, machine) in [
            (Arch::X86_64, EM_X86_64, Machine::X86_64),
            (Arch::Aarch64, EM_AARCH64, Machine::Aarch64),
        ] {
            let fixtures = corrupt_fixtures(&tiny_elf(e_machine));
            for (scenario, entry) in scenarios {
                let path = workspace::scenarios_dir().join(format!("{scenario}.toml"));
                let plan = Scenario::load(&path, &stages)
                    .unwrap()
                    .plan(arch, None)
                    .unwrap();
                assert!(
                    plan.append.split(' ').any(|w| w == format!("init={entry}")),
                    "{scenario}"
                );
                assert_eq!(
                    plan.check.expect,
                    Expect::StageFails {
                        stage: "init".into()
                    }
                );
                assert!(!plan.check.log_must_contain.is_empty(), "{scenario}");
                // What boot/src/user/loader.rs prints through fail_stage.
                let error =
                    elf_image::plan(fixture(&fixtures, entry), machine, &limits()).unwrap_err();
                let line = format!("[stage] init FAILED {entry}: {error}");
                for needle in &plan.check.log_must_contain {
                    assert!(
                        line.contains(needle.as_str()),
                        "{arch}/{scenario}: `{line}` lacks `{needle}`"
                    );
                }
            }
        }
    }

    #[test]
    fn fixtures_are_left_out_when_init_cannot_give_them() {
        assert!(corrupt_fixtures(&[]).is_empty());
        assert!(corrupt_fixtures(&[0x7f; 100]).is_empty());
        let names = |init: &[u8]| -> Vec<String> {
            corrupt_fixtures(init).into_iter().map(|(n, _)| n).collect()
        };
        assert_eq!(names(&[0u8; 4096]), ["bad_init_truncated"]);
        let elf = tiny_elf(EM_X86_64);
        // Every cut: never a panic; all four once the program header table is whole.
        for len in 0..elf.len() {
            let n = names(&elf[..len]).len();
            let want = match len {
                0..=100 => 0,
                101..HEADERS_LEN => 1,
                _ => 4,
            };
            assert_eq!(n, want, "cut at {len}");
        }
        let mut other = elf.clone();
        other[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        assert!(!names(&other).iter().any(|n| n == "bad_init_machine"));
        let mut no_load = elf.clone();
        for i in 0..PHNUM {
            no_load[EHDR_LEN + i * PHDR_LEN] = 0; // PT_NULL
        }
        assert!(!names(&no_load).iter().any(|n| n == "bad_init_segment"));
        let mut big_endian = elf.clone();
        big_endian[5] = 2;
        assert_eq!(names(&big_endian), ["bad_init_truncated"]);
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

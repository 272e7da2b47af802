//! Making sure the pinned Rust toolchain has every target and component the builds use.
//!
//! Owns reading `rust-toolchain.toml` (channel, profile, targets, components), asking rustup what
//! the pinned toolchain has (`rustup toolchain list`, `rustup target list --installed`,
//! `rustup component list --installed`), and installing what is missing before anything is
//! built, with one line printed per thing installed: the whole toolchain (`rustup toolchain
//! install CHANNEL --profile P --component ... --target ...`) when rustup does not have it, else
//! `rustup target add` / `rustup component add` for what it lacks. rustup itself installs a
//! missing pinned toolchain with its targets and components on the first `cargo` call, but it
//! never adds a target or component to a toolchain that is already installed (one installed by
//! hand, or before the file listed it). The decisions are pure functions of rustup's output, so
//! they are tested without running rustup.

use crate::install::find_in_path;
use crate::workspace;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::process::Command;

/// The `[toolchain]` table of `rust-toolchain.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pinned {
    /// The toolchain: a version (`1.95.0`), a channel (`stable`, `nightly-2026-01-01`).
    pub channel: String,
    /// rustup's profile for a fresh install (`minimal`, `default`, `complete`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Components beyond the profile's (`rustfmt`, `clippy`, `llvm-tools`).
    #[serde(default)]
    pub components: Vec<String>,
    /// Targets beyond the host's.
    #[serde(default)]
    pub targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct File {
    toolchain: Pinned,
}

impl Pinned {
    /// Reads the text of a `rust-toolchain.toml` (other keys of `[toolchain]` are ignored).
    pub fn parse(text: &str) -> Result<Pinned> {
        let file: File = toml::from_str(text)?;
        if file.toolchain.channel.trim().is_empty() {
            bail!("`channel` is empty");
        }
        Ok(file.toolchain)
    }

    /// The `rustup toolchain install` arguments that install this toolchain with everything it
    /// lists.
    fn install_args(&self) -> Vec<String> {
        let mut args = vec![
            "toolchain".to_owned(),
            "install".to_owned(),
            self.channel.clone(),
        ];
        if let Some(profile) = &self.profile {
            args.extend(["--profile".to_owned(), profile.clone()]);
        }
        if !self.components.is_empty() {
            args.extend(["--component".to_owned(), self.components.join(",")]);
        }
        if !self.targets.is_empty() {
            args.extend(["--target".to_owned(), self.targets.join(",")]);
        }
        args
    }
}

/// What rustup must do before the pinned toolchain can build everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The toolchain has every listed target and component.
    Ready,
    /// rustup has no such toolchain: install it with everything it lists.
    InstallToolchain,
    /// The toolchain is installed but lacks these.
    Add {
        /// Listed targets that are not installed.
        targets: Vec<String>,
        /// Listed components that are not installed.
        components: Vec<String>,
    },
}

/// Whether `rustup toolchain list` output names `channel`: a line whose first word is the
/// channel itself or the channel followed by a host triple (`1.95.0-x86_64-unknown-linux-gnu`).
/// A dated channel (`nightly-2026-01-01-...`) is not the plain channel (`nightly`).
pub fn toolchain_installed(channel: &str, toolchain_list: &str) -> bool {
    toolchain_list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| {
            name == channel
                || name
                    .strip_prefix(channel)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(looks_like_host_triple)
        })
}

/// `arch-vendor-os[-env]`, where the first part is not a number (which would make it the rest of
/// a date).
fn looks_like_host_triple(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && !parts[0].bytes().all(|b| b.is_ascii_digit())
}

/// The listed targets that `rustup target list --installed` output lacks, in the file's order.
pub fn missing_targets(pinned: &Pinned, installed: &str) -> Vec<String> {
    let have: Vec<&str> = installed.lines().map(str::trim).collect();
    pinned
        .targets
        .iter()
        .filter(|t| !have.contains(&t.as_str()))
        .cloned()
        .collect()
}

/// The listed components that `rustup component list --installed` output lacks, in the file's
/// order. rustup names installed components with the host triple (`clippy-x86_64-unknown-linux-gnu`);
/// the host is what follows `rustc-` (every toolchain has rustc).
pub fn missing_components(pinned: &Pinned, installed: &str) -> Vec<String> {
    let have: Vec<&str> = installed.lines().map(str::trim).collect();
    let host = have.iter().find_map(|l| l.strip_prefix("rustc-"));
    pinned
        .components
        .iter()
        .filter(|c| {
            let with_host = host.map(|h| format!("{c}-{h}"));
            !have
                .iter()
                .any(|&l| l == c.as_str() || Some(l) == with_host.as_deref())
        })
        .cloned()
        .collect()
}

/// The plan from rustup's answers: `lists` is `None` when the toolchain is not installed, else
/// the output of `rustup target list --installed` and `rustup component list --installed`.
pub fn plan(pinned: &Pinned, lists: Option<(&str, &str)>) -> Plan {
    let Some((targets, components)) = lists else {
        return Plan::InstallToolchain;
    };
    let targets = missing_targets(pinned, targets);
    let components = missing_components(pinned, components);
    if targets.is_empty() && components.is_empty() {
        Plan::Ready
    } else {
        Plan::Add {
            targets,
            components,
        }
    }
}

/// Reads `rust-toolchain.toml` of the workspace.
pub fn pinned() -> Result<Pinned> {
    let path = workspace::toolchain_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Pinned::parse(&text).with_context(|| format!("cannot read {}", workspace::display(&path)))
}

/// Ensures the pinned toolchain has every target and component of `rust-toolchain.toml`,
/// installing what is missing through rustup (and saying so). Fails when rustup is absent.
pub fn ensure() -> Result<()> {
    let pinned = pinned()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    if find_in_path("rustup", &path).is_none() {
        bail!(
            "rustup not found on PATH: Strait builds with the toolchain rust-toolchain.toml pins \
             ({} with the targets {} and the components {}), which xtask installs through \
             rustup; install rustup (https://rustup.rs) and run the command again",
            pinned.channel,
            pinned.targets.join(", "),
            pinned.components.join(", ")
        );
    }
    let lists = read_lists(&pinned)?;
    let todo = plan(
        &pinned,
        lists.as_ref().map(|(t, c)| (t.as_str(), c.as_str())),
    );
    let channel = &pinned.channel;
    match &todo {
        Plan::Ready => return Ok(()),
        Plan::InstallToolchain => {
            eprintln!(
                "toolchain {channel} (rust-toolchain.toml) is not installed: installing it with \
                 rustup {}",
                pinned.install_args().join(" ")
            );
            rustup(&pinned.install_args())?;
        }
        Plan::Add {
            targets,
            components,
        } => {
            for (kind, names) in [("target", targets), ("component", components)] {
                if names.is_empty() {
                    continue;
                }
                for name in names {
                    eprintln!(
                        "toolchain {channel} lacks the {kind} {name} (rust-toolchain.toml): \
                         installing it"
                    );
                }
                let mut args = vec![
                    kind.to_owned(),
                    "add".to_owned(),
                    "--toolchain".to_owned(),
                    channel.clone(),
                ];
                args.extend(names.iter().cloned());
                rustup(&args)?;
            }
        }
    }
    let lists = read_lists(&pinned)?;
    match plan(
        &pinned,
        lists.as_ref().map(|(t, c)| (t.as_str(), c.as_str())),
    ) {
        Plan::Ready => Ok(()),
        Plan::InstallToolchain => bail!("rustup still has no toolchain {channel}"),
        Plan::Add {
            targets,
            components,
        } => bail!(
            "toolchain {channel} still lacks {} after installing",
            targets
                .iter()
                .chain(&components)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `None` when rustup has no toolchain `pinned.channel`, else its installed targets and
/// components as rustup lists them.
fn read_lists(pinned: &Pinned) -> Result<Option<(String, String)>> {
    let toolchains = rustup_output(&["toolchain", "list"])?;
    if !toolchain_installed(&pinned.channel, &toolchains) {
        return Ok(None);
    }
    let channel = pinned.channel.as_str();
    let targets = rustup_output(&["target", "list", "--installed", "--toolchain", channel])?;
    let components = rustup_output(&["component", "list", "--installed", "--toolchain", channel])?;
    Ok(Some((targets, components)))
}

/// A rustup command in the workspace root, with its output (progress, errors) on the terminal.
fn rustup(args: &[String]) -> Result<()> {
    let status = Command::new("rustup")
        .current_dir(workspace::root())
        .args(args)
        .status()
        .context("cannot start rustup")?;
    if !status.success() {
        bail!("rustup {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// A rustup query in the workspace root; returns its stdout.
fn rustup_output(args: &[&str]) -> Result<String> {
    let out = Command::new("rustup")
        .current_dir(workspace::root())
        .args(args)
        .output()
        .context("cannot start rustup")?;
    if !out.status.success() {
        bail!(
            "rustup {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[toolchain]
channel = "1.95.0"
components = ["rustfmt", "clippy", "llvm-tools"]
targets = ["x86_64-unknown-none", "aarch64-unknown-none-softfloat", "aarch64-unknown-none"]
profile = "minimal"
"#;

    const ALL_TARGETS: &str = "aarch64-unknown-none\naarch64-unknown-none-softfloat\n\
                               x86_64-unknown-linux-gnu\nx86_64-unknown-none\n";
    const ALL_COMPONENTS: &str = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
        llvm-tools-x86_64-unknown-linux-gnu\nrust-std-aarch64-unknown-none\n\
        rust-std-x86_64-unknown-linux-gnu\nrustc-x86_64-unknown-linux-gnu\n\
        rustfmt-x86_64-unknown-linux-gnu\n";

    fn pinned() -> Pinned {
        Pinned::parse(FILE).unwrap()
    }

    #[test]
    fn the_workspace_file_parses_and_pins_what_the_builds_use() {
        let text = std::fs::read_to_string(workspace::toolchain_file()).unwrap();
        let pinned = Pinned::parse(&text).unwrap();
        for arch in crate::arch::Arch::ALL {
            assert!(pinned.targets.iter().any(|t| t == arch.target()), "{arch}");
            assert!(
                pinned.targets.iter().any(|t| t == arch.user_target()),
                "{arch}"
            );
        }
        for component in ["rustfmt", "clippy", "llvm-tools"] {
            assert!(
                pinned.components.iter().any(|c| c == component),
                "{component}"
            );
        }
    }

    #[test]
    fn parses_the_toolchain_table() {
        let p = pinned();
        assert_eq!(p.channel, "1.95.0");
        assert_eq!(p.profile.as_deref(), Some("minimal"));
        assert_eq!(p.components, ["rustfmt", "clippy", "llvm-tools"]);
        assert_eq!(p.targets.len(), 3);
        let bare = Pinned::parse("[toolchain]\nchannel = \"stable\"\n").unwrap();
        assert!(bare.targets.is_empty() && bare.components.is_empty() && bare.profile.is_none());
        assert!(Pinned::parse("[toolchain]\nchannel = \"\"\n").is_err());
        assert!(Pinned::parse("channel = \"1.95.0\"\n").is_err());
    }

    #[test]
    fn install_command_lists_everything() {
        assert_eq!(
            pinned().install_args().join(" "),
            "toolchain install 1.95.0 --profile minimal --component rustfmt,clippy,llvm-tools \
             --target x86_64-unknown-none,aarch64-unknown-none-softfloat,aarch64-unknown-none"
        );
    }

    #[test]
    fn finds_the_toolchain_by_channel_with_or_without_the_host() {
        let list = "stable-x86_64-unknown-linux-gnu (default)\n\
                    nightly-2026-01-01-x86_64-unknown-linux-gnu\n\
                    1.95.0-x86_64-unknown-linux-gnu (active)\n";
        assert!(toolchain_installed("1.95.0", list));
        assert!(toolchain_installed("stable", list));
        assert!(toolchain_installed("nightly-2026-01-01", list));
        assert!(!toolchain_installed("nightly", list));
        assert!(!toolchain_installed("1.95", list));
        assert!(!toolchain_installed("1.94.0", list));
        assert!(toolchain_installed("my-local", "my-local\n"));
        assert!(!toolchain_installed("1.95.0", "no installed toolchains\n"));
    }

    #[test]
    fn nothing_to_do_when_everything_is_installed() {
        assert_eq!(
            plan(&pinned(), Some((ALL_TARGETS, ALL_COMPONENTS))),
            Plan::Ready
        );
    }

    #[test]
    fn a_toolchain_rustup_does_not_have_is_installed_whole() {
        assert_eq!(plan(&pinned(), None), Plan::InstallToolchain);
    }

    #[test]
    fn missing_targets_and_components_are_added() {
        let targets = "x86_64-unknown-linux-gnu\nx86_64-unknown-none\n";
        let components = "cargo-x86_64-unknown-linux-gnu\nrustc-x86_64-unknown-linux-gnu\n\
                          clippy-x86_64-unknown-linux-gnu\n";
        assert_eq!(
            plan(&pinned(), Some((targets, components))),
            Plan::Add {
                targets: vec![
                    "aarch64-unknown-none-softfloat".into(),
                    "aarch64-unknown-none".into()
                ],
                components: vec!["rustfmt".into(), "llvm-tools".into()],
            }
        );
        assert_eq!(
            plan(&pinned(), Some((ALL_TARGETS, components))),
            Plan::Add {
                targets: vec![],
                components: vec!["rustfmt".into(), "llvm-tools".into()],
            }
        );
    }

    #[test]
    fn a_component_matches_with_the_host_only_or_bare() {
        // `rust-std-aarch64-unknown-none` is not a `rust-std` of the host, and a component of
        // another host does not count.
        let p = Pinned {
            components: vec!["rust-std".into(), "clippy".into(), "rustfmt".into()],
            ..pinned()
        };
        let installed = "rustc-x86_64-unknown-linux-gnu\nrust-std-aarch64-unknown-none\n\
                         clippy-aarch64-unknown-linux-gnu\nrustfmt\n";
        assert_eq!(missing_components(&p, installed), ["rust-std", "clippy"]);
    }
}

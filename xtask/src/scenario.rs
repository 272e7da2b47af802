//! Boot scenarios: the schema of `tests/scenarios/NAME.toml` and its resolution per architecture.
//!
//! Owns the meaning of every scenario key (documented for humans in `tests/README.md`), the
//! checks made when a file is loaded (unknown keys, unknown stages, crash keys on a pass
//! scenario, a stage-fails scenario without its stage, ...), and turning a scenario plus an architecture into a [`Plan`]: the QEMU machine,
//! the command line, the timeout and the [`Check`] the verdict applies.

use crate::arch::Arch;
use crate::qemu::{self, Firmware, Machine};
use crate::stages::Stages;
use crate::uboot;
use crate::verdict::{Check, Expect, ExpectedTest};
use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Timeout when a scenario names none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// What a scenario expects of the boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// Every test passes: `[done]` with 0 failed, exit status passed.
    Pass,
    /// A deliberate trap or panic: a report and exit status crashed.
    Crash,
    /// A deliberate stage failure (`failed_stage`): `[stage] NAME FAILED`, exit status failed.
    #[serde(rename = "stage_fails")]
    StageFails,
}

/// Keys valid both at the top level and in an `[x86_64]`/`[aarch64]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchKeys {
    machine: Option<String>,
    cpu: Option<String>,
    memory: Option<String>,
    smp: Option<u32>,
    firmware: Option<Firmware>,
    #[serde(default)]
    extra_args: Vec<String>,
    #[serde(default)]
    skip: bool,
    trap: Option<String>,
    symbol: Option<String>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    log_must_contain: Vec<String>,
    #[serde(default)]
    allow_skips: Vec<String>,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    #[serde(default)]
    append: String,
    expect: Expectation,
    failed_stage: Option<String>,
    stages: Option<Vec<String>>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    log_must_contain: Vec<String>,
    memory: Option<String>,
    smp: Option<u32>,
    #[serde(default)]
    extra_args: Vec<String>,
    trap: Option<String>,
    symbol: Option<String>,
    #[serde(default)]
    allow_skips: Vec<String>,
    #[serde(default)]
    x86_64: ArchKeys,
    #[serde(default)]
    aarch64: ArchKeys,
}

/// One loaded and checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file stem.
    pub name: String,
    /// What it proves.
    pub description: String,
    file: File,
    stages: Vec<String>,
}

/// One scenario on one architecture, ready to boot.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub scenario: String,
    /// What the scenario proves.
    pub description: String,
    /// Architecture.
    pub arch: Arch,
    /// Kernel command line.
    pub append: String,
    /// The virtual machine.
    pub machine: Machine,
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// What the log and exit status must show.
    pub check: Check,
}

impl Scenario {
    /// Parses and checks the text of scenario `name` against the known `stages`.
    pub fn parse(name: &str, text: &str, stages: &Stages) -> Result<Scenario> {
        ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "scenario names are lowercase letters, digits and `_`: `{name}`"
        );
        let file: File = toml::from_str(text)?;
        let stage_list = match (file.expect, &file.failed_stage) {
            (Expectation::StageFails, Some(failed)) => {
                ensure!(
                    file.stages.is_none(),
                    "`stages` does not apply to expect = \"stage_fails\": the stages before \
                     `failed_stage` in tests/stages.toml must report ok"
                );
                let Some(at) = stages.order.iter().position(|s| s == failed) else {
                    bail!("unknown failed_stage `{failed}` (see tests/stages.toml)");
                };
                stages.order[..at].to_vec()
            }
            (Expectation::StageFails, None) => {
                bail!("expect = \"stage_fails\" needs `failed_stage`")
            }
            (_, Some(_)) => bail!("`failed_stage` applies only to expect = \"stage_fails\""),
            (_, None) => file.stages.clone().unwrap_or_else(|| stages.order.clone()),
        };
        for s in &stage_list {
            ensure!(
                stages.knows(s),
                "unknown stage `{s}` (see tests/stages.toml)"
            );
        }
        ensure!(
            file.timeout_secs != Some(0),
            "timeout_secs must be at least 1"
        );
        ensure!(file.smp != Some(0), "smp must be at least 1");
        let tables = [(Arch::X86_64, &file.x86_64), (Arch::Aarch64, &file.aarch64)];
        for (arch, t) in tables {
            ensure!(t.smp != Some(0), "[{arch}] smp must be at least 1");
            ensure!(
                t.timeout_secs != Some(0),
                "[{arch}] timeout_secs must be at least 1"
            );
        }
        ensure!(
            tables.iter().any(|(_, t)| !t.skip),
            "every architecture is skipped"
        );
        ensure!(
            file.x86_64.firmware.unwrap_or_default() == Firmware::Direct,
            "[x86_64] firmware = \"u-boot\" boots only the AArch64 Image"
        );
        if file.aarch64.firmware == Some(Firmware::UBoot) {
            let memory = file
                .aarch64
                .memory
                .as_deref()
                .or(file.memory.as_deref())
                .unwrap_or(qemu::DEFAULT_MEMORY);
            ensure!(
                qemu::memory_mib(memory).is_some_and(|mib| mib >= uboot::MIN_MEMORY_MIB),
                "[aarch64] firmware = \"u-boot\" needs at least {} MiB of memory (its load \
                 addresses), not {memory}",
                uboot::MIN_MEMORY_MIB
            );
        }
        let selection = test_catalog::Selection::from_cmdline(&file.append);
        let unknown: Vec<&str> = selection.unknown().collect();
        ensure!(
            unknown.is_empty(),
            "`append` selects tests the catalog (tests/catalog) does not have: {}",
            unknown.join(", ")
        );
        let skips = file
            .allow_skips
            .iter()
            .chain(tables.iter().flat_map(|(_, t)| &t.allow_skips));
        for name in skips {
            ensure!(
                file.expect == Expectation::Pass,
                "`allow_skips` applies only to expect = \"pass\""
            );
            ensure!(
                selection.tests().any(|t| t.name == name),
                "`allow_skips` names `{name}`, which this scenario's `test=` does not run"
            );
        }
        let crash_key = file.trap.is_some()
            || file.symbol.is_some()
            || tables
                .iter()
                .any(|(_, t)| t.trap.is_some() || t.symbol.is_some());
        match file.expect {
            Expectation::Pass => {
                ensure!(
                    !crash_key,
                    "`trap` and `symbol` apply only to expect = \"crash\""
                );
            }
            Expectation::StageFails => {
                ensure!(
                    !crash_key,
                    "`trap` and `symbol` apply only to expect = \"crash\""
                );
            }
            Expectation::Crash => {
                for (arch, t) in tables {
                    if !t.skip && t.trap.is_none() && file.trap.is_none() {
                        bail!("expect = \"crash\" needs `trap` (top level or [{arch}])");
                    }
                }
            }
        }
        Ok(Scenario {
            name: name.to_owned(),
            description: file.description.clone(),
            file,
            stages: stage_list,
        })
    }

    /// Reads and checks one scenario file.
    pub fn load(path: &Path, stages: &Stages) -> Result<Scenario> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("bad scenario file name {}", path.display()))?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Scenario::parse(name, &text, stages).with_context(|| format!("in {}", path.display()))
    }

    /// Every `*.toml` in `dir`, sorted by name.
    pub fn load_all(dir: &Path, stages: &Stages) -> Result<Vec<Scenario>> {
        let mut paths = Vec::new();
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        paths.iter().map(|p| Scenario::load(p, stages)).collect()
    }

    /// The scenario on `arch`, or `None` when it is skipped there. `smp` (from `--smp`)
    /// overrides the scenario's CPU count.
    pub fn plan(&self, arch: Arch, smp: Option<u32>) -> Option<Plan> {
        let f = &self.file;
        let t = match arch {
            Arch::X86_64 => &f.x86_64,
            Arch::Aarch64 => &f.aarch64,
        };
        if t.skip {
            return None;
        }
        let firmware = t.firmware.unwrap_or_default();
        let machine = Machine {
            machine: t
                .machine
                .clone()
                .unwrap_or_else(|| arch.default_machine().to_owned()),
            cpu: t
                .cpu
                .clone()
                .or_else(|| arch.default_cpu().map(str::to_owned)),
            memory: t
                .memory
                .clone()
                .or_else(|| f.memory.clone())
                .unwrap_or_else(|| qemu::DEFAULT_MEMORY.to_owned()),
            smp: smp.or(t.smp).or(f.smp).unwrap_or(1),
            firmware,
            extra_args: f.extra_args.iter().chain(&t.extra_args).cloned().collect(),
        };
        let expect = match f.expect {
            Expectation::Pass => Expect::Pass {
                expected: ExpectedTest::for_selection(test_catalog::Selection::from_cmdline(
                    &f.append,
                )),
                allow_skips: f
                    .allow_skips
                    .iter()
                    .chain(&t.allow_skips)
                    .cloned()
                    .collect(),
            },
            Expectation::Crash => Expect::Crash {
                trap: t.trap.clone().or_else(|| f.trap.clone()),
                symbol: t.symbol.clone().or_else(|| f.symbol.clone()),
            },
            Expectation::StageFails => Expect::StageFails {
                stage: f.failed_stage.clone().unwrap_or_default(),
            },
        };
        let timeout = t
            .timeout_secs
            .or(f.timeout_secs)
            .unwrap_or(DEFAULT_TIMEOUT_SECS);
        Some(Plan {
            scenario: self.name.clone(),
            description: self.description.clone(),
            arch,
            append: f.append.clone(),
            machine,
            timeout: Duration::from_secs(timeout),
            check: Check {
                stages: self.stages.clone(),
                expect,
                log_must_contain: f
                    .log_must_contain
                    .iter()
                    .chain(&t.log_must_contain)
                    .cloned()
                    // Proof that U-Boot ran the boot command of `uboot`, not some default.
                    .chain((firmware == Firmware::UBoot).then(|| uboot::BOOTCMD_MARKER.to_owned()))
                    .collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages() -> Stages {
        Stages::parse(
            r#"
order = ["serial", "bootinfo", "traps"]
[stage.serial]
does = "a"
look = "b"
[stage.bootinfo]
does = "a"
look = "b"
[stage.traps]
does = "a"
look = "b"
[no_output]
does = "a"
look = "b"
"#,
        )
        .unwrap()
    }

    const CRASH: &str = r#"
description = "a deliberate fault"
append = "test=fault_unmapped"
expect = "crash"
stages = ["serial", "traps"]
symbol = "deliberate_unmapped_read"
memory = "128M"
[x86_64]
trap = "page fault"
cpu = "max"
extra_args = ["-d", "int"]
timeout_secs = 5
[aarch64]
trap = "data abort"
"#;

    #[test]
    fn crash_scenario_resolves_per_architecture() {
        let s = Scenario::parse("fault", CRASH, &stages()).unwrap();
        let x86 = s.plan(Arch::X86_64, None).unwrap();
        assert_eq!(x86.machine.machine, "q35");
        assert_eq!(x86.machine.cpu.as_deref(), Some("max"));
        assert_eq!(x86.machine.memory, "128M");
        assert_eq!(x86.machine.smp, 1);
        assert_eq!(x86.machine.extra_args, ["-d", "int"]);
        assert_eq!(x86.timeout, Duration::from_secs(5));
        assert_eq!(x86.check.stages, ["serial", "traps"]);
        assert_eq!(
            x86.check.expect,
            Expect::Crash {
                trap: Some("page fault".into()),
                symbol: Some("deliberate_unmapped_read".into())
            }
        );
        let arm = s.plan(Arch::Aarch64, Some(4)).unwrap();
        assert_eq!(arm.machine.machine, "virt,gic-version=3");
        assert_eq!(arm.machine.cpu.as_deref(), Some("cortex-a72"));
        assert_eq!(arm.machine.smp, 4);
        assert_eq!(arm.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert!(
            matches!(arm.check.expect, Expect::Crash { trap: Some(ref t), .. } if t == "data abort")
        );
    }

    #[test]
    fn pass_scenario_defaults() {
        let text = "description = \"d\"\nappend = \"test=all\"\nexpect = \"pass\"\n\
                    [aarch64]\nskip = true\n";
        let s = Scenario::parse("boot", text, &stages()).unwrap();
        assert!(s.plan(Arch::Aarch64, None).is_none());
        let p = s.plan(Arch::X86_64, Some(2)).unwrap();
        assert_eq!(p.check.stages, ["serial", "bootinfo", "traps"]);
        let Expect::Pass {
            expected,
            allow_skips,
        } = &p.check.expect
        else {
            panic!("{:?}", p.check.expect)
        };
        assert!(allow_skips.is_empty());
        // test=all: every catalog test that does not end the boot, in catalog order.
        let all: Vec<&str> = test_catalog::TESTS
            .iter()
            .filter(|t| !t.ends_boot)
            .map(|t| t.name)
            .collect();
        let names: Vec<&str> = expected.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, all);
        assert_eq!(
            p.machine,
            Machine {
                smp: 2,
                ..Machine::default_for(Arch::X86_64)
            }
        );
        assert_eq!(p.append, "test=all");
    }

    #[test]
    fn stage_fails_scenario_expects_the_stages_before_the_failed_one() {
        let text = "description = \"d\"\nappend = \"test=all init=bad\"\n\
                    expect = \"stage_fails\"\nfailed_stage = \"traps\"\n\
                    log_must_contain = [\"ELF:\"]\n[aarch64]\nlog_must_contain = [\"arm\"]\n";
        let s = Scenario::parse("bad", text, &stages()).unwrap();
        let p = s.plan(Arch::X86_64, None).unwrap();
        assert_eq!(p.check.stages, ["serial", "bootinfo"]);
        assert_eq!(
            p.check.expect,
            Expect::StageFails {
                stage: "traps".into()
            }
        );
        assert_eq!(p.check.log_must_contain, ["ELF:"]);
        let arm = s.plan(Arch::Aarch64, None).unwrap();
        assert_eq!(arm.check.log_must_contain, ["ELF:", "arm"]);
        let first = text.replace("\"traps\"", "\"serial\"");
        let s = Scenario::parse("bad", &first, &stages()).unwrap();
        assert!(s.plan(Arch::X86_64, None).unwrap().check.stages.is_empty());
    }

    #[test]
    fn u_boot_firmware_is_aarch64_only_needs_its_memory_and_proves_its_boot_command() {
        let text = "description = \"d\"\nappend = \"test=all\"\nexpect = \"pass\"\n\
                    [x86_64]\nskip = true\n[aarch64]\nfirmware = \"u-boot\"\n\
                    log_must_contain = [\"x\"]\n";
        let s = Scenario::parse("ub", text, &stages()).unwrap();
        let p = s.plan(Arch::Aarch64, None).unwrap();
        assert_eq!(p.machine.firmware, Firmware::UBoot);
        assert_eq!(p.check.log_must_contain, ["x", uboot::BOOTCMD_MARKER]);
        let direct = text.replace("firmware = \"u-boot\"", "firmware = \"direct\"");
        let p = Scenario::parse("ub", &direct, &stages())
            .unwrap()
            .plan(Arch::Aarch64, None)
            .unwrap();
        assert_eq!(p.machine.firmware, Firmware::Direct);
        assert_eq!(p.check.log_must_contain, ["x"]);

        let on_x86 = "description = \"d\"\nexpect = \"pass\"\n[x86_64]\nfirmware = \"u-boot\"\n";
        let err = Scenario::parse("ub", on_x86, &stages()).unwrap_err();
        assert!(format!("{err:#}").contains("only the AArch64"), "{err:#}");
        let small = format!("memory = \"128M\"\n{text}");
        let err = Scenario::parse("ub", &small, &stages()).unwrap_err();
        assert!(format!("{err:#}").contains("at least 256 MiB"), "{err:#}");
        let typo = text.replace("\"u-boot\"", "\"uboot\"");
        assert!(Scenario::parse("ub", &typo, &stages()).is_err());
    }

    #[test]
    fn stage_fails_mistakes_are_refused() {
        let st = stages();
        let bad = |text: &str| Scenario::parse("s", text, &st).unwrap_err().to_string();
        let base = "description = \"d\"\nexpect = \"stage_fails\"\n";
        assert!(bad(base).contains("needs `failed_stage`"));
        assert!(bad(&format!("{base}failed_stage = \"hepa\"\n")).contains("hepa"));
        let with = format!("{base}failed_stage = \"traps\"\n");
        assert!(Scenario::parse("s", &with, &st).is_ok());
        assert!(bad(&format!("{with}stages = [\"serial\"]\n")).contains("`stages`"));
        assert!(bad(&format!("{with}min_tests = 1\n")).contains("min_tests"));
        assert!(bad(&format!("{with}allow_skips = [\"notify\"]\n")).contains("allow_skips"));
        assert!(bad(&format!("{with}trap = \"x\"\n")).contains("crash"));
        assert!(bad(&format!("{with}[x86_64]\nsymbol = \"f\"\n")).contains("crash"));
        assert!(
            bad(&format!("{with}[x86_64]\nfailed_stage = \"heap\"\n")).contains("failed_stage")
        );
        for other in ["pass", "crash\"\ntrap = \"x"] {
            let text =
                format!("description = \"d\"\nexpect = \"{other}\"\nfailed_stage = \"traps\"\n");
            assert!(
                bad(&text).contains("only to expect = \"stage_fails\""),
                "{other}"
            );
        }
    }

    #[test]
    fn mistakes_are_refused() {
        let st = stages();
        let bad = |text: &str| Scenario::parse("s", text, &st).unwrap_err().to_string();
        let base = "description = \"d\"\nexpect = \"pass\"\n";
        assert!(bad(&format!("{base}colour = 1\n")).contains("colour"));
        assert!(bad(&format!("{base}stages = [\"serial\", \"hepa\"]\n")).contains("hepa"));
        assert!(bad(&format!("{base}trap = \"page fault\"\n")).contains("crash"));
        assert!(bad(&format!("{base}[x86_64]\nsymbol = \"f\"\n")).contains("crash"));
        assert!(
            bad(&format!(
                "{base}[x86_64]\nskip = true\n[aarch64]\nskip = true\n"
            ))
            .contains("skipped")
        );
        assert!(bad(&format!("{base}smp = 0\n")).contains("smp"));
        assert!(bad("description = \"d\"\nexpect = \"crash\"\n").contains("trap"));
        assert!(
            bad("description = \"d\"\nexpect = \"crash\"\ntrap = \"x\"\nmin_tests = 2\n")
                .contains("min_tests")
        );
        assert!(bad("description = \"d\"\nexpect = \"maybe\"\n").contains("maybe"));
        assert!(bad(&format!("{base}append = \"test=heap_alloc,nope\"\n")).contains("nope"));
        let one = format!("{base}append = \"test=heap_alloc\"\n");
        assert!(Scenario::parse("s", &one, &st).is_ok());
        assert!(
            bad(&format!("{one}allow_skips = [\"mm_asid_rollover\"]\n")).contains("does not run")
        );
        let allowed =
            format!("{base}append = \"test=all\"\n[x86_64]\nallow_skips = [\"notify\"]\n");
        let s = Scenario::parse("s", &allowed, &st).unwrap();
        let skips = |arch| match s.plan(arch, None).unwrap().check.expect {
            Expect::Pass { allow_skips, .. } => allow_skips,
            other => panic!("{other:?}"),
        };
        assert_eq!(skips(Arch::X86_64), ["notify"]);
        assert!(skips(Arch::Aarch64).is_empty());
        assert!(Scenario::parse("Bad-Name", base, &st).is_err());
    }

    #[test]
    fn the_shipped_scenarios_are_valid() {
        let st = Stages::load(&crate::workspace::stages_file()).unwrap();
        let all = Scenario::load_all(&crate::workspace::scenarios_dir(), &st).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "boot_all",
            "mem_64m",
            "mem_3g",
            "smp4",
            "cmdline_garbage",
            "x86_pc",
            "x86_qemu64",
            "x86_max",
            "arm_a53_gicv2",
            "arm_max_el2",
            "fault_unmapped",
            "fault_undefined",
            "panic_report",
            "init_truncated",
            "init_bad_magic",
            "init_wrong_machine",
            "init_bad_segment",
        ] {
            assert!(names.contains(&want), "missing scenario {want}");
        }
    }
}

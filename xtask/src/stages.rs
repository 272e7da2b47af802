//! The boot stages and the hint printed when one is missing.
//!
//! Owns the reading of `tests/stages.toml`: the boot order (`order`), one `[stage.NAME]` table
//! per stage saying what the stage does and where to look when it never reports `ok`, and the
//! `[no_output]` hint for a boot that printed nothing at all. The hints are data so that the
//! kernel engineers can keep them true without touching xtask.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What a stage does and where to look when it is missing.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    /// What the stage (or the boot up to the first output) does.
    pub does: String,
    /// Files and facts to check.
    pub look: String,
}

/// `tests/stages.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stages {
    /// Every stage in boot order: the stages a scenario expects when it names none.
    pub order: Vec<String>,
    /// The hint for each stage.
    pub stage: BTreeMap<String, Hint>,
    /// The hint for a boot that printed nothing.
    pub no_output: Hint,
}

impl Stages {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Stages> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Stages::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks the text of a stages file: every stage in `order` has a hint and every
    /// hint is for a stage in `order`.
    pub fn parse(text: &str) -> Result<Stages> {
        let stages: Stages = toml::from_str(text)?;
        for name in &stages.order {
            if !stages.stage.contains_key(name) {
                bail!("stage `{name}` is in `order` but has no [stage.{name}] table");
            }
        }
        for name in stages.stage.keys() {
            if !stages.order.contains(name) {
                bail!("[stage.{name}] is not in `order`");
            }
        }
        Ok(stages)
    }

    /// True when `name` is a known stage.
    pub fn knows(&self, name: &str) -> bool {
        self.stage.contains_key(name)
    }

    /// The hint text for a stage that did not report `ok` (indented lines, no trailing newline).
    pub fn explain_stage(&self, name: &str) -> String {
        match self.stage.get(name) {
            Some(h) => format!(
                "hint: stage `{name}` did not report ok\n  it does: {}\n  look at: {}",
                h.does, h.look
            ),
            None => {
                format!("hint: stage `{name}` did not report ok (no hint in tests/stages.toml)")
            }
        }
    }

    /// The hint text for a boot with no output at all.
    pub fn explain_silence(&self) -> String {
        format!(
            "hint: no output at all\n  until then: {}\n  look at: {}",
            self.no_output.does, self.no_output.look
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
order = ["serial", "heap"]
[stage.serial]
does = "UART init"
look = "serial.rs"
[stage.heap]
does = "heap"
look = "memory.rs"
[no_output]
does = "entry"
look = "linker script"
"#;

    #[test]
    fn parses_and_explains() {
        let s = Stages::parse(SMALL).unwrap();
        assert_eq!(s.order, ["serial", "heap"]);
        assert!(s.knows("heap") && !s.knows("frames"));
        assert_eq!(
            s.explain_stage("heap"),
            "hint: stage `heap` did not report ok\n  it does: heap\n  look at: memory.rs"
        );
        assert!(s.explain_silence().contains("linker script"));
    }

    #[test]
    fn order_and_tables_must_agree() {
        let missing_table = SMALL.replace(
            r#"order = ["serial", "heap"]"#,
            r#"order = ["serial", "heap", "x"]"#,
        );
        assert!(Stages::parse(&missing_table).is_err());
        let unordered = SMALL.replace(r#"order = ["serial", "heap"]"#, r#"order = ["serial"]"#);
        assert!(Stages::parse(&unordered).is_err());
    }

    #[test]
    fn the_shipped_stages_file_is_valid() {
        let s = Stages::load(&crate::workspace::stages_file()).unwrap();
        // The foundation's stages come first, in this order; later stages follow them.
        assert_eq!(
            s.order[..5],
            ["serial", "bootinfo", "frames", "heap", "traps"]
        );
        assert!(s.order.len() > 5);
    }
}

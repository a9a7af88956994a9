//! A program's configuration before load (libbpf's `bpf_program__set_*`) applied to what
//! its SEC() name says.

use super::section::SectionSpec;
use super::ProgramConfig;
use crate::error::{einval, Result};

impl ProgramConfig {
    pub(crate) fn apply(&self, name: &str, section: &str, spec: &mut SectionSpec) -> Result<()> {
        if let Some(t) = self.prog_type {
            spec.prog_type = t;
        }
        if let Some(t) = self.expected_attach_type {
            spec.expected_attach_type = t;
        }
        if let Some(target) = &self.attach_target {
            // Only BTF-targeted programs are loaded for a target; the others name theirs
            // at attach time. (freplace's target program is not supported.)
            if !spec.kind.needs_btf_target() {
                return Err(einval(format!(
                    "program '{name}' (SEC \"{section}\"): attachTarget is for fentry, fexit, \
                     fmod_ret, tp_btf, lsm and iter programs"
                )));
            }
            if target.is_empty() {
                return Err(einval(format!("program '{name}': attachTarget is empty")));
            }
            spec.target = Some(target.clone());
        }
        Ok(())
    }
}

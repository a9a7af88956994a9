//! A program's configuration before load (libbpf's `bpf_program__set_*`) applied to what
//! its SEC() name says.

use super::section::AttachKind;
use super::ProgramConfig;
use crate::error::{einval, Result};
use crate::program::Program;

impl ProgramConfig {
    pub(crate) fn apply(&self, program: &mut Program) -> Result<()> {
        let (name, section) = (&program.name, &program.section);
        let spec = &mut program.spec;
        if let Some(t) = self.prog_type {
            spec.prog_type = t;
        }
        if let Some(t) = self.expected_attach_type {
            spec.expected_attach_type = t;
        }
        let freplace = spec.kind == AttachKind::Freplace;
        if self.attach_prog.is_some() && !freplace {
            return Err(einval(format!(
                "program '{name}' (SEC \"{section}\"): an attachTarget program is for freplace \
                 programs"
            )));
        }
        if let Some(target) = &self.attach_target {
            // Only BTF-targeted programs are loaded for a target; the others name theirs
            // at attach time.
            if !spec.kind.needs_btf_target() && !freplace {
                return Err(einval(format!(
                    "program '{name}' (SEC \"{section}\"): attachTarget is for fentry, fexit, \
                     fmod_ret, tp_btf, lsm, iter and freplace programs"
                )));
            }
            if target.is_empty() {
                return Err(einval(format!("program '{name}': attachTarget is empty")));
            }
            spec.target = Some(target.clone());
        }
        if self.attach_prog.is_some() {
            program.attach_prog = self.attach_prog.clone();
        }
        Ok(())
    }
}

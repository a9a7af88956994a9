//! tracefs lookups (tracepoint ids), at either of its usual mount points.

use std::path::PathBuf;

use crate::error::{enoent, unsupported, Result};

pub fn root() -> Result<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
        .ok_or_else(|| {
            unsupported(
                "tracefs is not mounted (mount it with `mount -t tracefs nodev /sys/kernel/tracing`)",
            )
        })
}

pub fn tracepoint_id(category: &str, name: &str) -> Result<u64> {
    if category.contains(['/', '.']) || name.contains(['/', '.']) || category.is_empty() {
        return Err(enoent(format!(
            "tracepoint '{category}/{name}' is not a valid name"
        )));
    }
    let path = root()?.join("events").join(category).join(name).join("id");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        enoent(format!(
            "tracepoint '{category}/{name}' does not exist ({} is missing)",
            path.display()
        ))
    })?;
    text.trim()
        .parse()
        .map_err(|_| enoent(format!("unexpected contents of {}", path.display())))
}

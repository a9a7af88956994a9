//! Which symbols a user's selection means: a glob (`vfs_*`, `uv_?un`) or an exact list,
//! and the compiler's clones of a function (`name.part.0`, `name.cold`, `name.isra.0`,
//! `name.constprop.0`, `name.lto_priv.0`), which run code of `name` but are separate symbols.

/// What to attach to: a glob pattern, or exact names.
#[derive(Debug, Clone)]
pub enum Selection {
    Glob(String),
    Names(Vec<String>),
}

impl Selection {
    pub fn describe(&self) -> String {
        match self {
            Selection::Glob(g) => format!("'{g}'"),
            Selection::Names(n) if n.len() <= 3 => format!("{n:?}"),
            Selection::Names(n) => format!("{} names", n.len()),
        }
    }
}

/// `*` matches any run of characters, `?` any one; everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

const CLONE_SUFFIXES: &[&str] = &[
    "part",
    "cold",
    "isra",
    "constprop",
    "lto_priv",
    "localalias",
    "llvm",
];

/// `allocate_resource.part.0` → `allocate_resource`; `None` when `name` is not a clone.
pub fn clone_base(name: &str) -> Option<&str> {
    let dot = name.find('.')?;
    let (base, rest) = name.split_at(dot);
    let all_clone_parts = rest[1..].split('.').all(|part| {
        CLONE_SUFFIXES.contains(&part)
            || (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    });
    (all_clone_parts && !base.is_empty()).then_some(base)
}

/// Whether `name` is selected, directly or (with `include_clones`) as a clone of a selected name.
pub fn selects(selection: &Selection, name: &str, include_clones: bool) -> bool {
    let direct = |n: &str| match selection {
        Selection::Glob(g) => glob_match(g, n),
        Selection::Names(names) => names.iter().any(|x| x == n),
    };
    direct(name) || (include_clones && clone_base(name).is_some_and(direct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("vfs_*", "vfs_read"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*read*", "ksys_read_x"));
        assert!(glob_match("uv_?un", "uv_run"));
        assert!(!glob_match("vfs_*", "do_vfs_read"));
        assert!(!glob_match("a*b", "acbd"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn clones() {
        assert_eq!(
            clone_base("allocate_resource.part.0"),
            Some("allocate_resource")
        );
        assert_eq!(clone_base("f.cold"), Some("f"));
        assert_eq!(clone_base("f.isra.0.cold"), Some("f"));
        assert_eq!(clone_base("f.constprop.12"), Some("f"));
        assert_eq!(clone_base("f.llvm.1234"), Some("f"));
        assert_eq!(clone_base("plain"), None);
        assert_eq!(clone_base("foo.bar"), None);
        let sel = Selection::Names(vec!["allocate_resource".into()]);
        assert!(selects(&sel, "allocate_resource.part.0", true));
        assert!(!selects(&sel, "allocate_resource.part.0", false));
    }
}

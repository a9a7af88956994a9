//! Which symbols a user's selection means: a glob (`vfs_*`, `uv_?un`) or an exact list,
//! and the compiler's clones of a function (`name.part.0`, `name.cold`, `name.isra.0`,
//! `name.constprop.0`, `name.lto_priv.0`), which run code of `name` but are separate symbols.

use std::collections::HashMap;

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

/// A selection prepared for matching many symbols: exact names are hashed.
pub struct Matcher<'a> {
    glob: Option<&'a str>,
    names: HashMap<&'a str, usize>,
    include_clones: bool,
}

impl<'a> Matcher<'a> {
    pub fn new(selection: &'a Selection, include_clones: bool) -> Self {
        match selection {
            Selection::Glob(g) => Matcher {
                glob: Some(g),
                names: HashMap::new(),
                include_clones,
            },
            Selection::Names(n) => Matcher {
                glob: None,
                names: n.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect(),
                include_clones,
            },
        }
    }

    fn direct(&self, name: &str) -> bool {
        match self.glob {
            Some(g) => glob_match(g, name),
            None => self.names.contains_key(name),
        }
    }

    /// Whether `name` is selected, directly or (with clones) as a clone of a selected name.
    pub fn matches(&self, name: &str) -> bool {
        self.direct(name)
            || (self.include_clones && clone_base(name).is_some_and(|b| self.direct(b)))
    }

    /// Where an exact name stands in the caller's list (for keeping their order).
    pub fn position(&self, name: &str) -> usize {
        let base = clone_base(name).unwrap_or(name);
        self.names
            .get(name)
            .or_else(|| self.names.get(base))
            .copied()
            .unwrap_or(usize::MAX)
    }
}

/// Up to `max` names close to what `selection` asked for, best first, for a "did you
/// mean" when it matched nothing: names containing the selection's literal text, then
/// names within a small edit distance of it.
pub fn near_matches<'n>(
    selection: &Selection,
    names: impl Iterator<Item = &'n str>,
    max: usize,
) -> Vec<String> {
    let queries: Vec<String> = match selection {
        Selection::Glob(g) => vec![g.replace(['*', '?'], "")],
        Selection::Names(n) => n.iter().take(8).cloned().collect(),
    };
    let queries: Vec<String> = queries
        .into_iter()
        .filter(|q| q.len() >= 3)
        .map(|q| q.to_lowercase())
        .collect();
    if queries.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(usize, &str)> = Vec::new();
    for name in names {
        let lower = name.to_lowercase();
        let best = queries
            .iter()
            .filter_map(|q| {
                if lower.contains(q.as_str()) {
                    return Some(lower.len() - q.len());
                }
                let limit = q.len() / 3 + 1;
                if lower.len().abs_diff(q.len()) > limit {
                    return None;
                }
                let d = edit_distance(q.as_bytes(), lower.as_bytes());
                (d <= limit).then_some(100 + d)
            })
            .min();
        if let Some(score) = best {
            scored.push((score, name));
        }
    }
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(max)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// `; did you mean a, b?` or nothing.
pub fn did_you_mean(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(", "))
    }
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
    fn suggestions() {
        let names = [
            "vfs_read",
            "vfs_readv",
            "vfs_write",
            "do_sys_open",
            "ksys_read",
        ];
        let near = |s: Selection| near_matches(&s, names.iter().copied(), 3);
        assert_eq!(
            near(Selection::Names(vec!["vfs_raed".into()])),
            ["vfs_read", "vfs_readv"]
        );
        assert_eq!(near(Selection::Glob("do_sys_opn".into())), ["do_sys_open"]);
        assert_eq!(
            near(Selection::Glob("READ*".into())),
            ["vfs_read", "ksys_read", "vfs_readv"]
        );
        assert!(near(Selection::Glob("*".into())).is_empty());
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
        assert!(Matcher::new(&sel, true).matches("allocate_resource.part.0"));
        assert!(!Matcher::new(&sel, false).matches("allocate_resource.part.0"));
        assert_eq!(
            Matcher::new(&sel, true).position("allocate_resource.part.0"),
            0
        );
    }
}

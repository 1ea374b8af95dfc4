//! The layout rules of ARCHITECTURE.md, checked on the source tree: no file in `src/` over
//! 600 lines, and no import circle between its files.
//!
//! A file's imports are the `crate::`, `super::` and `self::` paths in its code (comments and
//! strings left out), each taken to the deepest file-backed module it names. A module's own
//! files may use one another (`core/channel/*.rs` adds methods to the type of
//! `core/channel/mod.rs`), so paths between a module and the files below it do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Every `.rs` file below `src/`, by module path (`core::channel` for
/// `src/core/channel/mod.rs`, `` for `src/lib.rs`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            (parts.join("::"), path)
        })
        .collect()
}

/// `source` without its comments, string literals and char literals (so that a path in a
/// doc link or a message is not taken for an import).
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |n| n + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|&b| b == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len() - body, |n| n + close.len());
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if bytes[i] == b'\'' && rest.len() >= 3 && {
            // A char literal ('x', '\n'), not a lifetime ('a).
            let inner = &rest[1..];
            inner.starts_with('\\') || inner.chars().nth(1) == Some('\'')
        } {
            i += match rest[1..].chars().next() {
                // '\n', '\'', '\u{..}': the quote after the escaped character.
                Some('\\') => rest[3..].find('\'').map_or(rest.len(), |n| n + 4),
                Some(c) => c.len_utf8() + 2,
                None => rest.len(),
            };
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Module paths, `a::b`, as their segments.
type ModPath = Vec<String>;

fn segments(path: &str) -> ModPath {
    path.split("::")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The leaves of the use tree `tree` (`a::{b, c::{D, E as F}, self}`) below `prefix`, each
/// with the name it is visible as (`F` for `E as F`).
fn expand(prefix: &[String], tree: &str, into: &mut Vec<(ModPath, String)>) {
    for item in split_top_level(tree) {
        if item.is_empty() {
            continue;
        }
        let mut path = prefix.to_vec();
        if let Some(open) = item.find('{') {
            path.extend(segments(&item[..open]));
            let close = item.rfind('}').unwrap_or(item.len());
            expand(&path, &item[open + 1..close], into);
            continue;
        }
        let (item, alias) = match item.split_once(" as ") {
            Some((item, alias)) => (item, Some(alias.trim().to_owned())),
            None => (item.as_str(), None),
        };
        let leaf = segments(item);
        if leaf != ["self"] {
            path.extend(leaf);
        }
        let name = alias.unwrap_or_else(|| path.last().cloned().unwrap_or_default());
        into.push((path, name));
    }
}

/// `leaf` (as written in module `here`) as a path from the crate root; `None` for another
/// crate's.
fn absolute(modules: &BTreeMap<String, PathBuf>, here: &str, leaf: &[String]) -> Option<ModPath> {
    let mut path: ModPath = segments(here);
    let (first, rest) = leaf.split_first()?;
    match first.as_str() {
        "crate" => path.clear(),
        "self" => {}
        "super" => {
            path.pop();
        }
        // A path relative to this module: one of its own modules.
        _ if modules.contains_key(&own_module(here, first)) => path.push(first.clone()),
        _ => return None,
    }
    let supers = rest.iter().take_while(|s| *s == "super").count();
    path.truncate(path.len().saturating_sub(supers));
    path.extend(rest[supers..].iter().filter(|s| *s != "*").cloned());
    Some(path)
}

/// The module `name` of module `here`.
fn own_module(here: &str, name: &str) -> String {
    if here.is_empty() {
        name.to_owned()
    } else {
        format!("{here}::{name}")
    }
}

/// Every `crate::`, `super::` and `self::` path in `code` (a use tree's every leaf).
fn named_paths(code: &str) -> Vec<ModPath> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at_word = i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':');
        let root = ["crate", "super", "self"].into_iter().find(|w| {
            let end = i + w.len();
            chars[i..].iter().take(w.len()).copied().eq(w.chars())
                && chars.get(end) == Some(&':')
                && chars.get(end + 1) == Some(&':')
        });
        let Some(root) = root.filter(|_| at_word) else {
            i += 1;
            continue;
        };
        // `root(::segment)*`, then maybe `::{group}` (up to its closing brace).
        let start = i;
        let mut j = i + root.len();
        while chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
            j += 2;
            if chars.get(j) == Some(&'{') {
                let mut depth = 0;
                while j < chars.len() {
                    depth += match chars[j] {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    j += 1;
                    if depth == 0 {
                        break;
                    }
                }
                break;
            }
            while j < chars.len() && (ident(chars[j]) || chars[j] == '*') {
                j += 1;
            }
        }
        let text: String = chars[start..j].iter().collect();
        let mut leaves = Vec::new();
        expand(&[], &text, &mut leaves);
        found.extend(leaves.into_iter().map(|(path, _)| path));
        i = j;
    }
    found
}

/// What module `here`'s `pub use`s make visible, by name: the paths they stand for.
fn reexports(
    modules: &BTreeMap<String, PathBuf>,
    here: &str,
    code: &str,
) -> BTreeMap<String, ModPath> {
    let mut names = BTreeMap::new();
    let mut rest = code;
    while let Some(at) = rest.find("pub") {
        let after = rest[at + 3..].trim_start();
        let after = match after.strip_prefix('(') {
            Some(scoped) => scoped.split_once(')').map_or("", |(_, a)| a).trim_start(),
            None => after,
        };
        rest = &rest[at + 3..];
        let Some(tree) = after.strip_prefix("use ") else {
            continue;
        };
        let tree = tree.split(';').next().unwrap_or_default();
        let mut leaves = Vec::new();
        expand(&[], tree, &mut leaves);
        for (leaf, name) in leaves {
            if let Some(path) = absolute(modules, here, &leaf) {
                names.insert(name, path);
            }
        }
    }
    names
}

/// The crate as the checker reads it.
struct Tree {
    modules: BTreeMap<String, PathBuf>,
    /// Each module's code, without comments and literals.
    code: BTreeMap<String, String>,
    reexports: BTreeMap<String, BTreeMap<String, ModPath>>,
}

impl Tree {
    fn new(modules: BTreeMap<String, PathBuf>, code: BTreeMap<String, String>) -> Tree {
        let reexports = code
            .iter()
            .map(|(m, c)| (m.clone(), reexports(&modules, m, c)))
            .collect();
        Tree {
            modules,
            code,
            reexports,
        }
    }

    fn read() -> Tree {
        let modules = modules();
        let code = modules
            .iter()
            .map(|(m, path)| {
                (
                    m.clone(),
                    code_only(&std::fs::read_to_string(path).unwrap()),
                )
            })
            .collect();
        Tree::new(modules, code)
    }

    /// The file `path` leads to: its deepest module, through the re-exports on the way.
    fn file_of(&self, path: &[String]) -> Option<String> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let n = (0..=path.len())
                .rev()
                .find(|&n| self.modules.contains_key(&path[..n].join("::")))?;
            let module = path[..n].join("::");
            let through = path
                .get(n)
                .and_then(|name| self.reexports.get(&module)?.get(name));
            match through {
                Some(to) => {
                    let mut next = to.clone();
                    next.extend(path[n + 1..].iter().cloned());
                    path = next;
                }
                None => return Some(module),
            }
        }
        None
    }

    /// Which files each file imports, leaving out a module's paths to its own files and theirs
    /// to it.
    fn imports(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.code
            .iter()
            .map(|(module, code)| {
                let targets = named_paths(code)
                    .iter()
                    .filter_map(|leaf| absolute(&self.modules, module, leaf))
                    .filter_map(|path| self.file_of(&path))
                    .filter(|t| !within(t, module) && !within(module, t))
                    .collect();
                (module.clone(), targets)
            })
            .collect()
    }
}

fn split_top_level(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items.into_iter().map(|s| s.trim().to_owned()).collect()
}

/// Whether `a` is `b` or lies below it.
fn within(a: &str, b: &str) -> bool {
    b.is_empty() || a == b || a.starts_with(&format!("{b}::"))
}

/// The circles of `graph`: its strongly connected parts of more than one file.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two files are in one circle when each reaches the other.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(next) = stack.pop() {
            for to in graph.get(&next).into_iter().flatten() {
                if seen.insert(to.clone()) {
                    stack.push(to.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut placed = BTreeSet::new();
    let mut found = Vec::new();
    for module in graph.keys() {
        if placed.contains(module) || !reaches[module].contains(module) {
            continue;
        }
        let circle: Vec<String> = reaches[module]
            .iter()
            .filter(|other| reaches[other].contains(module))
            .cloned()
            .collect();
        placed.extend(circle.iter().cloned());
        found.push(circle);
    }
    found
}

#[test]
fn no_file_in_src_is_over_600_lines() {
    let long: Vec<String> = modules()
        .values()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn no_import_circle_between_the_files_of_src() {
    let tree = Tree::read();
    let imports = tree.imports();
    // The checker sees the real imports, through the re-exports of `mod.rs`: a few that
    // every layer has.
    for (from, to) in [
        ("node::driver", "core::session"),
        ("core::session::replies", "protocol::frame"),
        ("sidecar::stdout", "protocol::frame"),
        ("node::hot", "node::driver"),
    ] {
        let targets = &imports[from];
        assert!(
            targets.contains(to),
            "{from} should import {to}: {targets:?}"
        );
    }
    let found = circles(&imports);
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn the_checker_finds_a_circle_through_a_reexport_and_ignores_comments_and_strings() {
    let sources = [
        ("", "mod a; mod b; mod c; mod r;"),
        (
            "a",
            "use crate::b::Thing; // crate::c\nfn f() { let _ = \"crate::c\"; }",
        ),
        (
            "b",
            "use super::{a::{One, Two as Three}, c};\n/// [x](crate::r)\n",
        ),
        (
            "c",
            "fn g<'x>(v: &'x str) -> char { let _ = inner::go(); '\\'' }",
        ),
        (
            "r",
            "mod inner;\npub use inner::{Deep, Deeper as Renamed};\nuse self::inner::Other;",
        ),
        ("r::inner", "pub struct Deep; fn h() { crate::c::g(\"\"); }"),
        ("x", "use crate::r::Deep;"),
        ("y", "use crate::r::Renamed;"),
    ];
    let modules = sources
        .iter()
        .map(|(m, _)| (m.to_string(), PathBuf::new()))
        .collect();
    let code = sources
        .iter()
        .map(|(m, c)| (m.to_string(), code_only(c)))
        .collect();
    let imports = Tree::new(modules, code).imports();
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(imports["a"], set(&["b"]));
    assert_eq!(imports["b"], set(&["a", "c"]));
    assert_eq!(imports["c"], set(&[]));
    assert_eq!(imports["r"], set(&[]), "its own file is left out");
    assert_eq!(imports["r::inner"], set(&["c"]));
    assert_eq!(imports["x"], set(&["r::inner"]), "through the re-export");
    assert_eq!(
        imports["y"],
        set(&["r::inner"]),
        "through the renaming re-export"
    );
    assert_eq!(
        circles(&imports),
        vec![vec!["a".to_owned(), "b".to_owned()]]
    );
}

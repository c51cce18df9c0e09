//! The crate's layering, read from its source: no import cycle between its
//! top-level modules, and `rt` (the ground floor) imports none of them.
//!
//! A module uses another when its code names `crate::<module>`, or an item
//! the crate root re-exports from it (`crate::Engine` is `engine`'s).
//! Comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = uses(&src());
    if let Some(cycle) = find_cycle(&graph) {
        let mut why = String::new();
        for pair in cycle.windows(2) {
            let files: Vec<&str> = graph[&pair[0]][&pair[1]].iter().map(String::as_str).collect();
            why += &format!("\n  {} -> {} in {}", pair[0], pair[1], files.join(", "));
        }
        panic!(
            "import cycle between top-level modules: {}{why}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_ground_floor_imports_nothing_above_it() {
    let graph = uses(&src());
    let above = graph.get("rt").cloned().unwrap_or_default();
    assert!(
        above.is_empty(),
        "rt imports from the rest of the crate: {above:?}"
    );
}

/// Every top-level module and the modules it uses, each with the files
/// that do.
fn uses(src: &Path) -> Graph {
    let lib = read(&src.join("lib.rs"));
    let modules = top_level_modules(&lib);
    assert!(modules.contains("rt"), "no `rt` module in lib.rs");
    let reexports = reexports(&lib, &modules);
    let mut graph = Graph::new();
    for m in &modules {
        let edges = graph.entry(m.clone()).or_default();
        for file in files_of(src, m) {
            let text = strip_comments(&read(&file));
            let name = file.strip_prefix(src).unwrap_or(&file).display().to_string();
            for used in crate_paths(&text) {
                let target = if modules.contains(&used) {
                    Some(used)
                } else {
                    reexports.get(&used).cloned()
                };
                if let Some(t) = target.filter(|t| t != m) {
                    edges.entry(t).or_default().insert(name.clone());
                }
            }
        }
    }
    graph
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `mod x;` declarations at the top of lib.rs, whatever their visibility.
fn top_level_modules(lib: &str) -> BTreeSet<String> {
    strip_comments(lib)
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let decl = l.trim().strip_suffix(';')?;
            let after = decl.split_once("mod ")?;
            let vis = after.0.trim();
            (vis.is_empty() || vis.starts_with("pub")).then(|| after.1.trim().to_string())
        })
        .collect()
}

/// Names the crate root re-exports, with the top-level module each comes
/// from (`pub use engine::{Engine, DirEntry};` gives `Engine` -> `engine`).
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = strip_comments(lib);
    for (at, _) in text.match_indices("use ") {
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        if !matches!(&text[line_start..at], "pub " | "pub(crate) ") {
            continue;
        }
        let stmt = &text[at..];
        let Some(path) = stmt[..stmt.find(';').unwrap_or(stmt.len())].strip_prefix("use ") else {
            continue;
        };
        let path = path.trim().trim_start_matches("crate::");
        let Some(module) = path.split("::").next().filter(|m| modules.contains(*m)) else {
            continue;
        };
        for leaf in leaves(path) {
            out.insert(leaf, module.to_string());
        }
    }
    out
}

/// The names a use path brings in: `a::{b, c::d as e}` gives `b` and `e`.
fn leaves(path: &str) -> Vec<String> {
    let ident = |s: &str| {
        s.rsplit(" as ")
            .next()
            .unwrap_or(s)
            .rsplit("::")
            .next()
            .unwrap_or(s)
            .trim()
            .to_string()
    };
    match path.find('{') {
        None => vec![ident(path)],
        Some(open) => split_top(&path[open + 1..path.rfind('}').unwrap_or(path.len())])
            .into_iter()
            .flat_map(|p| leaves(&p))
            .filter(|l| !l.is_empty() && l != "self")
            .collect(),
    }
}

/// The `.rs` files of top-level module `m`: `m.rs` and all under `m/`.
fn files_of(src: &Path, m: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src.join(format!("{m}.rs"));
    if file.is_file() {
        out.push(file);
    }
    let mut dirs = vec![src.join(m)];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    assert!(!out.is_empty(), "no source for module {m}");
    out
}

/// The first segment of every path that starts at `crate::`, including each
/// branch of a group (`crate::{a::X, b}` gives `a` and `b`).
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `some_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for branch in split_top(&group[..end]) {
                out.push(first_segment(&branch));
            }
        } else {
            out.push(first_segment(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Where the group that `s` is the inside of closes.
fn matching_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// Split at the commas outside any nested group.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0usize);
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur.trim().to_string());
    out.retain(|p| !p.is_empty());
    out
}

/// `text` without its `//` and `/* */` comments (doc comments included),
/// leaving string literals alone.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_str = true;
                out.push(c);
            }
            // A character literal of a quote or an escape is no string.
            ('\'', Some('"' | '\\')) => {
                out.push(c);
                let next = chars.next();
                out.extend(next);
                if next == Some('\\') {
                    out.extend(chars.next());
                }
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// A cycle in `graph`, as its modules with the first repeated at the end.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    // Depth-first; `path` is the current chain of modules being explored.
    fn visit(
        n: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_reader_finds_what_it_should() {
    let text = "use crate::{a::X, b};\n// crate::c\nlet s = \"//\"; f(crate::d::y); my_crate::e; /* crate::f */ b'\"'; crate::g";
    assert_eq!(crate_paths(&strip_comments(text)), ["a", "b", "d", "g"]);
    let lib = "pub mod a;\nmod b;\npub(crate) mod c;\n#[cfg(test)]\nmod tests {\n    mod inner;\n}\npub use a::{X, y::Z as W};\n";
    let modules = top_level_modules(lib);
    assert_eq!(modules, ["a", "b", "c"].map(String::from).into());
    let re = reexports(lib, &modules);
    assert_eq!(re.get("X").map(String::as_str), Some("a"));
    assert_eq!(re.get("W").map(String::as_str), Some("a"));
    let mut g = Graph::new();
    g.entry("a".into()).or_default().entry("b".into()).or_default();
    g.entry("b".into()).or_default().entry("a".into()).or_default();
    assert_eq!(find_cycle(&g), Some(["a", "b", "a"].map(String::from).to_vec()));
}

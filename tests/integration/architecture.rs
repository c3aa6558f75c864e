//! The layering of src/, checked from the source text: no import cycle between the
//! top-level modules (apart from the listed edges, each with its reason), and clap only in
//! src/app (and the binary's `main.rs`, which parses the command line).
//!
//! A reference is `crate::X` (also inside `use crate::{X, …}`) in a file's non-test code:
//! comments, `#[cfg(test)]` items and files declared by `#[cfg(test)] mod x;` are left out,
//! since tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of src/.
const MODULES: &[&str] = &[
    "app",
    "boot",
    "stages",
    "run",
    "observe",
    "report",
    "release",
    "input",
    "sys",
    "guest",
    "error",
    "exit_code",
];

/// Edges that close a cycle today, with why they are tolerated; each is a debt to pay off,
/// and one that disappears must be removed here (the test says so).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "stages",
        "error",
        "stages/debian.rs formats an error with error::chain for a test-report message; \
         chain belongs below both (sys) or the report should carry the BuildError",
    ),
    (
        "input",
        "stages",
        "input/scenario.rs maps Libc to stages::GlibcVariant (Libc::variant); the mapping \
         belongs to stages or run, which already read scenarios",
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text of `code` without comments and without `#[cfg(test)]` items, plus the names
/// of the modules it declares with `#[cfg(test)] mod name;`.
fn non_test_code(code: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if let Some(after) = t.strip_prefix("#[cfg(test)]") {
            // Skip the item: up to its `;` (no braces opened) or its closing brace.
            let mut depth = 0i64;
            let mut opened = false;
            let mut rest = after.to_string();
            loop {
                let item = rest.trim();
                if let Some(name) = item.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) {
                    test_mods.push(name.trim().to_string());
                }
                for c in rest.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                let done = if opened {
                    depth <= 0
                } else {
                    rest.trim_end().ends_with(';')
                };
                if done {
                    break;
                }
                match lines.next() {
                    Some(l) => rest = l.to_string(),
                    None => break,
                }
            }
            continue;
        }
        // A trailing comment may mention crate::X in prose.
        let code_part = line.split("//").next().unwrap_or(line);
        out.push_str(code_part);
        out.push('\n');
    }
    (out, test_mods)
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `code` names through `crate::`.
fn references(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `xsc_release::crate::` cannot occur; `$crate::` in macros is not ours to judge.
        if code[..i].ends_with('$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::b, c, d::{e, f}}`: the first segment at depth 0 of each item.
            let mut depth = 0;
            let mut at_item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        at_item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if at_item_start && (c.is_ascii_alphabetic() || c == '_') && depth == 0 {
                    refs.insert(ident_at(&group[j..]).to_string());
                    at_item_start = false;
                }
            }
        } else {
            refs.insert(ident_at(rest).to_string());
        }
    }
    refs.retain(|r| MODULES.contains(&r.as_str()));
    refs
}

/// Top-level module → (module it names → files that name it), from non-test code.
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    // Files that only exist for tests: `#[cfg(test)] mod x;` in their parent.
    let mut test_files = BTreeSet::new();
    for f in &files {
        let (_, test_mods) = non_test_code(&std::fs::read_to_string(f).expect("read"));
        let dir = if f
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            f.parent().expect("parent").to_path_buf()
        } else {
            f.with_extension("")
        };
        for m in test_mods {
            test_files.insert(dir.join(format!("{m}.rs")));
            test_files.insert(dir.join(&m).join("mod.rs"));
        }
    }
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&root).expect("under src");
        let first = rel.components().next().expect("component");
        let top = first.as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if !MODULES.contains(&top.as_str()) || test_files.contains(f) {
            continue; // lib.rs, main.rs, test-only files
        }
        let (code, _) = non_test_code(&std::fs::read_to_string(f).expect("read"));
        for r in references(&code) {
            if r != top {
                g.entry(top.clone())
                    .or_default()
                    .entry(r)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    g
}

fn reaches(
    g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    from: &str,
    to: &str,
    skip: &[(&str, &str)],
) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        if m == to {
            return true;
        }
        if !seen.insert(m.clone()) {
            continue;
        }
        for next in g.get(&m).into_iter().flat_map(|e| e.keys()) {
            if !skip.contains(&(m.as_str(), next.as_str())) {
                todo.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn top_level_modules_form_no_cycle_beyond_the_allowed_edges() {
    let g = graph();
    let allowed: Vec<(&str, &str)> = ALLOWED.iter().map(|(a, b, _)| (*a, *b)).collect();
    let mut cycles = Vec::new();
    for (from, edges) in &g {
        for (to, files) in edges {
            if allowed.contains(&(from.as_str(), to.as_str())) {
                continue;
            }
            if reaches(&g, to, from, &allowed) {
                cycles.push(format!(
                    "{from} -> {to} (in {}) closes a cycle: {to} reaches {from}",
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles.join("\n")
    );
    // An allowed edge that is gone, or no longer closes a cycle, is stale.
    for (from, to, why) in ALLOWED {
        let present = g.get(*from).is_some_and(|e| e.contains_key(*to));
        assert!(
            present && reaches(&g, to, from, &[]),
            "allowed edge {from} -> {to} no longer closes a cycle; remove it from ALLOWED ({why})"
        );
    }
}

#[test]
fn only_the_app_uses_clap() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(root.join("app")) && !f.ends_with("main.rs"))
        .filter(|f| {
            let (code, _) = non_test_code(&std::fs::read_to_string(f).expect("read"));
            code.contains("clap::") || code.contains("use clap")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "clap outside src/app: {offenders:?}");
}

#[test]
fn the_scanner_reads_use_groups_and_skips_tests_and_comments() {
    let code = "use crate::{app::cli, sys::{cache, process}, error};\n\
                // crate::boot in a comment\n\
                /// crate::guest in a doc comment\n\
                let x = crate::run::go(); // crate::observe trailing\n\
                #[cfg(test)]\nmod tests {\n    use crate::release;\n    fn f() { crate::input::x(); }\n}\n\
                #[cfg(test)]\nmod fixtures;\n\
                #[cfg(test)]\nuse crate::report;\n";
    let (kept, test_mods) = non_test_code(code);
    assert_eq!(test_mods, ["fixtures"]);
    let refs: Vec<String> = references(&kept).into_iter().collect();
    assert_eq!(refs, ["app", "error", "run", "sys"]);
}

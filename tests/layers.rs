//! The layer rule of CONTRIBUTING.md, checked: every `crate::` path in the library's
//! sources (tests inside them excepted) must point at its own layer or one below, and no
//! folder may hold an import circle between its files. The scan reads the sources as
//! text; it needs no build of the crate. A new upward arrow or circle fails here with the
//! file, the line and the rule it breaks.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of its own rank or lower; the
/// two leaves (`crypto`, `os`) may not use each other.
fn layer_of_module(module: &str) -> Option<(u8, &'static str)> {
    Some(match module {
        "ck" | "config" | "error" | "ids" | "legacy" | "logging" | "vendor" => (0, "shared"),
        "crypto" => (1, "crypto"),
        "os" => (1, "os"),
        "store" => (2, "store"),
        "kms" => (3, "kms"),
        "provider" | "token" | "session" | "object" | "mechanism" | "operation" | "secret_use" => {
            (4, "PKCS#11 semantics")
        }
        "ffi" => (5, "C ABI"),
        _ => return None,
    })
}

/// The "may use" column of CONTRIBUTING.md's table: the layers `layer` may use besides its
/// own, the shared modules (rank 0) being usable by all. Narrower than the ranks alone,
/// which would let the key model use `os`.
fn may_use(layer: &str, target: &str) -> bool {
    let below: &[&str] = match layer {
        "C ABI" => return true,
        "PKCS#11 semantics" => &["kms", "store", "crypto", "os"],
        "kms" => &["store", "crypto"],
        "store" => &["crypto", "os"],
        _ => &[],
    };
    target == layer || target == "shared" || below.contains(&target)
}

/// The first path component of a file under `src/` (`token/kms.rs` → `token`,
/// `provider.rs` → `provider`); `None` for `lib.rs` and the binaries.
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" || first == "bin" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without its test code: files that are test modules are skipped
/// whole, others are cut at their `#[cfg(test)]` module (last in the file by habit).
fn code_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "contract.rs" {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let cut = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    Some(text[..cut].to_string())
}

/// Every module path a line names through `crate::`: `crate::a::b` and the members of
/// `crate::{a::b, c}` (nested braces flattened), as their first two components.
fn crate_paths(line: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // Not `kmshsm_crate::` or the like.
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(inner) = rest.strip_prefix('{') {
            // The top-level items of the brace list (nested lists stay inside their item).
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            items.push(item);
            for item in items {
                let mut parts = item.trim().split("::").map(str::trim);
                if let Some(first) = parts.next().filter(|p| !p.is_empty()) {
                    let second = parts.next().map(|s| {
                        s.trim_start_matches('{')
                            .split([',', '}'])
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string()
                    });
                    out.push((first.to_string(), second));
                }
            }
        } else {
            let mut parts = rest.split("::");
            let first: String = parts
                .next()
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let second: Option<String> = parts.next().map(|s| {
                s.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            });
            if !first.is_empty() {
                out.push((first, second));
            }
        }
    }
    out
}

struct Source {
    rel: PathBuf,
    code: String,
}

fn library() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let code = code_of(&p)?;
            Some(Source {
                rel: p.strip_prefix(&src).unwrap().to_path_buf(),
                code,
            })
        })
        .collect()
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let mut breaches = Vec::new();
    let mut checked = 0;
    for file in library() {
        let Some(own) = top_module(&file.rel) else {
            continue;
        };
        let Some((own_rank, own_name)) = layer_of_module(&own) else {
            panic!(
                "{}: its module {own} is in no layer: add it to the table",
                file.rel.display()
            );
        };
        for (n, line) in file.code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (target, _) in crate_paths(line) {
                let Some((rank, name)) = layer_of_module(&target) else {
                    continue;
                };
                checked += 1;
                let sibling_leaves = rank == own_rank && rank == 1 && target != own;
                if rank > own_rank || sibling_leaves || !may_use(own_name, name) {
                    breaches.push(format!(
                        "{}:{}: {own_name} ({own}) uses {name} ({target}): `{}`",
                        file.rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 200,
        "only {checked} crate paths found: is the scan broken?"
    );
    assert!(
        breaches.is_empty(),
        "arrows pointing up or to a layer outside the may-use column (CONTRIBUTING.md, \"The layers\"):\n{}",
        breaches.join("\n")
    );
}

/// The files of one folder and which of them each names (`super::x`, or
/// `crate::folder::x`).
fn folder_graphs() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let files = library();
    for file in &files {
        let Some(folder) = file.rel.parent().and_then(|p| p.to_str()) else {
            continue;
        };
        if folder.is_empty() {
            continue;
        }
        let me = file.rel.file_stem().unwrap().to_str().unwrap().to_string();
        let siblings: BTreeSet<String> = files
            .iter()
            .filter(|f| f.rel.parent().and_then(|p| p.to_str()) == Some(folder))
            .map(|f| f.rel.file_stem().unwrap().to_str().unwrap().to_string())
            .filter(|s| s != "mod")
            .collect();
        let mut names = BTreeSet::new();
        for line in file
            .code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
        {
            let mut rest = line;
            while let Some(at) = rest.find("super::") {
                rest = &rest[at + "super::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if let Some(list) = rest.strip_prefix('{') {
                    let end = list.find('}').unwrap_or(list.len());
                    for item in list[..end].split(',') {
                        let first = item.trim().split("::").next().unwrap_or("").to_string();
                        names.insert(first);
                    }
                } else {
                    names.insert(name);
                }
            }
            for (top, second) in crate_paths(line) {
                if Some(top.as_str()) == folder.split('/').next() && !folder.contains('/') {
                    if let Some(second) = second {
                        names.insert(second);
                    }
                }
            }
        }
        let edges: BTreeSet<String> = names
            .into_iter()
            .filter(|n| siblings.contains(n) && *n != me && me != "mod")
            .collect();
        graphs
            .entry(folder.to_string())
            .or_default()
            .insert(me, edges);
    }
    graphs
}

/// The circles of a graph, each as the sorted list of its members (strongly connected
/// components of more than one node).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in graph.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let mut out: BTreeSet<Vec<String>> = BTreeSet::new();
    for node in graph.keys() {
        let from = reach(node);
        if !from.contains(node) {
            continue;
        }
        let component: Vec<String> = graph
            .keys()
            .filter(|m| from.contains(*m) && reach(m).contains(node))
            .cloned()
            .collect();
        out.insert(component);
    }
    out.into_iter().collect()
}

/// The circles there are today, to be broken (issue 17); none is left. The list may only
/// shrink: a circle not listed fails, and so does a listed one that is gone.
const KNOWN_CIRCLES: &[&str] = &[];

#[test]
fn no_folder_holds_an_import_circle_between_its_files() {
    let mut found = Vec::new();
    for (folder, graph) in folder_graphs() {
        for circle in circles(&graph) {
            found.push(format!("{folder}/{{{}}}", circle.join(",")));
        }
    }
    let unknown: Vec<&String> = found
        .iter()
        .filter(|c| !KNOWN_CIRCLES.contains(&c.as_str()))
        .collect();
    let gone: Vec<&&str> = KNOWN_CIRCLES
        .iter()
        .filter(|k| !found.iter().any(|c| c == **k))
        .collect();
    assert!(
        unknown.is_empty() && gone.is_empty(),
        "import circles not on the list: {unknown:?}\nlisted circles that are gone: {gone:?}"
    );
}

#[test]
fn the_scan_sees_an_upward_arrow_and_a_circle_when_there_is_one() {
    assert_eq!(
        crate_paths("use crate::{token::Token, store::{Store, Change}};"),
        vec![
            ("token".to_string(), Some("Token".to_string())),
            ("store".to_string(), Some("Store".to_string())),
        ]
    );
    assert_eq!(
        crate_paths("let x = crate::crypto::rand::random_fill(&mut b)?;"),
        vec![("crypto".to_string(), Some("rand".to_string()))]
    );
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&graph), vec![vec!["a", "b", "c"]]);
}

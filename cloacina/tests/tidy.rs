//! Tidy: the layer rules of ARCHITECTURE.md, checked on the source text of `cloacina/src`.
//!
//! - Each unit (a top-level module; `cron/expression.rs` apart from the cron service) imports only
//!   the units listed for it in [`LAYERS`], a table without circles; within a module, sibling
//!   files do not import each other in a circle (the services' data flows one way: claim →
//!   attempt → completer).
//! - Every file starts with a `//!` header.
//! - The engine reads the wall clock only through its `Clock`.
//! - Only `database/` knows the backends: no `AnyConnection` variant outside `database/backend/`
//!   (and `connection.rs`, which declares the enum), no backend feature test outside `database/`.
//!
//! Imports are read from code, not comments: `crate::a::…`, `crate::{a, b::…}`, `super::x`
//! (a sibling file) and names the crate root re-exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each unit and the units it may import. The order is bottom-up: a unit lists only units
/// above it in the table, which [`the_layer_table_has_no_circles`] checks.
const LAYERS: &[(&str, &[&str])] = &[
    ("database", &[]),
    ("models", &["database"]),
    ("context", &[]),
    ("input", &["context"]),
    ("clock", &[]),
    ("cron::expression", &[]),
    ("task", &["context", "models"]),
    ("retry", &["task"]),
    ("trigger", &[]),
    ("workflow", &["context", "models", "retry", "task"]),
    ("error", &["context", "cron::expression", "database", "input", "models", "workflow"]),
    ("config", &["error"]),
    ("telemetry", &["error"]),
    ("faults", &["error"]),
    ("dal", &["database", "models", "workflow"]),
    ("results", &["context", "dal", "models", "task"]),
    ("cron", &["clock", "context", "cron::expression", "dal", "database", "error", "input", "models"]),
    (
        "engine",
        &[
            "clock",
            "config",
            "context",
            "dal",
            "database",
            "error",
            "faults",
            "models",
            "results",
            "telemetry",
            "trigger",
            "workflow",
        ],
    ),
    (
        "scheduler",
        &["context", "dal", "database", "engine", "error", "faults", "input", "models", "results", "task", "workflow"],
    ),
    (
        "ops",
        &[
            "context",
            "cron",
            "dal",
            "database",
            "engine",
            "error",
            "faults",
            "input",
            "models",
            "results",
            "scheduler",
            "workflow",
        ],
    ),
    (
        "services",
        &[
            "clock",
            "context",
            "cron",
            "dal",
            "database",
            "engine",
            "error",
            "faults",
            "input",
            "models",
            "results",
            "ops",
            "scheduler",
            "task",
            "telemetry",
            "trigger",
            "workflow",
        ],
    ),
    ("executor", &["context", "database", "engine", "error", "models", "ops", "results"]),
    (
        "runner",
        &[
            "clock",
            "config",
            "context",
            "cron",
            "cron::expression",
            "database",
            "engine",
            "error",
            "executor",
            "faults",
            "models",
            "ops",
            "scheduler",
            "trigger",
            "services",
            "workflow",
        ],
    ),
];

/// Names the crate root re-exports, and the unit each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Context", "context"),
    ("Error", "error"),
    ("ErrorKind", "error"),
    ("TaskStatus", "models"),
    ("TaskError", "task"),
    ("Backend", "database"),
    ("BackendFeature", "database"),
    ("Database", "database"),
    ("DatabaseConfig", "database"),
    ("for_each_table", "database"),
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as a path relative to it.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(base).expect("under src").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(&src_dir(), &src_dir(), &mut out);
    out.sort();
    out
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(src_dir().join(file)).expect("read source")
}

/// The source without comments (line comments, doc comments), so doc links are not imports.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The unit a file belongs to.
fn unit_of(file: &Path) -> String {
    let parts: Vec<String> = file.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
    if parts.len() >= 2 && parts[0] == "cron" && parts[1] == "expression" {
        return "cron::expression".to_owned();
    }
    parts[0].clone()
}

/// The unit an import path (the words after `crate::`) names.
fn unit_of_path(path: &[&str]) -> String {
    if path.len() >= 2 && path[0] == "cron" && path[1] == "expression" {
        return "cron::expression".to_owned();
    }
    ROOT_REEXPORTS.iter().find(|(name, _)| *name == path[0]).map_or(path[0], |(_, unit)| unit).to_owned()
}

/// The paths after each `crate::` in `code`, groups (`crate::{a::b, c}`) expanded one level.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `crate::` or `$crate::`, not the tail of a longer name (`mycrate::`).
        let own = !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let after = &rest[i + "crate::".len()..];
        rest = after;
        if !own {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(j, _)| j);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(words(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            out.push(words(after));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The leading `a::b::c` words of `s`.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out
}

/// Unit → units it imports, read from the sources.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources() {
        let unit = unit_of(&file);
        if unit == "lib" {
            continue; // the crate root assembles everything
        }
        for path in crate_paths(&code_of(&read(&file))) {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let target = unit_of_path(&path);
            if target != unit && target != "self" {
                graph.entry(unit.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

#[test]
fn the_layer_table_has_no_circles() {
    let mut seen = BTreeSet::new();
    for (unit, allowed) in LAYERS {
        for a in *allowed {
            assert!(seen.contains(a), "`{unit}` may import `{a}`, which is not below it in LAYERS");
        }
        assert!(seen.insert(*unit), "`{unit}` is listed twice");
    }
}

#[test]
fn units_import_only_the_layers_below_them() {
    let table: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (unit, targets) in imports() {
        let Some(allowed) = table.get(unit.as_str()) else {
            wrong.push(format!("`{unit}` is not in the LAYERS table"));
            continue;
        };
        for t in targets {
            if !allowed.contains(&t.as_str()) {
                wrong.push(format!("`{unit}` imports `{t}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layer rules:\n{}", wrong.join("\n"));
}

#[test]
fn sibling_files_import_each_other_without_circles() {
    // Edges between files of one directory, through `super::x` or `crate::<module>::x`.
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in sources() {
        let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else { continue };
        if file.file_name().is_some_and(|n| n == "mod.rs") {
            continue; // a module's root declares and re-exports its files
        }
        let code = code_of(&read(&file));
        let module = dir.to_string_lossy().replace('/', "::");
        let mut names: Vec<String> = Vec::new();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("super::") {
            rest = &rest[i + "super::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                names.extend(group[..end].split(',').filter_map(|w| words(w).into_iter().next()));
            } else {
                names.extend(words(rest).into_iter().next());
            }
        }
        for path in crate_paths(&code) {
            if path.join("::").starts_with(&format!("{module}::")) {
                names.extend(path.get(module.split("::").count()).cloned());
            }
        }
        for name in names {
            let sibling = dir.join(format!("{name}.rs"));
            if sibling != file && src_dir().join(&sibling).exists() {
                edges.entry(file.clone()).or_default().insert(sibling);
            }
        }
    }
    // Depth-first search for a circle.
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        path: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            return Some(path[i..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("files import each other in a circle: {circle:?}");
        }
    }
}

#[test]
fn every_file_starts_with_a_module_header() {
    let missing: Vec<_> = sources()
        .into_iter()
        .filter(|f| !read(f).lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!")))
        .collect();
    assert!(missing.is_empty(), "files without a `//!` header: {missing:?}");
}

#[test]
fn only_the_database_layer_knows_the_backends() {
    let mut wrong = Vec::new();
    for file in sources() {
        let text = code_of(&read(&file));
        let name = file.to_string_lossy().into_owned();
        let in_backend = name.starts_with("database/backend/") || name == "database/connection.rs";
        for variant in ["AnyConnection::Postgres", "AnyConnection::Sqlite"] {
            if text.contains(variant) && !in_backend {
                wrong.push(format!("{name}: matches `{variant}`"));
            }
        }
        for feature in ["feature = \"postgres\"", "feature = \"sqlite\""] {
            if text.contains(feature) && !name.starts_with("database/") {
                wrong.push(format!("{name}: tests `{feature}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "backend knowledge outside the database layer:\n{}", wrong.join("\n"));
}

#[test]
fn the_engine_reads_time_only_from_its_clock() {
    // The clock itself, the universal timestamp's constructor, a cron pattern's parse-time "does
    // it ever fire" check, and the time stamp of a task error built by task code (upstream's
    // `ExecutionFailed::timestamp`) are the only readers of the system's wall clock.
    let allowed = ["clock.rs", "database/universal_types.rs", "cron/expression.rs", "task/mod.rs"];
    let mut wrong = Vec::new();
    for file in sources() {
        let name = file.to_string_lossy().into_owned();
        let text = code_of(&read(&file));
        for reader in ["Utc::now()", "SystemTime::now()", "UniversalTimestamp::now()", "Local::now()"] {
            if text.contains(reader) && !allowed.contains(&name.as_str()) {
                wrong.push(format!("{name}: calls `{reader}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "wall-clock reads outside the clock (use Engine::now):\n{}", wrong.join("\n"));
}

#[test]
fn the_import_reader_sees_groups_and_skips_comments() {
    let code =
        code_of("use crate::{dal::x, engine::{A, B}};\n// crate::runner in a comment\nlet _ = crate::Context::new();");
    let paths = crate_paths(&code);
    let firsts: Vec<&str> = paths.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(firsts, vec!["dal", "engine", "Context"]);
    assert_eq!(unit_of_path(&["Context", "new"]), "context");
}

//! Tidy: the rules ARCHITECTURE.md states, checked on the source text of every crate of the
//! workspace, so the map cannot claim what the code does not do.
//!
//! - **Layers** (`cloacina`): each unit (a top-level module; `cron/expression.rs` apart) imports
//!   only the units listed for it in [`LAYERS`], a table without circles.
//! - **No circles between files** (`cloacina`), across directories too. A path to an item a
//!   module root (`mod.rs`, `lib.rs`) only re-exports counts as a path to the file that defines
//!   it, so a root that gathers its children is not a circle.
//! - **Surfaces stay on the application layer**: the server, the CLI and the Python module import
//!   nothing of `cloacina` in [`SURFACES_MAY_NOT_USE`] (the DAL above all).
//! - **Backends stay in `database/`**: no `AnyConnection` variant outside `database/backend/`
//!   (and `connection.rs`, which declares the enum) and no backend `cfg` outside `database/`, in
//!   any crate.
//! - **One clock**: no wall-clock read anywhere but `cloacina/src/clock.rs` and [`CLOCK_READERS`].
//! - Every file starts with a `//!` header.
//!
//! Paths are read from code, not comments or strings, in every form: `crate::…`, `$crate::…`,
//! `super::…`, `self::…`, a child module's name, `cloacina::…` from another crate, and groups
//! (`a::{b, c::{d}}`), in `use` items and in expressions alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each unit of `cloacina` and the units it may import. Bottom-up: a unit lists only units above
/// it in the table ([`the_layer_table_has_no_circles`]).
const LAYERS: &[(&str, &[&str])] = &[
    ("database", &[]),
    ("models", &["database"]),
    ("context", &[]),
    ("input", &["context"]),
    ("clock", &[]),
    ("logging", &["database"]),
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
            "cron::expression",
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
            "ops",
            "results",
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
            "services",
            "trigger",
            "workflow",
        ],
    ),
    (
        "packages",
        &[
            "context", "database", "error", "faults", "logging", "models", "ops", "runner", "task", "trigger",
            "workflow",
        ],
    ),
];

/// Names `cloacina`'s root re-exports, and the unit each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Context", "context"),
    ("Error", "error"),
    ("ErrorKind", "error"),
    ("TaskStatus", "models"),
    ("TaskError", "task"),
    ("TaskHandle", "task"),
    ("Workflow", "workflow"),
    ("Backend", "database"),
    ("BackendFeature", "database"),
    ("Database", "database"),
    ("DatabaseConfig", "database"),
    ("for_each_table", "database"),
];

/// What the surfaces (server, CLI, Python module) may not import from `cloacina`: they convert
/// input, call the application layer (`cloacina::ops`) and render what it returns.
const SURFACES_MAY_NOT_USE: &[&str] = &["dal", "database::migrate", "database::schema", "scheduler"];

/// The surfaces' crates.
const SURFACES: &[&str] = &["cloacina-server", "cloacinactl", "cloacina-python"];

/// Files besides `cloacina/src/clock.rs` that may read the wall clock, and why.
const CLOCK_READERS: &[(&str, &str)] = &[
    // `UniversalTimestamp::now()` is the stored type's own constructor for callers outside a
    // runner (DAL tests, tools); the engine reads its `Clock`.
    ("cloacina/src/database/universal_types.rs", "the stored timestamp's constructor"),
    // Refusing a pattern that never fires needs some "now" at parse time, before any runner.
    ("cloacina/src/cron/expression.rs", "a cron pattern's parse-time check"),
    // Upstream's `TaskError::ExecutionFailed` carries the time task code built it.
    ("cloacina-workflow/src/task.rs", "the time stamp of an error built by task code"),
    // The CLI's one reading of the clock (`commands::now`), through the `Clock` trait.
    ("cloacinactl/src/commands/mod.rs", "the CLI's now()"),
];

/// The only files that may hold `unsafe` code: the package ABI's C boundary, as declared (its
/// function types) and on each side (the package's exports, the host's loader). Everything else
/// is safe Rust (the workspace denies `unsafe_code`; the two sides allow it).
const UNSAFE_BOUNDARY: &[&str] =
    &["cloacina-workflow/src/plugin.rs", "cloacina-workflow-plugin/src/lib.rs", "cloacina/src/packages/abi.rs"];

/// Wall-clock reads.
const CLOCK_CALLS: &[&str] =
    &["Utc::now()", "Local::now()", "SystemTime::now()", "UniversalTimestamp::now()", "SystemClock.now()"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's crates (directory names), from its manifest.
fn crates() -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("workspace manifest");
    let members = manifest.split("members = [").nth(1).and_then(|m| m.split(']').next()).expect("members");
    members.split(',').map(|m| m.trim().trim_matches('"').to_owned()).filter(|m| !m.is_empty()).collect()
}

/// A source file: its crate, its path under the crate's `src/`, and its code (comments and
/// string literals blanked).
struct Source {
    krate: String,
    file: PathBuf,
    text: String,
    code: String,
}

impl Source {
    /// `cloacina/src/database/url.rs`-style name.
    fn name(&self) -> String {
        format!("{}/src/{}", self.krate, self.file.display())
    }

    /// The module path of the file within its crate (`database::backend::postgres`).
    fn module(&self) -> Vec<String> {
        let mut parts: Vec<String> = self.file.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let last = parts.pop().unwrap_or_default();
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_owned());
        }
        parts
    }

    fn is_root(&self) -> bool {
        self.file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs")
    }
}

fn sources() -> &'static [Source] {
    static ALL: std::sync::OnceLock<Vec<Source>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        for krate in crates() {
            let src = workspace().join(&krate).join("src");
            let mut files = Vec::new();
            walk(&src, &src, &mut files);
            for file in files {
                let text = std::fs::read_to_string(src.join(&file)).expect("read source");
                let code = code_of(&text);
                out.push(Source { krate: krate.clone(), file, text, code });
            }
        }
        out
    })
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("read src").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(base).expect("under src").to_path_buf());
        }
    }
}

/// `text` with comments and the insides of string and char literals blanked (lengths kept), so
/// neither a doc link nor a message is read as code.
fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&chars, i) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) == Some(&'"') {
                out.push('"');
                j += 1;
                loop {
                    if j >= chars.len() {
                        break;
                    }
                    if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push('"');
                i = j;
                continue;
            }
        }
        if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push('"');
            i += 1;
            continue;
        }
        if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
            continue;
        }
        if c == '\'' && next == Some('\\') {
            // '\n', '\u{…}'
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
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
        match rest[end..].trim_start().strip_prefix("::") {
            Some(r) if !r.trim_start().starts_with('{') => rest = r.trim_start(),
            Some(r) => {
                // A group after this prefix: the caller expands groups; stop here.
                let _ = r;
                break;
            }
            None => break,
        }
    }
    out
}

/// Every path in `code` that starts with `prefix` (`crate::`, `super::`, …), groups expanded at
/// any depth. `prefix` must follow a non-identifier character.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(prefix) {
        let at = from + found;
        from = at + prefix.len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mycrate::`
        }
        expand(&code[at + prefix.len()..], Vec::new(), &mut out);
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Expands the path (and groups) at the start of `s` under `base` into `out`.
fn expand(s: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let head = words(s);
    let mut path = base;
    path.extend(head.iter().cloned());
    // Skip the words and `::` just read, to see whether a group follows.
    let mut rest = s.trim_start();
    for (i, w) in head.iter().enumerate() {
        rest = rest[w.len()..].trim_start();
        if i + 1 < head.len() {
            rest = rest.strip_prefix("::").unwrap_or(rest).trim_start();
        }
    }
    let group = match rest.strip_prefix("::") {
        Some(r) => r.trim_start().strip_prefix('{'),
        None if head.is_empty() => rest.strip_prefix('{'),
        None => None,
    };
    let Some(group) = group else {
        out.push(path);
        return;
    };
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
    let (mut depth, mut start) = (0, 0);
    let inner = &group[..end];
    for (j, c) in inner.char_indices().chain(std::iter::once((inner.len(), ','))) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let item = inner[start..j].trim();
                if item == "self" {
                    out.push(path.clone());
                } else if !item.is_empty() {
                    expand(item, path.clone(), out);
                }
                start = j + 1;
            }
            _ => {}
        }
    }
}

/// The absolute module paths (within the file's crate) the file refers to.
fn crate_refs(s: &Source) -> Vec<Vec<String>> {
    let module = s.module();
    let mut out = paths_after(&s.code, "crate::");
    for p in paths_after(&s.code, "super::") {
        // `super` of a file `a/b.rs` is `a`; of `a/mod.rs`, the crate root's child `a`'s parent.
        let mut base = module.clone();
        base.pop();
        let mut p = p;
        while p.first().is_some_and(|w| w == "super") {
            p.remove(0);
            base.pop();
        }
        base.extend(p);
        out.push(base);
    }
    for p in paths_after(&s.code, "self::") {
        let mut base = module.clone();
        base.extend(p);
        out.push(base);
    }
    // `use child::…` in a module root: a relative path to one of its children.
    if s.is_root() {
        for line in s.code.lines().map(str::trim) {
            let Some(rest) = line
                .strip_prefix("pub use ")
                .or_else(|| line.strip_prefix("pub(crate) use "))
                .or_else(|| line.strip_prefix("use "))
            else {
                continue;
            };
            let mut local = Vec::new();
            expand(rest, Vec::new(), &mut local);
            for p in local {
                if p.first().is_some_and(|w| child_exists(s, w)) {
                    let mut base = module.clone();
                    base.extend(p);
                    out.push(base);
                }
            }
        }
    }
    out
}

/// True when `name` is a child module file of the root `s`.
fn child_exists(s: &Source, name: &str) -> bool {
    let dir = s.file.parent().unwrap_or(Path::new(""));
    sources().iter().any(|o| {
        o.krate == s.krate && (o.file == dir.join(format!("{name}.rs")) || o.file == dir.join(name).join("mod.rs"))
    })
}

/// The file of `krate` that defines what `path` names: the deepest module file on the path, or,
/// when that is a module root which only re-exports the name, the file it re-exports it from.
fn file_of(krate: &str, path: &[String]) -> Option<&'static Source> {
    file_within(krate, path, 8)
}

/// A re-export target outside the crate: no file of it defines the item.
const EXTERNAL: &str = "<another crate>";

fn file_within(krate: &str, path: &[String], hops: u32) -> Option<&'static Source> {
    let files: Vec<&Source> = sources().iter().filter(|s| s.krate == krate).collect();
    let mut best: Option<(&Source, usize)> = None;
    for s in &files {
        let m = s.module();
        if m.len() <= path.len() && m.iter().zip(path).all(|(a, b)| a == b) && best.is_none_or(|(_, n)| m.len() > n) {
            best = Some((s, m.len()));
        }
    }
    let (found, depth) = best?;
    if found.is_root() && hops > 0 {
        if let Some(name) = path.get(depth) {
            if let Some(target) = reexport_target(found, name) {
                if target.first().is_some_and(|w| w == EXTERNAL) {
                    return None;
                }
                if let Some(deeper) = file_within(krate, &target, hops - 1).filter(|d| !std::ptr::eq(*d, found)) {
                    return Some(deeper);
                }
            }
        }
    }
    Some(found)
}

/// Where the root `s` re-exports `name` from (an absolute module path), if it does.
fn reexport_target(s: &Source, name: &str) -> Option<Vec<String>> {
    let module = s.module();
    for line in s.code.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub use ").or_else(|| line.strip_prefix("pub(crate) use ")) else {
            continue;
        };
        let mut items = Vec::new();
        expand(rest, Vec::new(), &mut items);
        for item in items {
            if item.last().is_some_and(|w| w == name) && item.len() > 1 {
                let mut target = match item[0].as_str() {
                    "crate" => Vec::new(),
                    "super" => {
                        let mut m = module.clone();
                        m.pop();
                        m
                    }
                    "self" => module.clone(),
                    child if child_exists(s, child) => module.clone(),
                    _ => return Some(vec![EXTERNAL.to_owned()]), // another crate's item
                };
                target.extend(item.into_iter().skip_while(|w| w == "crate" || w == "super" || w == "self"));
                return Some(target);
            }
        }
    }
    None
}

/// The unit (top-level module, `cron::expression` apart) a `cloacina` module path belongs to.
fn unit_of(path: &[String]) -> Option<String> {
    let first = path.first()?;
    if first == "cron" && path.get(1).is_some_and(|w| w == "expression") {
        return Some("cron::expression".to_owned());
    }
    Some(ROOT_REEXPORTS.iter().find(|(name, _)| name == first).map_or(first.clone(), |(_, unit)| (*unit).to_owned()))
}

fn cloacina_sources() -> impl Iterator<Item = &'static Source> {
    sources().iter().filter(|s| s.krate == "cloacina")
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
    let mut wrong = BTreeSet::new();
    for s in cloacina_sources() {
        let Some(unit) = unit_of(&s.module()) else { continue }; // the crate root assembles everything
        for path in crate_refs(s) {
            let Some(target) = unit_of(&path) else { continue };
            if target == unit || !table.contains_key(target.as_str()) && !LAYERS.iter().any(|(u, _)| *u == unit) {
                continue;
            }
            match table.get(unit.as_str()) {
                None => {
                    wrong.insert(format!("`{unit}` ({}) is not in the LAYERS table", s.name()));
                }
                Some(allowed) if table.contains_key(target.as_str()) && !allowed.contains(&target.as_str()) => {
                    wrong.insert(format!("`{unit}` imports `{target}` ({})", s.name()));
                }
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layer rules:\n{}", wrong.into_iter().collect::<Vec<_>>().join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    for krate in crates() {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for s in sources().iter().filter(|s| s.krate == krate) {
            for path in crate_refs(s) {
                if let Some(target) = file_of(&krate, &path) {
                    // A module root's reference to its own items, or to the crate root, is no edge.
                    if !std::ptr::eq(target, s) && !target.file.ends_with("lib.rs") && !target.file.ends_with("main.rs")
                    {
                        edges.entry(s.name()).or_default().insert(target.name());
                    }
                }
            }
        }
        if let Some(circle) = find_circle(&edges) {
            panic!("files of {krate} import each other in a circle: {}", circle.join(" -> "));
        }
    }
}

fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn surfaces_use_the_application_layer_not_the_dal() {
    let mut wrong = Vec::new();
    for s in sources().iter().filter(|s| SURFACES.contains(&s.krate.as_str())) {
        for path in paths_after(&s.code, "cloacina::") {
            let joined = path.join("::");
            if let Some(denied) =
                SURFACES_MAY_NOT_USE.iter().find(|d| joined == **d || joined.starts_with(&format!("{d}::")))
            {
                wrong.push(format!("{}: uses cloacina::{joined} (not allowed: {denied})", s.name()));
            }
        }
    }
    assert!(wrong.is_empty(), "surfaces reaching below the application layer:\n{}", wrong.join("\n"));
}

#[test]
fn only_the_database_layer_knows_the_backends() {
    let mut wrong = Vec::new();
    for s in sources() {
        let name = s.name();
        let in_backend =
            name.starts_with("cloacina/src/database/backend/") || name == "cloacina/src/database/connection.rs";
        let in_database = name.starts_with("cloacina/src/database/");
        let squeezed: String = s.code.chars().filter(|c| !c.is_whitespace()).collect();
        for variant in ["AnyConnection::Postgres", "AnyConnection::Sqlite"] {
            if squeezed.contains(variant) && !in_backend {
                wrong.push(format!("{name}: matches `{variant}`"));
            }
        }
        // The code is blanked of strings, so look for the attribute's shape in the raw text.
        let raw: String = s.text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        for feature in ["feature = \"postgres\"", "feature = \"sqlite\""] {
            if raw.contains(feature) && !in_database {
                wrong.push(format!("{name}: tests `{feature}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "backend knowledge outside the database layer:\n{}", wrong.join("\n"));
}

#[test]
fn time_is_read_only_from_the_clock() {
    let mut wrong = Vec::new();
    for s in sources() {
        let name = s.name();
        if name == "cloacina/src/clock.rs" || CLOCK_READERS.iter().any(|(f, _)| *f == name) {
            continue;
        }
        let squeezed: String = s.code.chars().filter(|c| !c.is_whitespace()).collect();
        for call in CLOCK_CALLS {
            if squeezed.contains(call) {
                wrong.push(format!("{name}: calls `{call}`"));
            }
        }
    }
    assert!(wrong.is_empty(), "wall-clock reads outside the clock (read the injected Clock):\n{}", wrong.join("\n"));
}

#[test]
fn unsafe_code_stays_at_the_package_boundary() {
    let mut wrong = Vec::new();
    for s in sources() {
        let name = s.name();
        let uses_unsafe = s.code.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == "unsafe")
            || s.code.contains("allow(unsafe_code)");
        match (uses_unsafe, UNSAFE_BOUNDARY.contains(&name.as_str())) {
            (true, false) => wrong.push(format!("{name} holds `unsafe` code")),
            (false, true) => wrong.push(format!("{name} is listed as a boundary file but holds no `unsafe` code")),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "`unsafe` must stay in the package ABI's boundary files:\n{}", wrong.join("\n"));
}

#[test]
fn every_file_starts_with_a_module_header() {
    let missing: Vec<String> = sources()
        .iter()
        .filter(|s| !s.text.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("//!")))
        .map(Source::name)
        .collect();
    assert!(missing.is_empty(), "files without a `//!` header: {missing:?}");
}

#[test]
fn the_path_reader_sees_every_form_and_skips_comments_and_strings() {
    let code = code_of(
        "use crate::{dal::x, engine::{A, b::{C, D}}, self as me};\n// crate::runner in a comment\n\
         let _ = crate::Context::new(); let s = \"crate::ops in a string\"; /* crate::services */",
    );
    let paths: Vec<String> = paths_after(&code, "crate::").iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, vec!["dal::x", "engine::A", "engine::b::C", "engine::b::D", "self", "Context::new"]);
    assert_eq!(unit_of(&["Context".to_owned()]).as_deref(), Some("context"));
    assert_eq!(unit_of(&["cron".to_owned(), "expression".to_owned()]).as_deref(), Some("cron::expression"));
    // A known circle is found.
    let edges: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(x, y)| (x.to_owned(), BTreeSet::from([y.to_owned()])))
        .collect();
    assert_eq!(find_circle(&edges), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

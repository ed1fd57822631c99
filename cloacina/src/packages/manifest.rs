//! `package.toml`, the manifest of a `.cloacina` package, in upstream Cloacina's schema:
//! `[package]` names the package and the interface it was written for, `[metadata]` describes
//! the workflow. `[metadata]` is a closed schema: a key it does not define is refused, naming it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Error;
use cloacina_workflow::plugin::{ABI_VERSION, INTERFACE};

/// The manifest's file name, at the top of a package.
pub const FILE: &str = "package.toml";
/// The extension a package archive has (`[package] extension`).
pub const EXTENSION: &str = "cloacina";

/// A parsed, checked `package.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Identity.
    pub package: PackageInfo,
    /// The workflow descriptor.
    pub metadata: Metadata,
}

/// `[package]`: the package's identity and interface. `interface`, `interface_version` and
/// `extension` may be left out (upstream's minimal manifests do): they default to this host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    /// The package name.
    pub name: String,
    /// Its version; one version string names one content (a reuse with other content is refused).
    pub version: String,
    /// The plugin interface, `cloacina-workflow-plugin`.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The interface version, 1.
    #[serde(default = "default_interface_version")]
    pub interface_version: u32,
    /// The archive extension, `cloacina`.
    #[serde(default = "default_extension")]
    pub extension: String,
}

fn default_interface() -> String {
    INTERFACE.to_owned()
}

fn default_interface_version() -> u32 {
    ABI_VERSION
}

fn default_extension() -> String {
    EXTENSION.to_owned()
}

/// The language a package is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// A Rust crate, compiled where it is loaded.
    Rust,
    /// A Python module tree under `workflow/`.
    Python,
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Python => "python",
        })
    }
}

/// `[metadata]`: what the package holds (upstream's `CloacinaMetadata`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// `rust` or `python`; left out, it is inferred from the layout when the manifest is read
    /// from a directory (a `workflow/` tree is Python, a `Cargo.toml` Rust).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// The workflow's name (a Rust package may leave it to `#[workflow(name = …)]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// Python: the dotted module under `workflow/` the loader imports (inferred when the tree
    /// holds exactly one package).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_module: Option<String>,
    /// Python: the interpreter versions the package runs on (PEP 440, e.g. `>=3.10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Upstream's computation-graph keys: known, and refused (computation graphs are not
    /// supported here).
    #[serde(default, skip_serializing)]
    graph_name: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    reaction_mode: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    input_strategy: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    accumulators: Option<toml::Value>,
}

impl Metadata {
    /// A descriptor of `language` with nothing else set.
    pub fn new(language: Language) -> Self {
        Metadata {
            language: Some(language),
            workflow_name: None,
            entry_module: None,
            requires_python: None,
            description: None,
            author: None,
            graph_name: None,
            reaction_mode: None,
            input_strategy: None,
            accumulators: None,
        }
    }
}

impl Manifest {
    /// A manifest for package `name` `version` in `language`, on this interface.
    pub fn new(name: &str, version: &str, language: Language) -> Self {
        Manifest {
            package: PackageInfo {
                name: name.to_owned(),
                version: version.to_owned(),
                interface: INTERFACE.to_owned(),
                interface_version: ABI_VERSION,
                extension: EXTENSION.to_owned(),
            },
            metadata: Metadata::new(language),
        }
    }

    /// Parses and checks `text` (the contents of `package.toml`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| Error::Manifest(one_line(&e.to_string())))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Reads and checks `dir/package.toml`; a language it leaves out is inferred from `dir`'s
    /// layout.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Layout(format!("no {FILE} in {}", dir.display())),
            _ => Error::Io(format!("{}: {e}", path.display())),
        })?;
        let mut manifest = Self::parse(&text)?;
        if manifest.metadata.language.is_none() {
            manifest.metadata.language = Some(if dir.join("workflow").is_dir() {
                Language::Python
            } else if dir.join("Cargo.toml").is_file() {
                Language::Rust
            } else {
                return Err(Error::Layout(format!(
                    "{FILE} names no [metadata] language, and the package has neither a workflow/ directory (Python) nor a Cargo.toml (Rust)"
                )));
            });
        }
        Ok(manifest)
    }

    /// The package's language (Rust when neither said nor inferred).
    pub fn language(&self) -> Language {
        self.metadata.language.unwrap_or(Language::Rust)
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The name of the directory an archive of this package holds: `<name>-<version>`.
    pub fn top_dir(&self) -> String {
        format!("{}-{}", self.package.name, self.package.version)
    }

    /// The archive's conventional file name: `<name>-<version>.cloacina`.
    pub fn file_name(&self) -> String {
        format!("{}.{EXTENSION}", self.top_dir())
    }

    fn check(&self) -> Result<(), Error> {
        let p = &self.package;
        let bad = |what: String| Err(Error::Manifest(what));
        for (field, value) in [("name", &p.name), ("version", &p.version)] {
            if value.is_empty() || value.contains(['/', '\\', '\0']) || value.starts_with('.') || value.trim() != value
            {
                return bad(format!("[package] {field} {value:?} is not usable as a file name"));
            }
        }
        if p.interface != INTERFACE {
            return bad(format!("[package] interface is {:?}; this host loads {INTERFACE:?}", p.interface));
        }
        if p.interface_version != ABI_VERSION {
            return Err(Error::InterfaceVersion { package: p.interface_version, host: ABI_VERSION });
        }
        if p.extension != EXTENSION {
            return bad(format!("[package] extension is {:?}; a package's is {EXTENSION:?}", p.extension));
        }
        let m = &self.metadata;
        if m.graph_name.is_some() || m.reaction_mode.is_some() || m.input_strategy.is_some() || m.accumulators.is_some()
        {
            return Err(Error::Unsupported(
                "computation-graph packages ([metadata] graph_name, reaction_mode, input_strategy, accumulators) are not supported: package a workflow".to_owned(),
            ));
        }
        if let Some(name) = &m.workflow_name {
            cloacina_workflow::workflow::check_name("workflow", name)
                .map_err(|e| Error::Manifest(format!("[metadata] {e}")))?;
        }
        if m.language == Some(Language::Rust) && (m.entry_module.is_some() || m.requires_python.is_some()) {
            return bad("[metadata] entry_module and requires_python are for Python packages".to_owned());
        }
        if let Some(module) = &m.entry_module {
            if module.split('.').any(|part| !is_identifier(part)) {
                return bad(format!("[metadata] entry_module {module:?} is not a dotted Python module path"));
            }
        }
        Ok(())
    }
}

/// Whether Python `version` (`3.11.7`) satisfies the PEP 440 specifier `spec` (`>=3.10`,
/// `>=3.9,<3.13`, `~=3.10`, `==3.11.*`, `!=3.12.0`). An unreadable specifier is an error.
pub fn python_satisfies(spec: &str, version: &str) -> Result<bool, Error> {
    let parse = |v: &str| -> Option<Vec<u64>> { v.trim().split('.').map(|p| p.parse().ok()).collect() };
    let have = parse(version).ok_or_else(|| Error::Load(format!("Python reported the version {version:?}")))?;
    let bad =
        || Error::Manifest(format!("[metadata] requires_python {spec:?} is not a version specifier like \">=3.10\""));
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    let cmp = |a: &[u64], b: &[u64]| {
        (0..a.len().max(b.len()))
            .map(|i| at(a, i).cmp(&at(b, i)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    for clause in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let op_len = clause.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
        let (op, rest) = clause.split_at(op_len);
        let (rest, wildcard) = match rest.strip_suffix(".*") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let want = parse(rest).ok_or_else(bad)?;
        let prefix_eq = have.iter().take(want.len()).copied().collect::<Vec<_>>() == want;
        let order = cmp(&have, &want);
        let ok = match op.trim() {
            ">=" => order.is_ge(),
            ">" => order.is_gt(),
            "<=" => order.is_le(),
            "<" => order.is_lt(),
            "==" if wildcard => prefix_eq,
            "==" => order.is_eq(),
            "!=" if wildcard => !prefix_eq,
            "!=" => order.is_ne(),
            "~=" if want.len() >= 2 => {
                order.is_ge() && have.iter().take(want.len() - 1).eq(want.iter().take(want.len() - 1))
            }
            _ => return Err(bad()),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A Python identifier (ASCII: letters, digits, `_`, not starting with a digit).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The first line of a parser's message, which is the one that names the problem; the rest is
/// a picture of the input.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[package]
name = "etl"
version = "1.0.0"
interface = "cloacina-workflow-plugin"
interface_version = 1
extension = "cloacina"

[metadata]
language = "python"
workflow_name = "etl"
entry_module = "etl.tasks"
requires_python = ">=3.10"
"#;

    #[test]
    fn reads_upstreams_schema_and_writes_it_back() {
        let m = Manifest::parse(GOOD).expect("parses");
        assert_eq!(m.language(), Language::Python);
        assert_eq!(m.file_name(), "etl-1.0.0.cloacina");
        assert_eq!(Manifest::parse(&m.to_toml()).expect("round trip"), m);
    }

    #[test]
    fn python_version_specifiers() {
        for (spec, version, ok) in [
            (">=3.10", "3.11.7", true),
            (">=3.12", "3.11.7", false),
            (">=3.9,<3.13", "3.12.0", true),
            (">=3.9,<3.12", "3.12.0", false),
            ("~=3.10", "3.11.1", true),
            ("~=3.10.2", "3.11.0", false),
            ("==3.11.*", "3.11.7", true),
            ("!=3.11.*", "3.11.7", false),
            ("==3.11", "3.11.0", true),
        ] {
            assert_eq!(python_satisfies(spec, version).expect(spec), ok, "{spec} for {version}");
        }
        assert!(python_satisfies("at least three", "3.11.0").is_err());
        assert!(python_satisfies("=>3.10", "3.11.0").is_err());
    }

    #[test]
    fn a_minimal_manifest_takes_the_defaults() {
        let m = Manifest::parse("[package]\nname = \"data-pipeline\"\nversion = \"0.1.0\"\n\n[metadata]\nworkflow_name = \"data_pipeline\"\n")
            .expect("parses");
        assert_eq!((m.package.interface.as_str(), m.package.interface_version), (INTERFACE, ABI_VERSION));
        assert_eq!(m.metadata.language, None, "inferred from the layout when read from a directory");
    }

    #[test]
    fn an_unknown_metadata_key_is_refused_by_name() {
        let text = GOOD.replace("requires_python", "package_type = \"workflow\"\nrequires_python");
        let e = Manifest::parse(&text).expect_err("refused").to_string();
        assert!(e.contains("package_type"), "{e}");
    }

    #[test]
    fn another_interface_version_says_both_versions() {
        let e = Manifest::parse(&GOOD.replace("interface_version = 1", "interface_version = 2")).expect_err("refused");
        assert!(matches!(e, Error::InterfaceVersion { package: 2, host: 1 }), "{e}");
        assert!(e.to_string().contains('2') && e.to_string().contains('1'));
    }

    #[test]
    fn computation_graphs_and_unsafe_names_are_refused() {
        let graph = GOOD.replace("workflow_name = \"etl\"", "graph_name = \"g\"");
        assert!(matches!(Manifest::parse(&graph), Err(Error::Unsupported(_))));
        assert!(Manifest::parse(&GOOD.replace("\"etl\"\nversion", "\"../etl\"\nversion")).is_err());
        assert!(Manifest::parse(&GOOD.replace("etl.tasks", "etl/tasks")).is_err());
    }
}

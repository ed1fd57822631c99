//! `cloacinactl package new`: a package that packs, loads and runs as it is.

use std::path::Path;

use super::manifest::{Language, Manifest, FILE};
use super::Error;

/// The version requirement new packages put on this repository's crates.
const CRATES: &str = concat!(env!("CARGO_PKG_VERSION_MAJOR"), ".", env!("CARGO_PKG_VERSION_MINOR"));

/// Creates package `name` in `language` in `dir`, which must not exist or be empty.
pub fn create(dir: &Path, name: &str, language: Language) -> Result<(), Error> {
    cloacina_workflow::workflow::check_name("package", name).map_err(|e| Error::Manifest(e.to_string()))?;
    let module = name.replace('-', "_");
    if !super::manifest::is_identifier(&module) {
        return Err(Error::Manifest(format!(
            "package name {name:?} must be letters, digits, `_` and `-`, starting with a letter"
        )));
    }
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Layout(format!("{} exists and is not empty", dir.display())));
    }
    let mut manifest = Manifest::new(name, "0.1.0", language);
    manifest.metadata.workflow_name = Some(module.clone());
    manifest.metadata.description = Some(format!("The {name} workflow"));
    let files: Vec<(String, String)> = match language {
        Language::Rust => vec![
            ("Cargo.toml".into(), cargo_toml(name)),
            ("build.rs".into(), "fn main() {\n    cloacina_build::configure();\n}\n".into()),
            ("src/lib.rs".into(), rust_lib(&module)),
        ],
        Language::Python => {
            manifest.metadata.entry_module = Some(format!("{module}.tasks"));
            manifest.metadata.requires_python = Some(">=3.9".into());
            vec![
                (format!("workflow/{module}/__init__.py"), String::new()),
                (format!("workflow/{module}/tasks.py"), python_tasks(&module)),
            ]
        }
    };
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    };
    write(FILE, &manifest.to_toml())?;
    for (rel, text) in &files {
        write(rel, text)?;
    }
    Ok(())
}

fn cargo_toml(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

# A package builds on its own, not as part of an enclosing workspace.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[features]
default = ["packaged"]
packaged = []

[dependencies]
cloacina-workflow = {{ version = "{CRATES}", features = ["packaged"] }}
cloacina-workflow-plugin = "{CRATES}"
serde_json = "1"
tokio = {{ version = "1", features = ["time"] }}

[build-dependencies]
cloacina-build = "{CRATES}"
"#
    )
}

fn rust_lib(module: &str) -> String {
    format!(
        r#"//! The `{module}` workflow package.

use cloacina_workflow::{{task, workflow, Context, TaskError}};

cloacina_workflow_plugin::package!();

/// Extract, then load.
#[workflow(name = "{module}", description = "Extract, then load")]
pub mod {module} {{
    use super::*;

    /// Reads the input: `day` from the run's context.
    #[task(retry_attempts = 2)]
    pub async fn extract(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {{
        let day = context.get("day").cloned().unwrap_or(serde_json::Value::Null);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        context.insert("rows", serde_json::json!({{ "day": day, "count": 3 }}))?;
        Ok(())
    }}

    /// Writes the result.
    #[task(dependencies = ["extract"])]
    pub async fn load(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {{
        let count = context.get("rows").and_then(|r| r.get("count")).cloned().unwrap_or_default();
        context.insert("loaded", count)?;
        Ok(())
    }}
}}
"#
    )
}

fn python_tasks(module: &str) -> String {
    format!(
        r#""""The `{module}` workflow package."""

import cloaca


@cloaca.task(id="extract")
def extract(context):
    context.set("rows", {{"day": context.get("day"), "count": 3}})
    return context


@cloaca.task(id="load", dependencies=["extract"])
def load(context):
    context.set("loaded", context.get("rows")["count"])
    return context
"#
    )
}

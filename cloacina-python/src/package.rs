//! A Python package's worker: what `cloacinactl daemon` runs in a Python process of its own for
//! each loaded Python package (ADR 0012). Hidden from the public API (`cloaca._serve_package`).
//!
//! The worker puts the package's `workflow/` and `vendor/` first on `sys.path` (refusing a module
//! that would shadow the standard library), imports the entry module with bare `@cloaca.task`
//! decorators defining tasks of the manifest's workflow, and runs a runner with the package's
//! workflows (versioned by the archive's hash) and triggers. It tells the daemon on standard
//! output and reads its commands on standard input (the protocol is in `cloacina::packages::
//! python`): `{"described": …}` after the import, `start`, `{"ready": true}`, then `withdraw`
//! (no new runs; exit once its runs have ended) or the end of input (stop gracefully).

use std::io::BufRead;
use std::path::PathBuf;

use cloacina::runner::DefaultRunnerConfig;
use pyo3::exceptions::{PyImportError, PyValueError};
use pyo3::prelude::*;
use serde::Deserialize;

use crate::{engine_error, wait};

/// What the daemon asks of the worker.
#[derive(Deserialize)]
struct Spec {
    package_dir: PathBuf,
    workflow_name: String,
    entry_module: String,
    source: String,
    database_url: String,
    schema: Option<String>,
    runner_name: Option<String>,
}

/// Modules of the package that the standard library also has: importing the package would
/// replace them for every module in the process.
fn shadowing(py: Python<'_>, dirs: &[PathBuf]) -> PyResult<Vec<String>> {
    // `sys.stdlib_module_names` (Python 3.10 and later; on 3.9 nothing is refused).
    let mut stdlib: Vec<String> = Vec::new();
    if let Ok(names) = py.import("sys")?.getattr("stdlib_module_names") {
        for name in names.try_iter()? {
            stdlib.push(name?.extract()?);
        }
    }
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let module = name.strip_suffix(".py").unwrap_or(&name).to_owned();
            if stdlib.contains(&module) {
                found.push(format!("{}/{name}", dir.file_name().map(|d| d.to_string_lossy()).unwrap_or_default()));
            }
        }
    }
    Ok(found)
}

/// The daemon's next command on standard input; `None` when its input ended.
fn next_command() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_owned()),
    }
}

#[pyfunction]
fn _serve_package(py: Python<'_>, spec: &str) -> PyResult<()> {
    let spec: Spec = serde_json::from_str(spec).map_err(|e| PyValueError::new_err(format!("bad worker spec: {e}")))?;
    let dirs = [spec.package_dir.join("workflow"), spec.package_dir.join("vendor")];
    let shadows = shadowing(py, &dirs)?;
    if !shadows.is_empty() {
        return Err(PyImportError::new_err(format!(
            "the package's {} would shadow the standard library module of that name: rename it",
            shadows.join(", ")
        )));
    }
    let path = py.import("sys")?.getattr("path")?;
    for dir in dirs.iter().rev() {
        path.call_method1("insert", (0, dir.to_string_lossy().into_owned()))?;
    }
    let builder = crate::workflow::begin_package(&spec.workflow_name, &spec.source)?;
    let imported = py.import(spec.entry_module.as_str());
    crate::workflow::finish_package(builder.bind(py))?;
    imported?;
    let workflows = crate::workflow::registered();
    if workflows.is_empty() {
        return Err(PyValueError::new_err(format!(
            "importing {} defined no task: decorate the tasks with @cloaca.task",
            spec.entry_module
        )));
    }
    // Checked now, before the daemon is told the package is good.
    crate::trigger::registered(Some(&spec.workflow_name))?;
    let described: Vec<serde_json::Value> = workflows
        .iter()
        .map(|w| serde_json::json!({ "name": w.name(), "version": w.version(), "tasks": w.spec().tasks().len() }))
        .collect();
    let names: Vec<String> = workflows.iter().map(|w| w.name().to_owned()).collect();
    println!("{}", serde_json::json!({ "described": described }));
    if !py.detach(|| next_command().as_deref() == Some("start")) {
        return Ok(());
    }
    let config = DefaultRunnerConfig {
        schema: spec.schema.clone(),
        runner_name: spec.runner_name.clone(),
        ..Default::default()
    };
    let runner = crate::runner::launch(py, &spec.database_url, config, Some(&spec.workflow_name))?;
    println!("{}", serde_json::json!({ "ready": true }));
    let withdraw = py.detach(|| loop {
        match next_command().as_deref() {
            None => return false,
            Some("withdraw") => return true,
            Some(_) => {}
        }
    });
    let stopped = wait(py, async move {
        if withdraw {
            runner.withdraw_workflows(&names).await?;
            runner.finish_unfinished_runs(std::time::Duration::from_millis(200), &[]).await?;
        }
        runner.shutdown().await
    })?;
    stopped.map_err(engine_error)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_serve_package, m)?)?;
    Ok(())
}

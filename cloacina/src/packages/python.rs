//! Python packages, hosted by the daemon in Python worker processes (ADR 0012): one process per
//! loaded package, running `cloaca`'s engine on the same database, with the package's own
//! `workflow/` and `vendor/` first on its `sys.path`. Two packages never share an interpreter, so
//! they may vendor different versions of one dependency.
//!
//! The worker speaks one JSON line at a time on its standard output and reads commands on its
//! standard input:
//! 1. it imports the package and says `{"described": …}` (its workflows) or `{"error": …}`;
//! 2. the daemon, having admitted the package, says `start` (or `stop`);
//! 3. it starts its runner and says `{"ready": true}`;
//! 4. later the daemon says `withdraw` (the package was replaced or removed: no new runs, exit
//!    once the runs in flight end); the end of its input (the daemon stopped, or died) stops it
//!    gracefully.
//!
//! Whatever else the worker prints (a task's `print`) is passed on to the daemon's log.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

use super::manifest::python_satisfies;
use super::{Error, Unpacked};

/// How long a worker may take to import its package or start its runner.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// What starts Python workers: the interpreter (which must have `cloaca` installed) and the
/// database its runners use.
#[derive(Clone)]
pub struct PythonHost {
    /// The interpreter: `CLOACINA_PYTHON`, default `python3`.
    pub python: PathBuf,
    /// The database URL the workers' runners use (the daemon's).
    pub database_url: String,
    /// The PostgreSQL schema, if any.
    pub schema: Option<String>,
    /// Where unpacked Python packages stay while their workers run.
    pub packages_dir: PathBuf,
    version: Arc<OnceLock<Result<String, String>>>,
}

impl std::fmt::Debug for PythonHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonHost")
            .field("python", &self.python)
            .field("database_url", &crate::logging::mask_db_url(&self.database_url))
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The environment variable the worker's spec travels in: the database URL may hold a password,
/// and a process's arguments are visible to every user of the host (its environment is not).
const SPEC_VARIABLE: &str = "CLOACINA_WORKER_SPEC";

/// The worker's bootstrap: runs the worker and reports a failure as the protocol's error line.
const BOOTSTRAP: &str = r#"
import json, os, sys
try:
    import cloaca
except ImportError as e:
    print(json.dumps({"error": f"this Python ({sys.executable}) cannot import cloaca: {e}; install it, or point CLOACINA_PYTHON at one that has it"}), flush=True)
    sys.exit(3)
try:
    cloaca._serve_package(os.environ.pop("CLOACINA_WORKER_SPEC"))
except BaseException as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
    sys.exit(3)
"#;

impl PythonHost {
    /// A host for `database_url` (and `schema`) keeping packages under `packages_dir`, with the
    /// interpreter `CLOACINA_PYTHON` names (default `python3`).
    pub fn from_env(database_url: &str, schema: Option<String>, packages_dir: PathBuf) -> Self {
        let python = std::env::var_os("CLOACINA_PYTHON")
            .filter(|p| !p.is_empty())
            .map_or_else(|| "python3".into(), PathBuf::from);
        PythonHost { python, database_url: database_url.to_owned(), schema, packages_dir, version: Arc::default() }
    }

    /// The interpreter's version (`3.11.7`), asked once.
    fn version(&self) -> Result<String, Error> {
        let asked = self.version.get_or_init(|| {
            let out = Command::new(&self.python)
                .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
                .output()
                .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
            if !out.status.success() {
                return Err(format!("{} did not say its version", self.python.display()));
            }
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        });
        asked.clone().map_err(Error::Load)
    }

    /// Starts a worker for `unpacked` (a Python package), which imports the package and
    /// describes it; nothing runs until [`Worker::start`]. Blocking.
    pub fn describe(&self, unpacked: &Unpacked, runner_name: &str) -> Result<Worker, Error> {
        let manifest = &unpacked.manifest;
        if let Some(spec) = &manifest.metadata.requires_python {
            let version = self.version()?;
            if !python_satisfies(spec, &version)? {
                return Err(Error::Unsupported(format!(
                    "the package requires Python {spec}; this daemon's Python ({}) is {version}",
                    self.python.display()
                )));
            }
        }
        let kept = self.packages_dir.join(&unpacked.sha256);
        unpacked.keep(&kept)?;
        let spec = serde_json::json!({
            "package_dir": kept,
            "workflow_name": manifest.metadata.workflow_name.clone().unwrap_or_else(|| manifest.package.name.replace('-', "_")),
            "entry_module": manifest.metadata.entry_module,
            "source": unpacked.sha256,
            "database_url": self.database_url,
            "schema": self.schema,
            "runner_name": runner_name,
        });
        let mut worker = Worker::spawn(&self.python, spec.to_string(), &manifest.package.name)?;
        match worker.answer()? {
            Answer::Described(workflows) => {
                worker.workflows = workflows;
                Ok(worker)
            }
            Answer::Ready => Err(worker.fail("the worker started before it was asked".to_owned())),
        }
    }
}

enum Answer {
    Described(Vec<(String, String)>),
    Ready,
}

/// A Python worker process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Its workflows: name and version.
    pub workflows: Vec<(String, String)>,
}

impl Worker {
    fn spawn(python: &PathBuf, spec: String, package: &str) -> Result<Self, Error> {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(BOOTSTRAP)
            .env(SPEC_VARIABLE, spec)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Load(format!("cannot start {}: {e}", python.display())))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, lines) = mpsc::channel();
        let package = package.to_owned();
        std::thread::Builder::new()
            .name("cloacina-python-worker".to_owned())
            .spawn(move || {
                let Some(stdout) = stdout else { return };
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let protocol = line.starts_with('{')
                        && (line.contains("\"ready\"") || line.contains("\"described\"") || line.contains("\"error\""));
                    if protocol {
                        let _ = tx.send(line);
                    } else {
                        tracing::info!(package = %package, "{line}");
                    }
                }
            })
            .map_err(|e| Error::Load(format!("cannot read the Python worker: {e}")))?;
        Ok(Worker { child, stdin, lines, workflows: Vec::new() })
    }

    fn answer(&mut self) -> Result<Answer, Error> {
        let line = match self.lines.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let status = self.child.try_wait().ok().flatten();
                return Err(self.fail(match status {
                    Some(s) => format!("the Python worker exited ({s}) without saying why"),
                    None => format!("the Python worker did not answer within {ANSWER_TIMEOUT:?}"),
                }));
            }
        };
        let doc: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(error) = doc.get("error").and_then(Value::as_str) {
            return Err(self.fail(error.to_owned()));
        }
        if let Some(described) = doc.get("described") {
            let workflows = described
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|w| {
                            Some((w.get("name")?.as_str()?.to_owned(), w.get("version")?.as_str()?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Answer::Described(workflows));
        }
        if doc.get("ready").is_some() {
            return Ok(Answer::Ready);
        }
        Err(self.fail(format!("the Python worker said something this daemon does not understand: {line}")))
    }

    /// Ends the process and returns `why` as a load error.
    fn fail(&mut self, why: String) -> Error {
        self.kill();
        Error::Load(why)
    }

    fn say(&mut self, command: &str) -> bool {
        self.stdin.as_mut().is_some_and(|s| writeln!(s, "{command}").and_then(|()| s.flush()).is_ok())
    }

    /// Starts the worker's runner (the package was admitted). Blocking.
    pub fn start(&mut self) -> Result<(), Error> {
        if !self.say("start") {
            return Err(self.fail("the Python worker went away before it started".to_owned()));
        }
        match self.answer()? {
            Answer::Ready => Ok(()),
            Answer::Described(_) => Err(self.fail("the Python worker described itself twice".to_owned())),
        }
    }

    /// Stops new runs of its workflows; it exits once the runs in flight have ended.
    pub fn withdraw(&mut self) {
        self.say("withdraw");
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops it gracefully (its input ends) and waits up to `grace` before killing it.
    pub fn stop(mut self, grace: Duration) {
        self.stdin = None;
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    fn kill(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

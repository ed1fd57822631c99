//! Runner processes for tests and soaks: [`Worker`] (one `cloacina-test-worker`) and the crash
//! loop ([`crash_loop`]): two workers on one database, one of them killed with SIGKILL at random
//! moments and started again, then a count of what that did to the runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cloacina::dal::{pipeline_executions as pipelines, recovery_events, task_execution_metadata, task_executions};
use cloacina::database::{Database, DatabaseConfig};
use cloacina::models::{PipelineExecutionId, PipelineStatus, TaskStatus};

use super::workflows::read_logs;

/// A `cloacina-test-worker` process (a runner in a process of its own), killed when dropped.
pub(crate) struct Worker {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The worker's standard error, kept in a file for failure messages.
    stderr: PathBuf,
    /// What `READY` said: the worker's runner name.
    pub(crate) name: String,
}

impl Worker {
    /// Starts a worker on `url` (and `schema`) with `env` (names without the `CLOACINA_WORKER_`
    /// prefix), keeping its standard error in `scratch`, and waits until its runner is up.
    pub(crate) fn start(url: &str, schema: Option<&str>, scratch: &Path, env: &[(&str, String)]) -> Worker {
        let stderr = scratch.join(format!("worker-{}.stderr", uuid::Uuid::new_v4().simple()));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cloacina-test-worker"));
        cmd.env("CLOACINA_WORKER_URL", url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if let Some(schema) = schema {
            cmd.env("CLOACINA_WORKER_SCHEMA", schema);
        }
        for (k, v) in env {
            cmd.env(format!("CLOACINA_WORKER_{k}"), v);
        }
        let mut child = cmd.spawn().expect("spawn cloacina-test-worker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut worker = Worker { child, stdin, lines, stderr, name: String::new() };
        worker.name = worker.expect("READY");
        worker
    }

    /// The rest of the next line that starts with `prefix ` (within 60 s).
    pub(crate) fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let needle = format!("{prefix} ");
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(&needle) {
                        return rest.trim().to_owned();
                    }
                }
                Err(e) => panic!("worker did not print `{prefix}` ({e}); its stderr:\n{}", self.stderr_tail()),
            }
        }
    }

    /// Kills the worker with SIGKILL: no chance to clean up.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the worker to shut down gracefully and waits for it.
    pub(crate) fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the worker");
        assert!(status.success(), "worker exited with {status}; its stderr:\n{}", self.stderr_tail());
    }

    /// Everything the worker wrote on standard error so far.
    pub(crate) fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stderr_tail(&self) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn connect(url: &str, schema: Option<&str>) -> Database {
    Database::connect_with(url, DatabaseConfig { schema: schema.map(str::to_owned), ..Default::default() })
        .expect("connect")
}

/// Waits (polling every 50 ms, up to `timeout`) until every pipeline of `ids` is terminal; returns
/// those that are not.
fn unfinished_after(db: &Database, ids: &[PipelineExecutionId], timeout: Duration) -> Vec<PipelineExecutionId> {
    let deadline = Instant::now() + timeout;
    let mut open: HashSet<PipelineExecutionId> = ids.iter().copied().collect();
    loop {
        let mut conn = db.get().expect("conn");
        open.retain(|id| !pipelines::get(&mut conn, *id).ok().flatten().is_some_and(|p| p.status.is_terminal()));
        if open.is_empty() || Instant::now() >= deadline {
            return open.into_iter().collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How to run a crash loop.
pub(crate) struct CrashLoop<'a> {
    pub(crate) url: &'a str,
    pub(crate) schema: Option<&'a str>,
    /// Where logs and worker output go.
    pub(crate) scratch: &'a Path,
    /// Kills (each followed by a restart).
    pub(crate) iterations: usize,
    pub(crate) seed: u64,
}

/// What a crash loop did, and what it did to the runs.
#[derive(Debug, Default)]
pub(crate) struct CrashLoopReport {
    pub(crate) iterations: usize,
    pub(crate) seed: u64,
    pub(crate) pipelines: usize,
    pub(crate) tasks: usize,
    /// Pipelines not terminal within the deadline after the last kill.
    pub(crate) stuck: Vec<PipelineExecutionId>,
    pub(crate) failed: usize,
    /// Task executions started (lines `start` in the execution logs).
    pub(crate) executions: usize,
    /// Executions beyond the first of their task.
    pub(crate) re_executions: usize,
    /// Recovery events (expired leases, released attempts).
    pub(crate) recovery_events: usize,
    /// Re-executions of a task beyond the recovery events recorded for it.
    pub(crate) unmatched_re_executions: usize,
    /// Attempt numbers that started in more than one execution.
    pub(crate) attempts_run_twice: usize,
    /// Tasks of ended pipelines that are not Completed exactly once (status and one output).
    pub(crate) not_completed_once: usize,
    pub(crate) elapsed: Duration,
}

impl CrashLoopReport {
    /// True when no run was stuck, failed, lost or doubled.
    pub(crate) fn is_clean(&self) -> bool {
        self.stuck.is_empty()
            && self.failed == 0
            && self.unmatched_re_executions == 0
            && self.attempts_run_twice == 0
            && self.not_completed_once == 0
    }
}

impl std::fmt::Display for CrashLoopReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} kills (seed {}), {} pipelines, {} tasks, {:.1} s: stuck {}, failed {}, not completed once {}, \
             attempts run twice {}; executions {} ({} re-executions, {} recovery events, {} re-executions unmatched)",
            self.iterations,
            self.seed,
            self.pipelines,
            self.tasks,
            self.elapsed.as_secs_f64(),
            self.stuck.len(),
            self.failed,
            self.not_completed_once,
            self.attempts_run_twice,
            self.executions,
            self.re_executions,
            self.recovery_events,
            self.unmatched_re_executions,
        )
    }
}

/// Pipelines each worker start adds (six tasks of up to 250 ms each, four levels deep), so the
/// kills keep finding work in flight.
const PIPELINES_PER_START: usize = 3;

/// Runs two workers of `crash_loop` pipelines on one database and kills one of them, chosen at
/// random, at a random moment (100 to 600 ms after it came up), `iterations` times, starting it
/// again each time; every start adds [`PIPELINES_PER_START`] pipelines. Then waits for every
/// pipeline to end (at most two minutes) and counts what the kills did.
pub(crate) fn crash_loop(run: &CrashLoop<'_>) -> CrashLoopReport {
    let began = Instant::now();
    let mut rng = fastrand::Rng::with_seed(run.seed);
    let mut logs: Vec<PathBuf> = Vec::new();
    let mut ids: Vec<PipelineExecutionId> = Vec::new();
    let start = |logs: &mut Vec<PathBuf>, ids: &mut Vec<PipelineExecutionId>| {
        let log = run.scratch.join(format!("crash-loop-{}.log", uuid::Uuid::new_v4().simple()));
        let env = [
            ("LOG", log.display().to_string()),
            ("START", format!("crash_loop:{PIPELINES_PER_START}")),
            ("TASK_MS", "250".to_owned()),
            ("LEASE_MS", "1000".to_owned()),
            ("HEARTBEAT_MS", "150".to_owned()),
            ("RECOVERY_MS", "200".to_owned()),
            ("POLL_MS", "20".to_owned()),
            ("CONCURRENCY", "4".to_owned()),
        ];
        let mut worker = Worker::start(run.url, run.schema, run.scratch, &env);
        for _ in 0..PIPELINES_PER_START {
            ids.push(worker.expect("PIPELINE").parse().expect("pipeline id"));
        }
        logs.push(log);
        worker
    };
    let mut workers = [start(&mut logs, &mut ids), start(&mut logs, &mut ids)];
    for _ in 0..run.iterations {
        std::thread::sleep(Duration::from_millis(rng.u64(100..=600)));
        let victim = rng.usize(0..2);
        workers[victim].kill();
        workers[victim] = start(&mut logs, &mut ids);
    }
    let db = connect(run.url, run.schema);
    let open = unfinished_after(&db, &ids, Duration::from_secs(120));
    for w in workers {
        w.stop();
    }
    let mut report = CrashLoopReport {
        iterations: run.iterations,
        seed: run.seed,
        pipelines: ids.len(),
        stuck: open,
        ..Default::default()
    };
    let executions = read_logs(&logs);
    // Attempts started, per (pipeline, task), with how often each attempt number started.
    let mut started: BTreeMap<(String, String), HashMap<u32, usize>> = BTreeMap::new();
    for e in executions.iter().filter(|e| e.event == "start") {
        report.executions += 1;
        *started.entry((e.pipeline.clone(), e.task.clone())).or_default().entry(e.attempt).or_default() += 1;
    }
    let mut conn = db.get().expect("conn");
    for id in &ids {
        let p = pipelines::get(&mut conn, *id).expect("pipeline").expect("exists");
        if p.status == PipelineStatus::Failed {
            report.failed += 1;
        }
        let tasks = task_executions::list_for_pipeline(&mut conn, *id).expect("tasks");
        let outputs = task_execution_metadata::outputs_for_pipeline(&mut conn, *id).expect("outputs");
        let events = recovery_events::list_for_pipeline(&mut conn, *id).expect("events");
        report.tasks += tasks.len();
        report.recovery_events += events.len();
        for t in &tasks {
            let outputs_of_t = outputs.iter().filter(|(name, _)| *name == t.task_name).count();
            if p.status.is_terminal() && (t.status != TaskStatus::Completed || outputs_of_t != 1) {
                report.not_completed_once += 1;
            }
            let attempts = started.get(&(id.to_string(), t.task_name.clone())).cloned().unwrap_or_default();
            report.attempts_run_twice += attempts.values().filter(|n| **n > 1).count();
            let re_executions = attempts.len().saturating_sub(1);
            report.re_executions += re_executions;
            let recovered = events.iter().filter(|e| e.task_execution_id == Some(t.id)).count();
            report.unmatched_re_executions += re_executions.saturating_sub(recovered);
        }
    }
    for log in logs {
        let _ = std::fs::remove_file(log);
    }
    report.elapsed = began.elapsed();
    report
}

/// How to run a soak: `processes` workers on one database, each starting one pipeline of `tasks`
/// no-op tasks, all of them running tasks of every pipeline.
pub(crate) struct Soak<'a> {
    pub(crate) url: &'a str,
    pub(crate) schema: Option<&'a str>,
    pub(crate) scratch: &'a Path,
    pub(crate) processes: usize,
    pub(crate) tasks: usize,
    pub(crate) heartbeat_ms: u64,
}

/// What a soak did.
#[derive(Debug, Default)]
pub(crate) struct SoakReport {
    pub(crate) pipelines: usize,
    pub(crate) tasks: usize,
    /// Pipelines that did not end Completed within ten minutes.
    pub(crate) not_completed: usize,
    /// Tasks whose code never ran.
    pub(crate) lost: usize,
    /// Task executions beyond one per task.
    pub(crate) doubled: usize,
    /// Recovery events (none are expected: nobody crashes).
    pub(crate) recovery_events: usize,
    /// PostgreSQL's deadlock counter for the database, before and after (`None` on SQLite).
    pub(crate) deadlocks: Option<i64>,
    pub(crate) elapsed: Duration,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pipelines, {} tasks, {:.1} s ({:.0} tasks/s): not completed {}, lost {}, doubled {}, recovery events {}, \
             deadlocks {}",
            self.pipelines,
            self.tasks,
            self.elapsed.as_secs_f64(),
            self.tasks as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.not_completed,
            self.lost,
            self.doubled,
            self.recovery_events,
            self.deadlocks.map_or_else(|| "n/a".to_owned(), |d| d.to_string()),
        )
    }
}

/// The deadlocks PostgreSQL has counted in the current database (`None` on SQLite). Read on a
/// fresh connection, after the processes whose deadlocks should count have disconnected (a
/// backend reports its counters at the latest when it exits).
pub(crate) fn deadlock_count(url: &str) -> Option<i64> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        deadlocks: i64,
    }
    let parsed = cloacina::database::DatabaseUrl::parse(url).expect("url");
    if parsed.backend() != cloacina::Backend::Postgres {
        return None;
    }
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).expect("connect");
    let row: Count = diesel::sql_query("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .get_result(&mut conn)
        .expect("pg_stat_database");
    Some(row.deadlocks)
}

/// Runs a soak (see [`Soak`]) and counts what went wrong.
pub(crate) fn soak(run: &Soak<'_>) -> SoakReport {
    let deadlocks_before = deadlock_count(run.url);
    let began = Instant::now();
    let logs: Vec<PathBuf> =
        (0..run.processes).map(|_| run.scratch.join(format!("soak-{}.log", uuid::Uuid::new_v4().simple()))).collect();
    let mut workers = Vec::new();
    let mut ids: Vec<PipelineExecutionId> = Vec::new();
    for log in &logs {
        let env = [
            ("LOG", log.display().to_string()),
            ("WIDE", run.tasks.to_string()),
            ("START", format!("wide_{}:1", run.tasks)),
            ("HEARTBEAT_MS", run.heartbeat_ms.to_string()),
        ];
        let mut worker = Worker::start(run.url, run.schema, run.scratch, &env);
        ids.push(worker.expect("PIPELINE").parse().expect("pipeline id"));
        workers.push(worker);
    }
    let db = connect(run.url, run.schema);
    unfinished_after(&db, &ids, Duration::from_secs(600));
    let elapsed = began.elapsed();
    for w in workers {
        w.stop();
    }
    let mut report = SoakReport { pipelines: ids.len(), elapsed, ..Default::default() };
    let mut conn = db.get().expect("conn");
    let mut executions: HashMap<(String, String), usize> = HashMap::new();
    for e in read_logs(&logs).into_iter().filter(|e| e.event == "start") {
        *executions.entry((e.pipeline, e.task)).or_default() += 1;
    }
    for id in &ids {
        let p = pipelines::get(&mut conn, *id).expect("pipeline").expect("exists");
        if p.status != PipelineStatus::Completed {
            report.not_completed += 1;
        }
        report.recovery_events += recovery_events::list_for_pipeline(&mut conn, *id).expect("events").len();
        for t in task_executions::list_for_pipeline(&mut conn, *id).expect("tasks") {
            report.tasks += 1;
            match executions.get(&(id.to_string(), t.task_name)).copied().unwrap_or(0) {
                0 => report.lost += 1,
                n => report.doubled += n - 1,
            }
        }
    }
    drop(conn);
    drop(db);
    report.deadlocks = deadlocks_before.zip(deadlock_count(run.url)).map(|(before, after)| after - before);
    for log in logs {
        let _ = std::fs::remove_file(log);
    }
    report
}

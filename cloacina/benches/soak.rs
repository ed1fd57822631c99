//! Durability soaks with real runner processes (`cloacina-test-worker`), printing a summary per
//! run. Not part of CI (the CI tests run small versions); `scripts/soak` runs them.
//!
//! `cargo bench -p cloacina --bench soak -- [crash-loop|deadlocks|heartbeat|all]`
//! - `crash-loop`: two workers, one killed with SIGKILL at random and restarted, 100 times per
//!   backend (`CLOACINA_SOAK_KILLS` changes the count);
//! - `deadlocks`: 4 workers × 10,000 no-op tasks on one PostgreSQL database, 5 runs;
//! - `heartbeat`: 1 worker, 4,000 no-op tasks, a 20 ms heartbeat, 3 runs per backend.
//!
//! `CLOACINA_BENCH_BACKEND=postgres|sqlite` restricts the backends. Exits non-zero if any run lost,
//! doubled, failed or stuck anything, or PostgreSQL counted a deadlock.

#[path = "../tests/support/processes.rs"]
mod processes;
#[path = "support/target.rs"]
mod target;
#[path = "../tests/support/workflows.rs"]
mod workflows;

use processes::{crash_loop, soak, CrashLoop, Soak};

fn backends() -> Vec<&'static str> {
    match std::env::var("CLOACINA_BENCH_BACKEND").as_deref() {
        Ok("postgres") => vec!["postgres"],
        Ok("sqlite") => vec!["sqlite"],
        _ => vec!["sqlite", "postgres"],
    }
}

fn scratch() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/soak");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn run_crash_loop() -> bool {
    let kills = std::env::var("CLOACINA_SOAK_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(100);
    let mut clean = true;
    for backend in backends() {
        let t = target::target(backend);
        let seed = fastrand::u64(..);
        let report = crash_loop(&CrashLoop {
            url: &t.url,
            schema: t.schema.as_deref(),
            scratch: &scratch(),
            iterations: kills,
            seed,
        });
        println!("crash loop  {backend:<8} {report}");
        clean &= report.is_clean();
        (t.cleanup)();
    }
    clean
}

fn run_soaks(label: &str, backends: &[&str], processes: usize, tasks: usize, heartbeat_ms: u64, runs: usize) -> bool {
    let mut clean = true;
    for &backend in backends {
        for run in 1..=runs {
            let t = target::target(backend);
            let report = soak(&Soak {
                url: &t.url,
                schema: t.schema.as_deref(),
                scratch: &scratch(),
                processes,
                tasks,
                heartbeat_ms,
            });
            println!("{label:<11} {backend:<8} run {run}/{runs}: {processes} processes x {tasks} tasks: {report}");
            clean &= report.not_completed == 0
                && report.lost == 0
                && report.doubled == 0
                && report.recovery_events == 0
                && report.deadlocks.unwrap_or(0) == 0;
            (t.cleanup)();
        }
    }
    clean
}

fn main() {
    let which = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_else(|| "all".to_owned());
    let started = std::time::Instant::now();
    let pg_only: Vec<&str> = backends().into_iter().filter(|b| *b == "postgres").collect();
    let mut clean = true;
    if matches!(which.as_str(), "crash-loop" | "all") {
        clean &= run_crash_loop();
    }
    if matches!(which.as_str(), "deadlocks" | "all") {
        clean &= run_soaks("deadlocks", &pg_only, 4, 10_000, 10_000, 5);
    }
    if matches!(which.as_str(), "heartbeat" | "all") {
        clean &= run_soaks("heartbeat", &backends(), 1, 4_000, 20, 3);
    }
    println!("soak {which}: {} in {:.0} s", if clean { "clean" } else { "FAILURES" }, started.elapsed().as_secs_f64());
    if !clean {
        std::process::exit(1);
    }
}

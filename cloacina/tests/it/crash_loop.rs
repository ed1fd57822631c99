//! The crash loop in CI: two runner processes on one database, one of them killed with SIGKILL
//! at random moments and restarted, 20 times per backend. Afterwards no pipeline is stuck or
//! failed, no task completed twice, no attempt ran twice, and every re-execution of a task is
//! matched by a recovery event. `scripts/soak` runs the same loop with 100 kills.
//!
//! `CLOACINA_CRASH_SEED` replays a run (the seed is printed).

use crate::processes::{crash_loop, CrashLoop};

crate::harness::backend_test!(two_runners_killed_at_random_lose_and_double_nothing, |t| {
    let seed =
        std::env::var("CLOACINA_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    let scratch = crate::harness::scratch_dir();
    let report = crash_loop(&CrashLoop { url: &t.url, schema: t.db.schema(), scratch: &scratch, iterations: 20, seed });
    println!("crash loop ({}): {report}", t.db.backend());
    assert!(report.pipelines >= 60 && report.executions >= report.tasks, "{report}");
    assert!(report.re_executions > 0, "the kills hit tasks in flight: {report}");
    assert!(report.is_clean(), "{report}\nstuck: {:?}", report.stuck);
});

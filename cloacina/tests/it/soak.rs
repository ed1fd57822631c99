//! Lock order under load: two runner processes share 2 × 2,000 tasks with a 20 ms heartbeat, so
//! lease renewals constantly meet the recording of outcomes on the same rows. Nothing may fail,
//! be lost or run twice, and PostgreSQL must count no deadlock. `scripts/soak` runs the full-size
//! version (4 processes × 10,000 tasks, 5 runs).

use crate::processes::{soak, Soak};

crate::harness::backend_test!(renewals_and_completions_never_deadlock, |t| {
    let scratch = crate::harness::scratch_dir();
    let run =
        Soak { url: &t.url, schema: t.db.schema(), scratch: &scratch, processes: 2, tasks: 2_000, heartbeat_ms: 20 };
    let report = soak(&run);
    println!("soak ({}): {report}", t.db.backend());
    assert_eq!((report.pipelines, report.tasks), (2, 4_000), "{report}");
    assert_eq!((report.not_completed, report.lost, report.doubled), (0, 0, 0), "{report}");
    assert_eq!(report.recovery_events, 0, "no lease ran out: {report}");
    if t.db.backend() == cloacina::Backend::Postgres {
        assert_eq!(report.deadlocks, Some(0), "{report}");
    }
});

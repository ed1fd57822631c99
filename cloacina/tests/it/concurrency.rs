//! Eight threads claiming 10,000 tasks: every task claimed exactly once, no "database is locked".

use std::collections::HashSet;
use std::time::Duration;

use crate::dal_pipelines::pipeline;
use crate::harness::backend_test;
use cloacina::dal::{pipeline_executions as pipelines, task_executions as tasks};
use cloacina::database::UniversalTimestamp;

const TASKS: usize = 10_000;
const THREADS: usize = 8;
const BATCH: u32 = 16;

backend_test!(eight_claimers_take_every_task_exactly_once, |t| {
    let now = UniversalTimestamp::now();
    pipelines::create(&mut t.conn(), &pipeline("load", TASKS, 0), now).expect("create");
    let per_thread: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let db = &t.db;
                s.spawn(move || {
                    let runner = format!("runner-{i}");
                    let mut mine = Vec::new();
                    loop {
                        let mut conn = db.get().expect("conn");
                        let got = tasks::claim_ready(&mut conn, &runner, BATCH, Duration::from_secs(60), now)
                            .unwrap_or_else(|e| panic!("{runner}: claim failed: {e}"));
                        if got.is_empty() {
                            return mine;
                        }
                        assert!(got.iter().all(|t| t.claimed_by.as_deref() == Some(runner.as_str())));
                        mine.extend(got.into_iter().map(|t| t.id));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("claimer thread")).collect()
    });
    let total: usize = per_thread.iter().map(Vec::len).sum();
    let unique: HashSet<_> = per_thread.iter().flatten().collect();
    assert_eq!(total, TASKS, "claims per thread: {:?}", per_thread.iter().map(Vec::len).collect::<Vec<_>>());
    assert_eq!(unique.len(), TASKS, "a task was claimed twice");
});

//! Eight threads claiming 10,000 tasks, renewing their leases and completing every task: every
//! task claimed and completed exactly once, no "database is locked".

use std::collections::HashSet;
use std::time::Duration;

use crate::dal_pipelines::{pipeline, versions};
use crate::harness::backend_test;
use cloacina::dal::{pipeline_executions as pipelines, task_executions as tasks};
use cloacina::database::UniversalTimestamp;

const TASKS: usize = 10_000;
const THREADS: usize = 8;
const BATCH: u32 = 16;

backend_test!(eight_claimers_take_every_task_exactly_once, |t| {
    let now = UniversalTimestamp::now();
    let pipeline = pipelines::create(
        &mut t.conn(),
        cloacina::models::PipelineExecutionId::new(),
        &pipeline("load", TASKS, 0),
        now,
    )
    .expect("create");
    let per_thread: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let db = &t.db;
                s.spawn(move || {
                    let runner = format!("runner-{i}");
                    let mut mine = Vec::new();
                    loop {
                        let mut conn = db.get().expect("conn");
                        let got =
                            tasks::claim_ready(&mut conn, &runner, &versions(), BATCH, Duration::from_secs(60), now)
                                .unwrap_or_else(|e| panic!("{runner}: claim failed: {e}"));
                        if got.is_empty() {
                            return mine;
                        }
                        assert!(got.iter().all(|t| t.claimed_by.as_deref() == Some(runner.as_str())));
                        let ids: Vec<_> = got.iter().map(|t| t.id).collect();
                        let renewal =
                            tasks::renew_leases(&mut conn, &runner, &ids, now.plus(Duration::from_secs(120)), now)
                                .unwrap_or_else(|e| panic!("{runner}: renew failed: {e}"));
                        // Another claimer's scan may hold a row for a moment (busy), but no claim
                        // can have ended: nobody else could take it.
                        assert_eq!(renewal.ended(&ids).count(), 0, "{runner} lost a claim nobody else could take");
                        for id in ids {
                            let done = tasks::complete(&mut conn, id, &runner, &serde_json::json!({"by": runner}), now)
                                .unwrap_or_else(|e| panic!("{runner}: complete failed: {e}"));
                            assert!(done, "{runner} could not complete its own claim");
                            mine.push(id);
                        }
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
    let mut conn = t.conn();
    let outputs = cloacina::dal::task_execution_metadata::outputs_for_pipeline(&mut conn, pipeline).expect("outputs");
    assert_eq!(outputs.len(), TASKS, "one output per task");
});

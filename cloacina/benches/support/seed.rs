//! Seeding a benchmark database: RUNS runs of ten tasks each, written through the DAL the way
//! runs are created, then 90 % of them marked finished. Shared by the server and copy benchmarks.

use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::task_executions::NewTask;
use cloacina::dal::write_transaction;
use cloacina::database::UniversalTimestamp;
use cloacina::models::PipelineExecutionId;
use cloacina::workflow::TaskSpec;
use cloacina::Database;
use serde_json::json;

/// Tasks per seeded run.
pub(crate) const TASKS_PER_RUN: usize = 10;

/// RUNS runs of 10 tasks, 1,000 per transaction; then 90 % of them marked finished.
pub(crate) fn seed(db: &Database, runs: usize) -> PipelineExecutionId {
    let specs: Vec<TaskSpec> = (0..TASKS_PER_RUN)
        .map(|i| if i == 0 { TaskSpec::new("t0", &[]) } else { TaskSpec::new(format!("t{i}"), &[]) })
        .collect();
    let mut conn = db.get().unwrap();
    let mut last = PipelineExecutionId::new();
    for chunk in 0..runs.div_ceil(1_000) {
        let n = (runs - chunk * 1_000).min(1_000);
        write_transaction(&mut conn, |c| {
            for i in 0..n {
                let new = NewPipeline {
                    workflow_name: format!("wf{}", (chunk * 1_000 + i) % 5),
                    workflow_version: "v1".into(),
                    input: json!({ "n": chunk * 1_000 + i }),
                    tasks: specs.iter().map(|s| NewTask::of(s, true)).collect(),
                };
                last = PipelineExecutionId::new();
                pipelines::create(c, last, &new, UniversalTimestamp::now())?;
            }
            Ok::<_, cloacina::database::Error>(())
        })
        .unwrap();
    }
    // 90 % finished (their tasks too), the rest left with all tasks Ready.
    let finished = runs * 9 / 10;
    diesel::connection::SimpleConnection::batch_execute(
        &mut *conn,
        &format!(
            "UPDATE pipeline_executions SET status = 'Completed', completed_at = created_at \
             WHERE id IN (SELECT id FROM pipeline_executions ORDER BY created_at LIMIT {finished}); \
             UPDATE task_executions SET status = 'Completed', completed_at = created_at \
             WHERE pipeline_execution_id IN (SELECT id FROM pipeline_executions WHERE status = 'Completed')"
        ),
    )
    .unwrap();
    // Table statistics as autovacuum would have them (PostgreSQL plans by them; SQLite's planner
    // does not use any unless asked, and the migrations do not ask).
    if db.backend() == cloacina::Backend::Postgres {
        diesel::connection::SimpleConnection::batch_execute(&mut *conn, "ANALYZE").unwrap();
    }
    last
}

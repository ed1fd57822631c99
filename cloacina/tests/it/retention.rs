//! Pruning finished runs, on both backends: `prune_batch` deletes finished runs that ended before
//! the cut with their tasks, outputs, recovery events and context documents, never an unfinished
//! run nor a cancelled run whose task still runs, and in batches; keyset pages (`PipelineFilter::after`) cover every run once; the runner's
//! retention service prunes on its own (manual clock).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::engine::{config, engine_test, wait_for};
use cloacina::clock::ManualClock;
use cloacina::dal::pipeline_executions::{self as pipelines, PipelineFilter, PruneFilter};
use cloacina::dal::row_counts;
use cloacina::dal::task_executions as tasks;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::models::PipelineStatus;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

fn workflows(gate: &watch::Receiver<bool>) -> Vec<Workflow> {
    let mut once = TaskSpec::new("breaks", &[]);
    once.retry.max_attempts = 1;
    let gate = gate.clone();
    vec![
        Workflow::builder("keep_ok")
            .simple_task("a", &[], |mut ctx: Context<Value>| async move {
                ctx.insert_or_update("a", json!(1));
                Ok(ctx)
            })
            .simple_task("b", &["a"], |ctx: Context<Value>| async move { Ok(ctx) })
            .build()
            .expect("wf"),
        Workflow::builder("keep_bad")
            .task(once, |_c: Context<Value>| async move { Err(TaskError::fatal("no")) })
            .build()
            .expect("wf"),
        Workflow::builder("keep_waiting")
            .simple_task("waits", &[], move |ctx: Context<Value>| {
                let mut gate = gate.clone();
                async move {
                    let _ = gate.wait_for(|o| *o).await;
                    Ok(ctx)
                }
            })
            .build()
            .expect("wf"),
    ]
}

async fn runner_with(
    t: &crate::harness::TestDb,
    clock: &ManualClock,
    c: DefaultRunnerConfig,
    gate: &watch::Receiver<bool>,
) -> DefaultRunner {
    workflows(gate)
        .into_iter()
        .fold(DefaultRunner::builder(t.url.clone()).config(c).clock(Arc::new(clock.clone())), |b, w| b.workflow(w))
        .build()
        .await
        .expect("runner")
}

fn count(t: &crate::harness::TestDb, table: &str) -> i64 {
    row_counts(&mut t.conn()).expect("counts").into_iter().find(|(n, _)| *n == table).map_or(0, |(_, c)| c)
}

engine_test!(pruning_deletes_finished_runs_and_everything_they_own, |t| {
    let clock = ManualClock::new(utc("2026-06-01T00:00:00Z"));
    let (open, gate) = watch::channel(false);
    let runner = runner_with(&t, &clock, config(&t), &gate).await;
    for _ in 0..3 {
        assert_eq!(runner.execute("keep_ok", Context::new()).await.expect("ok").status, WorkflowStatus::Completed);
        assert_eq!(runner.execute("keep_bad", Context::new()).await.expect("bad").status, WorkflowStatus::Failed);
    }
    let waiting = runner.execute_async("keep_waiting", Context::new()).await.expect("start").execution_id();
    // Keyset pages cover all seven runs once, newest first.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page =
            pipelines::list(&mut t.conn(), &PipelineFilter { after, limit: 3, ..Default::default() }).expect("page");
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id));
        seen.extend(page.iter().map(|p| p.id));
    }
    let mut unique = seen.clone();
    unique.sort_by_key(|id| id.to_string());
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7));
    let contexts_before = count(&t, "contexts");
    assert!(contexts_before > 0 && count(&t, "task_execution_metadata") > 0);
    // Only failed runs first, two per batch: three batches, then nothing.
    let cut = PruneFilter { ended_before: utc("2026-06-02T00:00:00Z"), statuses: vec![PipelineStatus::Failed] };
    assert_eq!(pipelines::count_prunable(&mut t.conn(), &cut).expect("count"), 3);
    let batches: Vec<usize> =
        std::iter::from_fn(|| Some(pipelines::prune_batch(&mut t.conn(), &cut, 2).expect("prune")))
            .take_while(|n| *n > 0)
            .collect();
    assert_eq!(batches, vec![2, 1]);
    // Then every finished run; the waiting one stays, with its tasks and input.
    let all = PruneFilter { ended_before: utc("2026-06-02T00:00:00Z"), statuses: Vec::new() };
    assert_eq!(pipelines::prune_batch(&mut t.conn(), &all, 100).expect("prune"), 3);
    let left = pipelines::list(&mut t.conn(), &PipelineFilter::default()).expect("list");
    assert_eq!(left.iter().map(|p| p.id).collect::<Vec<_>>(), vec![waiting]);
    assert_eq!(count(&t, "task_executions"), 1, "only the waiting run's task");
    assert_eq!(count(&t, "task_execution_metadata"), 0);
    assert_eq!(count(&t, "contexts"), 1, "only the waiting run's input");
    // A cancelled run whose task is still running (cancel lets it finish) is kept until it ends.
    runner.cancel_execution(waiting).await.expect("cancel");
    assert_eq!(pipelines::prune_batch(&mut t.conn(), &all, 100).expect("prune"), 0, "its task still runs");
    // A cut before the runs ended deletes nothing.
    let early = PruneFilter { ended_before: utc("2026-05-01T00:00:00Z"), statuses: Vec::new() };
    assert_eq!(pipelines::prune_batch(&mut t.conn(), &early, 100).expect("prune"), 0);
    open.send_replace(true);
    wait_for(|| async { tasks::list_for_pipeline(&mut t.conn(), waiting).expect("tasks")[0].status.is_terminal() })
        .await;
    assert_eq!(pipelines::prune_batch(&mut t.conn(), &all, 100).expect("prune"), 1, "pruned once it ended");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(the_retention_setting_prunes_in_the_background, |t| {
    let clock = ManualClock::new(utc("2026-06-01T00:00:00Z"));
    let (open, gate) = watch::channel(true);
    let c = DefaultRunnerConfig {
        retention: Some(Duration::from_secs(3_600)),
        retention_interval: Duration::from_secs(60),
        ..config(&t)
    };
    let runner = runner_with(&t, &clock, c, &gate).await;
    assert_eq!(runner.execute("keep_ok", Context::new()).await.expect("ok").status, WorkflowStatus::Completed);
    // Two hours on: past the retention; the service's next pass deletes the run.
    clock.set(utc("2026-06-01T02:00:00Z"));
    wait_for(|| async { pipelines::list(&mut t.conn(), &PipelineFilter::default()).expect("list").is_empty() }).await;
    assert_eq!(count(&t, "contexts"), 0);
    let bad = DefaultRunnerConfig { retention: Some(Duration::from_secs(1)), ..config(&t) };
    assert!(bad.validate().expect_err("too short").to_string().contains("retention"));
    open.send_replace(true);
    runner.shutdown().await.expect("shutdown");
});

//! Workflow versions: a pipeline runs only on runners that have the version it started with;
//! until one is live it waits, and says so.

use std::time::Duration;

use serde_json::{json, Value};

use crate::engine::{engine_test, runner, wait_for};
use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::task_executions::{self as tasks, NewTask};
use cloacina::dal::workflow_registry;
use cloacina::database::UniversalTimestamp;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::workflow::Workflow;
use cloacina::{Context, TaskStatus};

fn deploy(tasks: &[&'static str]) -> Workflow {
    tasks
        .iter()
        .fold(Workflow::builder("deploy"), |b, &name| {
            b.simple_task(name, &[], move |mut ctx: Context<Value>| async move {
                ctx.insert_or_update(name, json!(true));
                Ok(ctx)
            })
        })
        .build()
        .expect("workflow")
}

engine_test!(a_pipeline_waits_for_a_runner_with_its_version, |t| {
    let (old, new) = (deploy(&["build"]), deploy(&["build", "notify"]));
    assert_ne!(old.version(), new.version(), "a structural change is a new version");
    // A v1 pipeline left behind by runners that are gone (their registry entry is stale).
    let long_ago = UniversalTimestamp::from(chrono::Utc::now() - chrono::Duration::minutes(10));
    let (old_version, graph) = (old.version().to_owned(), cloacina::database::JsonText(old.spec().graph_text()));
    let pipeline =
        t.db.run(move |c| {
            workflow_registry::record_seen(c, "deploy", &old_version, &graph, long_ago)?;
            let task = NewTask::of(&cloacina::workflow::TaskSpec::new("build", &[]), true);
            let new = NewPipeline {
                workflow_name: "deploy".into(),
                workflow_version: old_version,
                input: json!({}),
                tasks: vec![task],
            };
            pipelines::create(c, cloacina::models::PipelineExecutionId::new(), &new, UniversalTimestamp::now())
        })
        .await
        .expect("old pipeline");

    // A runner with only v2 runs v2 pipelines and leaves the v1 one alone.
    let v2_version = new.version().to_owned();
    let new_runner = runner(&t, vec![new]).await;
    let v2 = new_runner.execute("deploy", Context::new()).await.expect("v2 run");
    assert_eq!(v2.status, WorkflowStatus::Completed);
    assert_eq!(v2.final_context.get("notify"), Some(&json!(true)));
    // The claim (the runner's own statement) passes the v1 task over.
    let now = UniversalTimestamp::now();
    let lease = Duration::from_secs(30);
    let claimed =
        t.db.run(move |c| tasks::claim_ready(c, "probe", &[v2_version], 10, lease, now)).await.expect("claim");
    assert!(claimed.is_empty(), "{claimed:?}");
    let details = new_runner.execution_details(pipeline).await.expect("details");
    assert_eq!(details.run.status, WorkflowStatus::Pending);
    assert_eq!(details.tasks[0].status, TaskStatus::Ready, "not claimed by a runner without its version");
    let waiting = details
        .waiting
        .iter()
        .find_map(|w| match w {
            cloacina::ops::Waiting::NoRunnerWithVersion(v) => Some(v.clone()),
            _ => None,
        })
        .expect("reported as waiting");
    assert!(
        !details.waiting.iter().any(|w| matches!(w, cloacina::ops::Waiting::Ready { .. })),
        "one reason, not also a free slot it waits for: {:?}",
        details.waiting
    );
    assert_eq!((waiting.workflow_name.as_str(), waiting.version.as_str()), ("deploy", old.version()));
    assert_eq!(waiting.last_seen_at, Some(long_ago.as_datetime()));
    assert!(waiting.to_string().contains("waiting for a runner with version"), "{waiting}");
    let v2_details = new_runner.execution_details(v2.execution_id).await.expect("details");
    assert!(v2_details.waiting.is_empty(), "{:?}", v2_details.waiting);

    // Side by side: a runner with v1 starts and finishes it.
    let old_runner = runner(&t, vec![old]).await;
    wait_for(|| async { new_runner.get_execution_status(pipeline).await.ok() == Some(WorkflowStatus::Completed) })
        .await;
    let details = new_runner.execution_details(pipeline).await.expect("details");
    assert!(details.waiting.is_empty());
    assert_eq!(details.tasks[0].claimed_by.as_deref(), Some(old_runner.runner_name()));
    let rows = t.db.run(move |c| tasks::list_for_pipeline(c, pipeline)).await.expect("rows");
    assert_eq!(rows.len(), 1, "the v1 pipeline kept its v1 task list");
    old_runner.shutdown().await.expect("shutdown");
    new_runner.shutdown().await.expect("shutdown");
});

//! `admin::run_details` explains why an unfinished run has not ended, truthfully, for each state a
//! run can stand in (built directly in the database, as a crashed or stalled engine leaves it).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::backend_test;
use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::task_executions::{self as tasks, NewTask};
use cloacina::dal::workflow_registry;
use cloacina::database::{AnyConnection, UniversalTimestamp};
use cloacina::models::{PipelineExecutionId, PipelineStatus};
use cloacina::ops::runs::details as run_details;
use cloacina::ops::Waiting;
use cloacina::workflow::Workflow;
use cloacina::Context;

fn noop(ctx: Context<Value>) -> std::future::Ready<Result<Context<Value>, cloacina::TaskError>> {
    std::future::ready(Ok(ctx))
}

/// `first → second`, registered by a runner that said it was alive at `now` (a live version).
fn registered(conn: &mut AnyConnection, now: UniversalTimestamp) -> Workflow {
    let wf = Workflow::builder("explained")
        .simple_task("first", &[], noop)
        .simple_task("second", &["first"], noop)
        .build()
        .expect("wf");
    workflow_registry::record_seen(
        conn,
        wf.name(),
        wf.version(),
        &cloacina::database::JsonText(wf.spec().graph_text()),
        now,
    )
    .expect("register");
    let versions = cloacina::dal::runners::Versions { offered: vec![wf.version().to_owned()], retired: vec![] };
    let runner = cloacina::dal::runners::NewRunner {
        name: "explaining-runner",
        host_id: "boot-id",
        host_name: "box",
        pid: 1,
        versions: &versions,
    };
    cloacina::dal::runners::register(conn, runner, now).expect("runner");
    wf
}

fn create(conn: &mut AnyConnection, wf: &Workflow, now: UniversalTimestamp) -> PipelineExecutionId {
    let task = |name: &str, ready| NewTask::of(wf.spec().task(name).expect("task"), ready);
    let new = NewPipeline {
        workflow_name: wf.name().to_owned(),
        workflow_version: wf.version().to_owned(),
        input: json!({}),
        tasks: vec![task("first", true), task("second", false)],
    };
    pipelines::create(conn, PipelineExecutionId::new(), &new, now).expect("create")
}

fn reasons(conn: &mut AnyConnection, id: PipelineExecutionId, at: UniversalTimestamp) -> Vec<Waiting> {
    run_details(conn, id, at.as_datetime()).expect("details").expect("exists").waiting
}

backend_test!(a_waiting_run_says_why, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let wf = registered(&mut conn, now);
    let versions = vec![wf.version().to_owned()];
    let id = create(&mut conn, &wf, now);
    assert_eq!(reasons(&mut conn, id, now), vec![Waiting::Ready { tasks: 1 }]);

    // Claimed by a runner: running while the lease holds, then held by a runner that stopped.
    let lease = Duration::from_secs(30);
    let first = tasks::claim_ready(&mut conn, "ghost", &versions, 1, lease, now).expect("claim").remove(0);
    let until = now.plus(lease).as_datetime();
    assert_eq!(
        reasons(&mut conn, id, now),
        vec![Waiting::Running { runner: "ghost".into(), tasks: 1, lease_until: until }]
    );
    let later = now.plus(Duration::from_secs(31));
    let expired = reasons(&mut conn, id, later);
    assert_eq!(expired, vec![Waiting::LeaseExpired { runner: "ghost".into(), tasks: 1, expired_at: until }]);
    assert!(expired[0].to_string().contains("runner ghost, which stopped renewing"), "{}", expired[0]);

    // A retry waiting for its time.
    let retry_at = now.plus(Duration::from_secs(60));
    assert!(tasks::schedule_retry(&mut conn, first.id, "ghost", "flaky", retry_at, now).expect("retry"));
    assert_eq!(reasons(&mut conn, id, now), vec![Waiting::RetryWaiting { tasks: 1, next_at: retry_at.as_datetime() }]);

    // Completed by an engine that died before deciding `second`: a run standing still.
    let first = tasks::claim_ready(&mut conn, "ghost", &versions, 1, lease, retry_at).expect("claim").remove(0);
    assert!(tasks::complete(&mut conn, first.id, "ghost", &json!({}), retry_at).expect("complete"));
    let stalled = reasons(&mut conn, id, retry_at);
    assert_eq!(stalled, vec![Waiting::Undecided { tasks: vec!["second".into()] }]);
    assert!(stalled[0].to_string().contains("dependents being resolved: second"), "{}", stalled[0]);

    // Everything ended but the pipeline's end not recorded; and paused.
    tasks::resolve_not_started(&mut conn, id, &["second".to_owned()], cloacina::TaskStatus::Skipped, retry_at)
        .expect("skip");
    assert_eq!(reasons(&mut conn, id, retry_at), vec![Waiting::Ending]);
    let paused = [PipelineStatus::Pending];
    assert!(pipelines::transition_from_any(&mut conn, id, &paused, PipelineStatus::Paused, retry_at).expect("pause"));
    assert_eq!(reasons(&mut conn, id, retry_at), vec![Waiting::Paused, Waiting::Ending]);
});

backend_test!(a_run_of_a_version_no_live_runner_has_says_so, |t| {
    let mut conn = t.conn();
    let long_ago = UniversalTimestamp::now().minus(Duration::from_secs(3_600));
    let wf = registered(&mut conn, long_ago);
    let id = create(&mut conn, &wf, long_ago);
    let now = UniversalTimestamp::now();
    let waiting = reasons(&mut conn, id, now);
    assert!(matches!(&waiting[..], [Waiting::NoRunnerWithVersion(v)] if v.version == wf.version()), "{waiting:?}");
    let finished = pipelines::finish(
        &mut conn,
        id,
        pipelines::PipelineEnd::Failed { error: "given up", final_context: &serde_json::json!({}) },
        now,
    )
    .expect("finish");
    assert!(finished);
    assert!(reasons(&mut conn, id, now).is_empty(), "an ended run waits for nothing");
});

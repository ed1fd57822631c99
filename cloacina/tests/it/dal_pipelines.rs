//! `pipeline_executions` and `contexts`: atomic creation, listing, conditional transitions.

use serde_json::json;

use crate::harness::backend_test;
use cloacina::dal::contexts;
use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline, PipelineEnd, PipelineFilter};
use cloacina::dal::task_executions::{self as tasks, NewTask};
use cloacina::database::UniversalTimestamp;
use cloacina::models::{PipelineStatus, TaskStatus};
use cloacina::retry::RetryPolicy;
use cloacina::workflow::TaskSpec;

/// The workflow version of [`pipeline`]'s pipelines: what a claim must ask for to take their tasks.
pub fn versions() -> Vec<String> {
    vec!["v1".to_owned()]
}

/// A pipeline of `ready` root tasks and `waiting` tasks that wait for dependencies.
pub fn pipeline(workflow: &str, ready: usize, waiting: usize) -> NewPipeline {
    let task = |i: usize, ready: bool| {
        let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
        NewTask::of(&TaskSpec { retry, ..TaskSpec::new(format!("task_{i:05}"), &[]) }, ready)
    };
    NewPipeline {
        workflow_name: workflow.to_owned(),
        workflow_version: "v1".to_owned(),
        input: json!({"input": workflow}),
        tasks: (0..ready).map(|i| task(i, true)).chain((ready..ready + waiting).map(|i| task(i, false))).collect(),
    }
}

backend_test!(create_writes_pipeline_context_and_tasks_together, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("etl", 2, 1), now)
        .expect("create");
    let p = pipelines::get(&mut conn, id).expect("get").expect("exists");
    assert_eq!((p.workflow_name.as_str(), p.status), ("etl", PipelineStatus::Pending));
    assert_eq!(p.created_at, now.as_datetime());
    let input = contexts::get(&mut conn, p.context_id.expect("input context")).expect("ctx");
    assert_eq!(input, Some(json!({"input": "etl"})));
    let rows = tasks::list_for_pipeline(&mut conn, id).expect("tasks");
    let statuses: Vec<_> = rows.iter().map(|r| (r.task_name.as_str(), r.status, r.attempt)).collect();
    assert_eq!(
        statuses,
        vec![
            ("task_00000", TaskStatus::Ready, 1),
            ("task_00001", TaskStatus::Ready, 1),
            ("task_00002", TaskStatus::NotStarted, 1)
        ]
    );
    let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("stored JSON");
    assert_eq!(parsed(&rows[0].task_configuration), json!({"retry": retry, "timeout": null}));
    assert_eq!(
        parsed(&rows[0].trigger_rules),
        serde_json::to_value(cloacina::task::TriggerRule::default()).expect("rule")
    );
});

backend_test!(create_is_all_or_nothing, |t| {
    let mut conn = t.conn();
    let mut bad = pipeline("dup", 1, 0);
    bad.tasks.push(bad.tasks[0].clone()); // duplicate task name violates the unique key
    assert!(pipelines::create(
        &mut conn,
        cloacina::models::PipelineExecutionId::new(),
        &bad,
        UniversalTimestamp::now()
    )
    .is_err());
    let all = pipelines::list(&mut conn, &PipelineFilter::default()).expect("list");
    assert!(all.is_empty(), "no pipeline row may survive a failed create");
    use diesel::prelude::*;
    let n: i64 = cloacina::database::schema::contexts::table.count().get_result(&mut conn).expect("count");
    assert_eq!(n, 0, "no context row may survive a failed create");
});

backend_test!(creating_ten_thousand_tasks_uses_batches, |t| {
    let mut conn = t.conn();
    let id = pipelines::create(
        &mut conn,
        cloacina::models::PipelineExecutionId::new(),
        &pipeline("big", 10_000, 0),
        UniversalTimestamp::now(),
    )
    .expect("create");
    assert_eq!(tasks::list_for_pipeline(&mut conn, id).expect("list").len(), 10_000);
});

backend_test!(list_filters_and_pages_newest_first, |t| {
    let mut conn = t.conn();
    let base = UniversalTimestamp::now();
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let workflow = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(
            pipelines::create(
                &mut conn,
                cloacina::models::PipelineExecutionId::new(),
                &pipeline(workflow, 1, 0),
                base.plus(std::time::Duration::from_secs(i)),
            )
            .expect("create"),
        );
    }
    let page = |offset, limit| PipelineFilter { offset, limit, ..Default::default() };
    let first: Vec<_> = pipelines::list(&mut conn, &page(0, 2)).expect("p1").into_iter().map(|p| p.id).collect();
    let second: Vec<_> = pipelines::list(&mut conn, &page(2, 2)).expect("p2").into_iter().map(|p| p.id).collect();
    assert_eq!(first, vec![ids[4], ids[3]]);
    assert_eq!(second, vec![ids[2], ids[1]]);
    let even = PipelineFilter { workflow_name: Some("even".into()), ..Default::default() };
    assert_eq!(pipelines::list(&mut conn, &even).expect("even").len(), 3);
    let since = PipelineFilter {
        since: Some(base.plus(std::time::Duration::from_secs(3)).as_datetime()),
        ..Default::default()
    };
    assert_eq!(pipelines::list(&mut conn, &since).expect("since").len(), 2);
    assert!(pipelines::transition(&mut conn, ids[0], PipelineStatus::Pending, PipelineStatus::Running, None, base)
        .expect("t"));
    let running = PipelineFilter { status: Some(PipelineStatus::Running), ..Default::default() };
    let found: Vec<_> = pipelines::list(&mut conn, &running).expect("running").into_iter().map(|p| p.id).collect();
    assert_eq!(found, vec![ids[0]]);
    let counts = pipelines::count_by_status(&mut conn).expect("counts");
    assert!(
        counts.contains(&(PipelineStatus::Pending, 4)) && counts.contains(&(PipelineStatus::Running, 1)),
        "{counts:?}"
    );
});

backend_test!(transitions_are_conditional_on_the_prior_status, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    assert!(
        pipelines::transition(&mut conn, id, PipelineStatus::Pending, PipelineStatus::Running, None, now).expect("1st")
    );
    // The same transition again loses: the row is no longer Pending.
    assert!(!pipelines::transition(&mut conn, id, PipelineStatus::Pending, PipelineStatus::Running, None, now)
        .expect("2nd"));
    assert!(!pipelines::transition(&mut conn, id, PipelineStatus::Paused, PipelineStatus::Running, None, now)
        .expect("wrong from"));
    let p = pipelines::get(&mut conn, id).expect("get").expect("exists");
    assert_eq!((p.status, p.started_at, p.completed_at), (PipelineStatus::Running, Some(now.as_datetime()), None));
    let done = json!({"done": true});
    assert!(pipelines::finish(&mut conn, id, PipelineEnd::Completed { final_context: &done }, now).expect("finish"));
    let again = json!({"again": true});
    assert!(!pipelines::finish(&mut conn, id, PipelineEnd::Completed { final_context: &again }, now).expect("twice"));
    assert!(!pipelines::finish(
        &mut conn,
        id,
        PipelineEnd::Failed { error: "late", final_context: &serde_json::json!({}) },
        now
    )
    .expect("ended"));
    let p = pipelines::get(&mut conn, id).expect("get").expect("exists");
    assert_eq!(p.status, PipelineStatus::Completed);
    assert_eq!((p.completed_at, p.error_details), (Some(now.as_datetime()), None));
    let fin = contexts::get(&mut conn, p.final_context_id.expect("final context")).expect("ctx");
    assert_eq!(fin, Some(done), "the losing finishes stored nothing");
    // A failed transition records its error.
    let other = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    assert!(pipelines::transition(
        &mut conn,
        other,
        PipelineStatus::Pending,
        PipelineStatus::Failed,
        Some("boom"),
        now
    )
    .expect("fail"));
    assert_eq!(pipelines::get(&mut conn, other).expect("get").expect("row").error_details.as_deref(), Some("boom"));
});

backend_test!(a_transition_from_any_of_several_statuses_is_one_conditional_update, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    let pausable = [PipelineStatus::Pending, PipelineStatus::Running];
    assert!(pipelines::transition_from_any(&mut conn, id, &pausable, PipelineStatus::Paused, now).expect("pause"));
    assert!(!pipelines::transition_from_any(&mut conn, id, &pausable, PipelineStatus::Paused, now).expect("again"));
    let p = pipelines::get(&mut conn, id).expect("get").expect("row");
    assert_eq!((p.status, p.started_at, p.completed_at), (PipelineStatus::Paused, None, None));
    let all = [PipelineStatus::Pending, PipelineStatus::Running, PipelineStatus::Paused];
    assert!(pipelines::transition_from_any(&mut conn, id, &all, PipelineStatus::Cancelled, now).expect("cancel"));
    let p = pipelines::get(&mut conn, id).expect("get").expect("row");
    assert_eq!((p.status, p.completed_at), (PipelineStatus::Cancelled, Some(now.as_datetime())));
});

backend_test!(finish_ends_a_pipeline_from_pending_or_running_only, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    // Every root skipped: the pipeline ends without having run, and gets started_at too.
    let never_ran =
        pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
            .expect("create");
    assert!(pipelines::finish(
        &mut conn,
        never_ran,
        PipelineEnd::Failed { error: "task `x` failed", final_context: &serde_json::json!({}) },
        now
    )
    .expect("finish"));
    let p = pipelines::get(&mut conn, never_ran).expect("get").expect("row");
    assert_eq!(
        (p.status, p.started_at, p.completed_at, p.error_details.as_deref()),
        (PipelineStatus::Failed, Some(now.as_datetime()), Some(now.as_datetime()), Some("task `x` failed"))
    );
    let stored = p.final_context_id.expect("a failed pipeline keeps a final context");
    assert_eq!(cloacina::dal::contexts::get(&mut conn, stored).expect("read"), Some(serde_json::json!({})));
    // A paused pipeline is not ended behind the user's back; a running one keeps its started_at.
    let paused = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    let earlier = UniversalTimestamp::from(now.as_datetime() - chrono::Duration::seconds(5));
    assert!(pipelines::transition(&mut conn, paused, PipelineStatus::Pending, PipelineStatus::Running, None, earlier)
        .expect("start"));
    assert!(pipelines::transition(&mut conn, paused, PipelineStatus::Running, PipelineStatus::Paused, None, now)
        .expect("pause"));
    let fin = json!({});
    assert!(!pipelines::finish(&mut conn, paused, PipelineEnd::Completed { final_context: &fin }, now).expect("paused"));
    assert!(pipelines::transition(&mut conn, paused, PipelineStatus::Paused, PipelineStatus::Running, None, now)
        .expect("resume"));
    assert!(pipelines::finish(&mut conn, paused, PipelineEnd::Completed { final_context: &fin }, now).expect("end"));
    let p = pipelines::get(&mut conn, paused).expect("get").expect("row");
    assert_eq!((p.status, p.started_at), (PipelineStatus::Completed, Some(earlier.as_datetime())));
    // One query for a pipeline and its input.
    let (p, input) = pipelines::get_with_input(&mut conn, paused).expect("get").expect("row");
    assert_eq!((p.id, input), (paused, json!({"input": "w"})));
    assert!(pipelines::get_with_input(&mut conn, cloacina::models::PipelineExecutionId::new()).expect("get").is_none());
});

//! `task_executions`, `task_execution_metadata`, `recovery_events`: claims, leases, fenced
//! completion, retries and recovery.

use std::time::Duration;

use serde_json::json;

use crate::dal_pipelines::{pipeline, versions};
use crate::harness::backend_test;
use cloacina::dal::task_executions as tasks;
use cloacina::dal::{pipeline_executions as pipelines, recovery_events, task_execution_metadata as metadata};
use cloacina::database::UniversalTimestamp;
use cloacina::models::{PipelineStatus, RecoveredTask, TaskExecution, TaskStatus};

const LEASE: Duration = Duration::from_secs(30);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn claim(
    conn: &mut cloacina::database::AnyConnection,
    runner: &str,
    n: u32,
    now: UniversalTimestamp,
) -> Vec<TaskExecution> {
    tasks::claim_ready(conn, runner, &versions(), n, LEASE, now).expect("claim")
}

backend_test!(claim_takes_ready_tasks_oldest_first_up_to_the_limit, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let newer = pipelines::create(
        &mut conn,
        cloacina::models::PipelineExecutionId::new(),
        &pipeline("w", 2, 0),
        now.plus(secs(1)),
    )
    .expect("create newer");
    let older = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 2), now)
        .expect("create older");
    let later = now.plus(secs(2));
    let got = claim(&mut conn, "r1", 2, later);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got.iter().filter(|t| t.pipeline_execution_id == older).count(),
        1,
        "the older pipeline's task comes first"
    );
    for task in &got {
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.claimed_by.as_deref(), Some("r1"));
        assert_eq!(task.lease_expires_at, Some(later.plus(LEASE).as_datetime()));
        assert_eq!(task.started_at, Some(later.as_datetime()));
    }
    // One Ready task is left (of the newer pipeline); NotStarted tasks are never claimed.
    let rest = claim(&mut conn, "r2", 10, later);
    assert_eq!(rest.iter().map(|t| t.pipeline_execution_id).collect::<Vec<_>>(), vec![newer]);
    assert!(claim(&mut conn, "r2", 10, later).is_empty());
    assert!(claim(&mut conn, "r2", 0, later).is_empty());
});

backend_test!(claim_takes_only_the_versions_asked_for_and_skips_paused_pipelines, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let mut newer_definition = pipeline("w", 2, 0);
    newer_definition.workflow_version = "v2".to_owned();
    let v2 = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &newer_definition, now)
        .expect("create v2");
    let v1 = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 2, 0), now)
        .expect("create v1");
    let paused = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 2, 0), now)
        .expect("create paused");
    assert!(pipelines::transition(&mut conn, paused, PipelineStatus::Pending, PipelineStatus::Paused, None, now)
        .expect("pause"));
    // A runner with only v1 takes v1's tasks, never v2's (they wait for a runner that has v2).
    let got = claim(&mut conn, "old-runner", 10, now);
    assert_eq!(got.iter().map(|t| t.pipeline_execution_id).collect::<Vec<_>>(), vec![v1, v1]);
    assert!(tasks::claim_ready(&mut conn, "nobody", &[], 10, LEASE, now).expect("claim").is_empty());
    let v2_runner = vec!["v2".to_owned(), "v1".to_owned()];
    let got = tasks::claim_ready(&mut conn, "new-runner", &v2_runner, 10, LEASE, now).expect("claim");
    assert_eq!(got.iter().map(|t| t.pipeline_execution_id).collect::<Vec<_>>(), vec![v2, v2]);
    // The paused pipeline's tasks are taken once it runs again.
    assert!(pipelines::transition(&mut conn, paused, PipelineStatus::Paused, PipelineStatus::Running, None, now)
        .expect("resume"));
    assert_eq!(claim(&mut conn, "old-runner", 10, now).len(), 2);
});

backend_test!(completion_is_fenced_on_the_claim_and_atomic, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    let task = claim(&mut conn, "r1", 1, now).remove(0);
    assert!(!tasks::complete(&mut conn, task.id, "intruder", &json!({"x": 1}), now).expect("fenced"));
    assert_eq!(metadata::output_of(&mut conn, task.id).expect("meta"), None, "a lost claim writes nothing");
    assert!(tasks::complete(&mut conn, task.id, "r1", &json!({"x": 2}), now).expect("complete"));
    assert!(!tasks::complete(&mut conn, task.id, "r1", &json!({"x": 3}), now).expect("only once"));
    let row = tasks::get(&mut conn, task.id).expect("get").expect("row");
    assert_eq!(
        (row.status, row.completed_at, row.lease_expires_at),
        (TaskStatus::Completed, Some(now.as_datetime()), None)
    );
    assert_eq!(metadata::output_of(&mut conn, task.id).expect("meta"), Some(json!({"x": 2})));
    let outputs = metadata::outputs_for_pipeline(&mut conn, task.pipeline_execution_id).expect("outputs");
    assert_eq!(outputs, vec![("task_00000".to_owned(), json!({"x": 2}))]);
    let outcomes = tasks::outcomes(&mut conn, task.pipeline_execution_id).expect("outcomes");
    let got: Vec<_> = outcomes.iter().map(|o| (o.task_name.as_str(), o.status, o.attempt)).collect();
    assert_eq!(got, vec![("task_00000", TaskStatus::Completed, 1)]);
    assert_eq!((outcomes[0].started_at, outcomes[0].completed_at), (Some(now.as_datetime()), Some(now.as_datetime())));
});

backend_test!(a_batch_of_completions_is_fenced_task_by_task, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let pipeline_id =
        pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 3, 0), now)
            .expect("create");
    let mine = claim(&mut conn, "r1", 2, now);
    let theirs = claim(&mut conn, "r2", 1, now).remove(0);
    let batch =
        vec![(mine[0].id, json!({"n": 0})), (theirs.id, json!({"stolen": true})), (mine[1].id, json!({"n": 1}))];
    let recorded = tasks::complete_all(&mut conn, "r1", &batch, now).expect("batch");
    assert_eq!(recorded, vec![mine[0].id, mine[1].id], "only the claims r1 holds, in input order");
    assert_eq!(tasks::get(&mut conn, theirs.id).expect("get").expect("row").status, TaskStatus::Running);
    assert_eq!(metadata::output_of(&mut conn, theirs.id).expect("meta"), None, "a lost claim writes nothing");
    for (i, task) in mine.iter().enumerate() {
        assert_eq!(tasks::get(&mut conn, task.id).expect("get").expect("row").status, TaskStatus::Completed);
        assert_eq!(metadata::output_of(&mut conn, task.id).expect("meta"), Some(json!({"n": i})));
    }
    assert!(tasks::complete_all(&mut conn, "r1", &batch, now).expect("again").is_empty(), "each only once");
    assert!(tasks::complete_all(&mut conn, "r1", &[], now).expect("empty").is_empty());
    assert_eq!(metadata::outputs_for_pipeline(&mut conn, pipeline_id).expect("outputs").len(), 2);
});

backend_test!(failure_and_release_are_fenced_on_the_claim, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 2, 0), now)
        .expect("create");
    let got = claim(&mut conn, "r1", 2, now);
    assert!(!tasks::fail(&mut conn, got[0].id, "r2", "nope", now).expect("fenced"));
    assert!(tasks::fail(&mut conn, got[0].id, "r1", "bad input", now).expect("fail"));
    let failed = tasks::get(&mut conn, got[0].id).expect("get").expect("row");
    assert_eq!((failed.status, failed.error_details.as_deref()), (TaskStatus::Failed, Some("bad input")));
    assert!(!tasks::release(&mut conn, got[1].id, "r2", "cut short", now).expect("fenced"));
    assert!(tasks::release(&mut conn, got[1].id, "r1", "cut short", now).expect("release"));
    let again = claim(&mut conn, "r2", 5, now);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id, again[0].attempt, again[0].max_attempts),
        (got[1].id, 2, got[1].max_attempts + 1),
        "a release numbers the next execution anew but does not charge the cut-short attempt"
    );
    let events = recovery_events::list_for_pipeline(&mut conn, got[1].pipeline_execution_id).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].recovery_type.as_str(), events[0].task_execution_id),
        (recovery_events::TASK_RELEASED, Some(got[1].id))
    );
});

backend_test!(a_retry_waits_as_a_ready_row_until_retry_at, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    let task = claim(&mut conn, "r1", 1, now).remove(0);
    let retry_at = now.plus(secs(60));
    assert!(!tasks::schedule_retry(&mut conn, task.id, "r2", "flaky", retry_at, now).expect("fenced"));
    assert!(tasks::schedule_retry(&mut conn, task.id, "r1", "flaky", retry_at, now).expect("retry"));
    let row = tasks::get(&mut conn, task.id).expect("get").expect("row");
    assert_eq!((row.status, row.attempt, row.claimed_by.clone()), (TaskStatus::Ready, 2, None));
    assert_eq!(row.retry_at, Some(retry_at.as_datetime()));
    assert!(claim(&mut conn, "r1", 1, now.plus(secs(59))).is_empty(), "not claimable before retry_at");
    let again = claim(&mut conn, "r1", 1, retry_at);
    assert_eq!((again.len(), again[0].attempt, again[0].retry_at), (1, 2, None));
});

backend_test!(lease_renewal_keeps_only_what_the_runner_holds, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 2, 0), now)
        .expect("create");
    let got = claim(&mut conn, "r1", 2, now);
    let ids: Vec<_> = got.iter().map(|t| t.id).collect();
    let theirs = tasks::renew_leases(&mut conn, "r2", &ids, now.plus(secs(90)), now).expect("renew");
    assert_eq!(theirs, tasks::Renewal::default(), "nothing renewed, nothing busy");
    assert_eq!(theirs.ended(&ids).collect::<Vec<_>>(), ids, "r2 holds none of them");
    assert!(tasks::complete(&mut conn, ids[1], "r1", &json!({}), now).expect("complete"));
    let held = tasks::renew_leases(&mut conn, "r1", &ids, now.plus(secs(90)), now).expect("renew");
    assert_eq!((held.renewed, held.busy), (vec![ids[0]], vec![]));
    let row = tasks::get(&mut conn, ids[0]).expect("get").expect("row");
    assert_eq!(row.lease_expires_at, Some(now.plus(secs(90)).as_datetime()));
});

backend_test!(expired_leases_are_requeued_or_failed_with_a_recovery_event, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 2, 0), now)
        .expect("create");
    let got = claim(&mut conn, "dead-runner", 2, now);
    // The second task is already on its last attempt (max_attempts is 2 in the fixture).
    assert!(tasks::schedule_retry(&mut conn, got[1].id, "dead-runner", "flaky", now, now).expect("retry"));
    let last = claim(&mut conn, "dead-runner", 1, now).remove(0);
    assert_eq!(last.attempt, 2);
    // Nothing has expired yet.
    assert!(tasks::expire_leases(&mut conn, &versions(), now.plus(secs(29)), 10).expect("early").is_empty());
    let later = now.plus(secs(31));
    let mut recovered = tasks::expire_leases(&mut conn, &versions(), later, 10).expect("expire");
    recovered.sort_by_key(|r| r.task_execution_id == last.id);
    assert_eq!(
        recovered,
        vec![
            RecoveredTask {
                task_execution_id: got[0].id,
                pipeline_execution_id: p,
                previous_claimant: Some("dead-runner".into()),
                new_status: TaskStatus::Ready,
                attempt: 2
            },
            RecoveredTask {
                task_execution_id: last.id,
                pipeline_execution_id: p,
                previous_claimant: Some("dead-runner".into()),
                new_status: TaskStatus::Failed,
                attempt: 2
            },
        ]
    );
    // The dead runner's late completion is refused: it no longer holds the claim.
    assert!(!tasks::complete(&mut conn, got[0].id, "dead-runner", &json!({}), later).expect("fenced"));
    let events = recovery_events::list_for_pipeline(&mut conn, p).expect("events");
    let mut kinds: Vec<_> = events.iter().map(|e| e.recovery_type.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, [recovery_events::TASK_FAILED, recovery_events::TASK_REQUEUED]);
    assert!(events.iter().all(|e| e.details.as_ref().is_some_and(|d| d["previous_claimant"] == "dead-runner")));
    // Another runner picks the requeued task up; nothing is recovered twice.
    assert_eq!(claim(&mut conn, "r2", 10, later).iter().map(|t| t.id).collect::<Vec<_>>(), vec![got[0].id]);
    assert!(tasks::expire_leases(&mut conn, &versions(), later, 10).expect("again").is_empty());
});

backend_test!(only_versions_the_recoverer_has_are_expired, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    claim(&mut conn, "dead-runner", 1, now);
    let later = now.plus(secs(31));
    let other_version = vec!["someone-elses-version".to_owned()];
    assert!(tasks::expire_leases(&mut conn, &other_version, later, 10).expect("expire").is_empty());
    assert_eq!(tasks::expire_leases(&mut conn, &versions(), later, 10).expect("expire").len(), 1);
});

backend_test!(a_renewed_lease_is_not_expired, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 0), now)
        .expect("create");
    let task = claim(&mut conn, "r1", 1, now).remove(0);
    tasks::renew_leases(&mut conn, "r1", &[task.id], now.plus(secs(120)), now.plus(secs(20))).expect("renew");
    assert!(tasks::expire_leases(&mut conn, &versions(), now.plus(secs(60)), 10).expect("expire").is_empty());
});

backend_test!(not_started_tasks_resolve_once_and_cancel, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 3), now)
        .expect("create");
    let rows = tasks::list_for_pipeline(&mut conn, p).expect("list");
    let waiting: Vec<_> = rows.iter().filter(|r| r.status == TaskStatus::NotStarted).collect();
    let names: Vec<String> = waiting.iter().map(|r| r.task_name.clone()).collect();
    assert_eq!(
        tasks::resolve_not_started(&mut conn, p, &names[..1], TaskStatus::Ready, now).expect("ready"),
        names[..1].to_vec()
    );
    assert!(tasks::resolve_not_started(&mut conn, p, &names[..1], TaskStatus::Skipped, now).expect("again").is_empty());
    assert_eq!(
        tasks::resolve_not_started(&mut conn, p, &names[1..2], TaskStatus::Skipped, now).expect("skip").len(),
        1
    );
    let skipped = tasks::get(&mut conn, waiting[1].id).expect("get").expect("row");
    assert_eq!((skipped.status, skipped.completed_at), (TaskStatus::Skipped, Some(now.as_datetime())));
    // Cancel hits the two Ready tasks and the last NotStarted one, not the Skipped one.
    assert_eq!(tasks::cancel_unstarted(&mut conn, p, now).expect("cancel"), 3);
    assert!(claim(&mut conn, "r1", 10, now).is_empty());
});

backend_test!(not_started_tasks_are_claimed_directly_only_in_an_active_pipeline, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 3), now)
        .expect("create");
    let rows = tasks::list_for_pipeline(&mut conn, p).expect("list");
    let ready = rows.iter().find(|r| r.status == TaskStatus::Ready).expect("ready row").task_name.clone();
    let waiting: Vec<String> =
        rows.iter().filter(|r| r.status == TaskStatus::NotStarted).map(|r| r.task_name.clone()).collect();
    // Paused: nothing is claimed, and the rows stay NotStarted.
    let active = [PipelineStatus::Pending];
    assert!(pipelines::transition_from_any(&mut conn, p, &active, PipelineStatus::Paused, now).expect("pause"));
    assert!(tasks::claim_not_started(&mut conn, p, &waiting, "r1", secs(30), now).expect("paused").is_empty());
    assert!(pipelines::transition(&mut conn, p, PipelineStatus::Paused, PipelineStatus::Running, None, now)
        .expect("resume"));
    // Active: only NotStarted rows are taken (not the Ready one), once, stamped with the claim time.
    let mut asked = waiting[..2].to_vec();
    asked.push(ready);
    let claimed = tasks::claim_not_started(&mut conn, p, &asked, "r1", secs(30), now).expect("claim");
    let mut names: Vec<_> = claimed.iter().map(|t| t.task_name.clone()).collect();
    names.sort();
    assert_eq!(names, waiting[..2].to_vec());
    assert!(claimed.iter().all(|t| t.status == TaskStatus::Running && t.claimed_by.as_deref() == Some("r1")));
    assert!(claimed.iter().all(|t| t.lease_expires_at == Some(now.plus(secs(30)).as_datetime())));
    assert_eq!(tasks::claimed_at(&mut conn, "r1", now).expect("by stamp").len(), 2);
    assert!(tasks::claim_not_started(&mut conn, p, &waiting, "r2", secs(30), now).expect("again").len() == 1);
});

backend_test!(lookups_by_name_and_unfinished_checks, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 2, 1), now)
        .expect("create");
    let names: Vec<String> = ["task_00000", "task_00002", "ghost"].iter().map(|s| (*s).to_owned()).collect();
    let mut found = tasks::by_name(&mut conn, p, &names).expect("by name");
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let statuses: Vec<_> = found.iter().map(|(n, _, s)| (n.as_str(), *s)).collect();
    assert_eq!(statuses, vec![("task_00000", TaskStatus::Ready), ("task_00002", TaskStatus::NotStarted)]);
    assert!(tasks::has_unfinished(&mut conn, p).expect("unfinished"));
    assert!(!tasks::any_in_status(&mut conn, p, &[TaskStatus::Failed]).expect("failed"));
    let got = claim(&mut conn, "r1", 2, now);
    assert!(tasks::complete(&mut conn, got[0].id, "r1", &json!({"a": 1}), now).expect("complete"));
    assert!(tasks::fail(&mut conn, got[1].id, "r1", "x", now).expect("fail"));
    let outputs =
        metadata::outputs_of(&mut conn, p, &[got[0].task_name.clone(), got[1].task_name.clone()]).expect("out");
    assert_eq!(outputs, vec![(got[0].task_name.clone(), json!({"a": 1}))]);
    assert!(tasks::any_in_status(&mut conn, p, &[TaskStatus::Failed]).expect("failed"));
    assert_eq!(tasks::cancel_unstarted(&mut conn, p, now).expect("cancel"), 1);
    assert!(!tasks::has_unfinished(&mut conn, p).expect("finished"));
});

backend_test!(name_lists_longer_than_sqlites_variable_limit_are_accepted, |t| {
    // SQLite binds each value of an `IN` list and refuses more than 32,766 variables; a fan-out
    // that wide (or the end of a pipeline that wide) must still work.
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 1, 2), now)
        .expect("create");
    let mut names: Vec<String> = (0..40_000).map(|i| format!("absent_{i}")).collect();
    names.push("task_00001".to_owned());
    assert_eq!(tasks::by_name(&mut conn, p, &names).expect("by name").len(), 1);
    assert!(metadata::outputs_of(&mut conn, p, &names).expect("outputs").is_empty());
    assert_eq!(tasks::resolve_not_started(&mut conn, p, &names, TaskStatus::Ready, now).expect("ready").len(), 1);
    names.push("task_00002".to_owned());
    let claimed = tasks::claim_not_started(&mut conn, p, &names, "r1", secs(30), now).expect("claim");
    assert_eq!(claimed.iter().map(|c| c.task_name.as_str()).collect::<Vec<_>>(), vec!["task_00002"]);
});

backend_test!(every_attempt_is_in_the_history_with_its_outcome_runner_and_times, |t| {
    use cloacina::dal::task_attempts;
    use cloacina::models::AttemptOutcome::{Completed, Failed, LeaseExpired, Released, Retried, Running};
    let mut conn = t.conn();
    let t0 = UniversalTimestamp::now();
    let at = |s: u64| t0.plus(secs(s));
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("w", 3, 0), t0)
        .expect("create");
    let got = claim(&mut conn, "r1", 3, t0);
    let (a, b, c) = (got[0].id, got[1].id, got[2].id);
    // a: an error that is retried, then a completion on another runner.
    assert!(!tasks::schedule_retry(&mut conn, a, "intruder", "x", t0, at(1)).expect("fenced"));
    assert!(tasks::schedule_retry(&mut conn, a, "r1", "flaky", t0, at(1)).expect("retry"));
    // b: given back cut short, then its next runner dies, then it fails for good.
    assert!(tasks::release(&mut conn, b, "r1", "shutdown", at(1)).expect("release"));
    assert_eq!(claim(&mut conn, "r2", 2, at(2)).len(), 2);
    assert!(tasks::complete(&mut conn, a, "r2", &json!({}), at(3)).expect("complete"));
    // b's lease (r2) and c's (r1) expire: both go back to Ready.
    assert_eq!(tasks::expire_leases(&mut conn, &versions(), at(40), 10).expect("expire").len(), 2);
    assert_eq!(claim(&mut conn, "r3", 2, at(41)).len(), 2);
    assert!(tasks::fail(&mut conn, b, "r3", "bad", at(42)).expect("fail"));
    // c runs on r3 now.
    let rows = tasks::list_for_pipeline(&mut conn, p).expect("tasks");
    let history = task_attempts::history(&mut conn, p, &rows).expect("history");
    let name = |id| ["a", "b", "c"][[a, b, c].iter().position(|x| *x == id).expect("one of ours")];
    let got: Vec<_> = history
        .iter()
        .map(|h| {
            let error = h.error_details.as_deref().map(|e| e.split(' ').next().unwrap_or_default().to_owned());
            let since = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| (t - t0.as_datetime()).num_seconds());
            (
                name(h.task_execution_id),
                h.attempt,
                h.outcome,
                h.runner.as_deref(),
                error,
                since(h.started_at),
                since(h.ended_at),
            )
        })
        .collect();
    let mut want = vec![
        ("a", 1, Retried, Some("r1"), Some("flaky".to_owned()), Some(0), Some(1)),
        ("a", 2, Completed, Some("r2"), None, Some(2), Some(3)),
        ("b", 1, Released, Some("r1"), Some("shutdown".to_owned()), Some(0), Some(1)),
        ("b", 2, LeaseExpired, Some("r2"), Some("lease".to_owned()), Some(2), Some(40)),
        ("b", 3, Failed, Some("r3"), Some("bad".to_owned()), Some(41), Some(42)),
        ("c", 1, LeaseExpired, Some("r1"), Some("lease".to_owned()), Some(0), Some(40)),
        ("c", 2, Running, Some("r3"), None, Some(41), None),
    ];
    // History follows the tasks' creation order, which need not be the claim order.
    let order: Vec<&str> = rows.iter().map(|r| name(r.id)).collect();
    want.sort_by_key(|w| (order.iter().position(|n| *n == w.0), w.1));
    assert_eq!(got, want);
});

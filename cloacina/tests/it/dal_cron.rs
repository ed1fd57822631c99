//! `cron_schedules` and `cron_executions`: due schedules, compare-and-set advance, exactly-once
//! fire-time claims and orphan takeover.

use std::time::Duration;

use serde_json::json;

use crate::dal_pipelines::pipeline;
use crate::harness::backend_test;
use cloacina::dal::cron_schedules::{self as schedules, NewSchedule};
use cloacina::dal::{cron_executions as fires, pipeline_executions as pipelines};
use cloacina::database::UniversalTimestamp;
use cloacina::models::CatchupPolicy;

fn schedule(next: UniversalTimestamp, enabled: bool) -> NewSchedule {
    NewSchedule {
        workflow_name: "etl".into(),
        cron_expression: "*/5 * * * *".into(),
        timezone: "Europe/Berlin".into(),
        context: json!({"from": "cron"}),
        enabled,
        catchup_policy: CatchupPolicy::RunOnce,
        max_catchup: 10,
        start_at: None,
        end_at: None,
        next_run_at: Some(next.as_datetime()),
        trigger_name: None,
    }
}

fn etl() -> Vec<String> {
    vec!["etl".to_owned()]
}

backend_test!(due_schedules_and_compare_and_set_advance, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let due = schedules::insert(&mut conn, &schedule(now, true), now).expect("due");
    schedules::insert(&mut conn, &schedule(now.plus(Duration::from_secs(300)), true), now).expect("later");
    schedules::insert(&mut conn, &schedule(now, false), now).expect("paused");
    let found = schedules::due(&mut conn, &etl(), now, 10).expect("due");
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), vec![due]);
    assert_eq!(
        (found[0].catchup_policy, found[0].timezone.as_str(), found[0].enabled),
        (CatchupPolicy::RunOnce, "Europe/Berlin", true)
    );
    assert_eq!(schedules::next_due_time(&mut conn, &etl()).expect("next"), Some(now.as_datetime()));
    let next = now.plus(Duration::from_secs(300)).as_datetime();
    assert!(schedules::advance(&mut conn, due, now.as_datetime(), Some(next), Some(now.as_datetime()), now)
        .expect("advance"));
    assert!(!schedules::advance(&mut conn, due, now.as_datetime(), Some(next), Some(now.as_datetime()), now)
        .expect("lost race"));
    assert!(schedules::due(&mut conn, &etl(), now, 10).expect("due").is_empty());
    let s = schedules::get(&mut conn, due).expect("get").expect("row");
    assert_eq!((s.next_run_at, s.last_run_at), (Some(next), Some(now.as_datetime())));
});

backend_test!(pause_resume_and_delete, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = schedules::insert(&mut conn, &schedule(now, true), now).expect("insert");
    assert!(schedules::set_enabled(&mut conn, id, false, None, now).expect("pause"));
    assert!(!schedules::set_enabled(&mut conn, id, false, None, now).expect("pause twice"));
    assert!(schedules::due(&mut conn, &etl(), now, 10).expect("due").is_empty());
    assert!(schedules::set_enabled(&mut conn, id, true, Some(now.as_datetime()), now).expect("resume"));
    assert_eq!(schedules::list(&mut conn).expect("list").len(), 1);
    assert!(schedules::delete(&mut conn, id).expect("delete"));
    assert!(schedules::get(&mut conn, id).expect("get").is_none());
});

backend_test!(a_fire_time_is_claimed_once_and_orphans_are_taken_over, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = schedules::insert(&mut conn, &schedule(now, true), now).expect("insert");
    let fire = now.as_datetime();
    let won = fires::claim(&mut conn, id, fire, "r1", now).expect("claim").expect("first claim wins");
    assert_eq!(fires::claim(&mut conn, id, fire, "r2", now).expect("claim"), None, "second claim loses");
    // r1 died before creating the pipeline: after the grace period r2 takes the fire time over.
    assert!(fires::reclaim_orphaned(&mut conn, "r2", &etl(), now, now, 10).expect("too early").is_empty());
    let later = now.plus(Duration::from_secs(120));
    let taken = fires::reclaim_orphaned(&mut conn, "r2", &etl(), now.plus(Duration::from_secs(60)), later, 10)
        .expect("reclaim");
    assert_eq!(taken.iter().map(|f| (f.id, f.claimed_by.as_str())).collect::<Vec<_>>(), vec![(won, "r2")]);
    assert!(fires::reclaim_orphaned(&mut conn, "r3", &etl(), now.plus(Duration::from_secs(60)), later, 10)
        .expect("again")
        .is_empty());
    // Runners without the schedule's workflow never take its orphans.
    let much_later = later.plus(Duration::from_secs(600));
    let other = vec!["other".to_owned()];
    assert!(fires::reclaim_orphaned(&mut conn, "r4", &other, much_later, much_later, 10).expect("other").is_empty());
    // The stalled first claimant can no longer link a pipeline; the new one can, exactly once.
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("etl", 1, 0), later)
        .expect("create");
    assert!(!fires::link_pipeline(&mut conn, won, "r1", p, later).expect("stale claimant"));
    assert!(fires::link_pipeline(&mut conn, won, "r2", p, later).expect("link"));
    let second = cloacina::models::PipelineExecutionId::new();
    assert!(!fires::link_pipeline(&mut conn, won, "r2", second, later).expect("twice"));
    let history = fires::list_for_schedule(&mut conn, id, 10, 0).expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].pipeline_execution_id, Some(p));
});

backend_test!(fire_counts_tell_started_from_lost, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = schedules::insert(&mut conn, &schedule(now, true), now).expect("insert");
    let at = |minutes: i64| now.as_datetime() + chrono::Duration::minutes(minutes);
    let started = fires::claim(&mut conn, id, at(1), "r1", now).expect("claim").expect("won");
    fires::claim(&mut conn, id, at(2), "r1", now).expect("claim").expect("won"); // never started
    let p = pipelines::create(&mut conn, cloacina::models::PipelineExecutionId::new(), &pipeline("etl", 1, 0), now)
        .expect("create");
    assert!(fires::link_pipeline(&mut conn, started, "r1", p, now).expect("link"));
    let later = now.plus(Duration::from_secs(60));
    let counts = fires::counts_since(&mut conn, now, later).expect("counts");
    assert_eq!((counts.total, counts.started, counts.lost), (2, 1, 1));
    // Claimed after `lost_before`: not lost yet, only waiting.
    assert_eq!(fires::counts_since(&mut conn, now, now).expect("counts").lost, 0);
    assert_eq!(fires::counts_since(&mut conn, later, later).expect("counts").total, 0, "none since");
});

backend_test!(racing_claims_of_one_fire_time_have_one_winner, |t| {
    let now = UniversalTimestamp::now();
    let id = schedules::insert(&mut t.conn(), &schedule(now, true), now).expect("insert");
    let winners: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let db = &t.db;
                s.spawn(move || {
                    let mut conn = db.get().expect("conn");
                    fires::claim(&mut conn, id, now.as_datetime(), &format!("r{i}"), now).expect("claim").is_some()
                })
            })
            .collect();
        handles.into_iter().map(|h| usize::from(h.join().expect("thread"))).sum()
    });
    assert_eq!(winners, 1);
});

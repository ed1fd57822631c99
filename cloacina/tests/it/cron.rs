//! The cron service on both backends, driven by a manual clock: catch-up after downtime, racing
//! runners (one pipeline per fire time), pause and resume, daylight-saving changes, orphaned
//! fire times, a runner-wide catch-up cap, and bad schedules refused.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::engine::{config, engine_test, wait_for};
use cloacina::cron::{Clock, ManualClock, ScheduleConfig, ScheduleError};
use cloacina::dal::cron_executions;
use cloacina::dal::pipeline_executions::PipelineFilter;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::models::{CatchupPolicy, CronScheduleId};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::Context;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

fn report() -> Workflow {
    Workflow::builder("report")
        .simple_task("build", &[], |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("built", json!(true));
            Ok(ctx)
        })
        .build()
        .expect("workflow")
}

async fn cron_runner(t: &crate::harness::TestDb, clock: &ManualClock) -> DefaultRunner {
    DefaultRunner::builder(t.url.clone())
        .config(config(t))
        .workflow(report())
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .expect("runner")
}

/// The fire times a schedule has started pipelines for, oldest first. Waits until every claimed
/// fire time has its pipeline: with two runners, the loser of a fire time may advance the
/// schedule while the winner is still creating that fire time's pipeline.
async fn fired(runner: &DefaultRunner, id: CronScheduleId) -> Vec<DateTime<Utc>> {
    wait_for(|| async {
        runner.schedule_history(id, 1_000).await.expect("history").iter().all(|f| f.pipeline_execution_id.is_some())
    })
    .await;
    let mut history = runner.schedule_history(id, 1_000).await.expect("history");
    history.reverse();
    history.into_iter().map(|f| f.scheduled_time).collect()
}

/// Moves the clock and waits until the cron service has handled everything due by then.
async fn move_clock(runner: &DefaultRunner, clock: &ManualClock, to: DateTime<Utc>, ids: &[CronScheduleId]) {
    clock.set(to);
    for &id in ids {
        wait_for(|| async {
            let s = runner.get_schedule(id).await.expect("schedule");
            !s.enabled || s.next_run_at.is_none_or(|next| next > to)
        })
        .await;
    }
}

engine_test!(bad_schedules_are_refused_and_nothing_is_stored, |t| {
    let clock = ManualClock::new(utc("2026-01-01T00:00:00Z"));
    let runner = cron_runner(&t, &clock).await;
    let cases = [
        (ScheduleConfig::new("report", "not a cron"), "invalid cron expression"),
        (ScheduleConfig::new("report", "0 25 * * *"), "invalid cron expression"),
        (ScheduleConfig::new("report", "0 0 31 2 *"), "never fires"),
        (ScheduleConfig::new("report", "0 * * * *").timezone("Europe/Atlantis"), "unknown time zone"),
        (
            ScheduleConfig::new("report", "0 * * * *")
                .start_at(utc("2026-02-01T00:00:00Z"))
                .end_at(utc("2026-01-15T00:00:00Z")),
            "ends",
        ),
        (ScheduleConfig::new("report", "0 * * * *").end_at(utc("2025-12-01T00:00:00Z")), "end_at has passed"),
        (ScheduleConfig::new("nope", "0 * * * *"), "no workflow named `nope`"),
    ];
    for (config, expected) in cases {
        let err = runner.create_schedule(config.clone()).await.expect_err("refused");
        assert!(err.to_string().contains(expected), "{config:?}: {err}");
        assert_eq!(err.kind(), cloacina::ErrorKind::InvalidInput);
    }
    let err = runner.create_schedule(ScheduleConfig::new("report", "61 * * * *")).await.expect_err("refused");
    assert!(matches!(err, cloacina::Error::Schedule(ScheduleError::InvalidExpression { .. })), "{err}");
    assert!(runner.list_schedules().await.expect("list").is_empty());
    runner.shutdown().await.expect("shutdown");
});

engine_test!(catch_up_policies_after_downtime, |t| {
    let clock = ManualClock::new(utc("2026-01-01T09:59:00Z"));
    let first = cron_runner(&t, &clock).await;
    let mut ids = Vec::new();
    for (policy, max) in [(CatchupPolicy::Skip, 10), (CatchupPolicy::RunOnce, 10), (CatchupPolicy::RunAll, 3)] {
        let config = ScheduleConfig::new("report", "0 * * * *").catchup(policy).max_catchup(max);
        let s = first.create_schedule(config).await.expect("create");
        assert_eq!(s.next_run_at, Some(utc("2026-01-01T10:00:00Z")));
        ids.push(s.id);
    }
    first.shutdown().await.expect("shutdown");
    drop(first);
    // Every runner is down from 09:59 to 15:30: 10:00 … 15:00 (six fire times) are missed.
    clock.set(utc("2026-01-01T15:30:00Z"));
    let runner = cron_runner(&t, &clock).await;
    move_clock(&runner, &clock, utc("2026-01-01T15:30:00Z"), &ids).await;
    let h = |s: &str| utc(&format!("2026-01-01T{s}:00:00Z"));
    assert_eq!(fired(&runner, ids[0]).await, Vec::<DateTime<Utc>>::new(), "skip");
    assert_eq!(fired(&runner, ids[1]).await, vec![h("15")], "run_once");
    assert_eq!(fired(&runner, ids[2]).await, vec![h("13"), h("14"), h("15")], "run_all, at most 3");
    for &id in &ids {
        let s = runner.get_schedule(id).await.expect("schedule");
        assert_eq!(s.next_run_at, Some(h("16")));
    }
    // Back on time: 16:00 runs under every policy.
    move_clock(&runner, &clock, utc("2026-01-01T16:00:05Z"), &ids).await;
    for &id in &ids {
        assert_eq!(fired(&runner, id).await.last(), Some(&h("16")));
    }
    // The pipelines run like any other.
    wait_for(|| async {
        let done = runner
            .list_executions(PipelineFilter { status: Some(WorkflowStatus::Completed), ..Default::default() })
            .await
            .expect("list");
        done.len() == 1 + 3 + 3
    })
    .await;
    runner.shutdown().await.expect("shutdown");
});

engine_test!(racing_runners_start_one_pipeline_per_fire_time, |t| {
    let clock = ManualClock::new(utc("2026-01-01T00:00:30Z"));
    let (a, b) = (cron_runner(&t, &clock).await, cron_runner(&t, &clock).await);
    let config = ScheduleConfig::new("report", "* * * * *").catchup(CatchupPolicy::RunAll).max_catchup(100);
    let id = a.create_schedule(config).await.expect("create").id;
    // Both runners wake on every clock move and race for each fire time.
    for minute in 1..=5 {
        move_clock(&a, &clock, utc(&format!("2026-01-01T00:0{minute}:00Z")), &[id]).await;
    }
    // Then a jump: both plan the same ten missed minutes at once.
    move_clock(&a, &clock, utc("2026-01-01T00:15:10Z"), &[id]).await;
    let times = fired(&a, id).await;
    let expected: Vec<_> = (1..=15).map(|m| utc("2026-01-01T00:00:00Z") + Duration::minutes(m)).collect();
    assert_eq!(times, expected, "one claimed fire time per minute");
    let pipelines = a
        .list_executions(PipelineFilter { workflow_name: Some("report".into()), limit: 1_000, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(pipelines.len(), 15, "exactly one pipeline per fire time");
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
});

engine_test!(paused_schedules_fire_nothing_and_resume_from_now, |t| {
    let clock = ManualClock::new(utc("2026-01-01T09:30:00Z"));
    let runner = cron_runner(&t, &clock).await;
    let config = ScheduleConfig::new("report", "0 * * * *").catchup(CatchupPolicy::RunAll);
    let id = runner.create_schedule(config).await.expect("create").id;
    assert!(runner.pause_schedule(id).await.expect("pause"));
    assert!(!runner.pause_schedule(id).await.expect("pause twice"));
    let paused = runner.get_schedule(id).await.expect("get");
    assert_eq!((paused.enabled, paused.next_run_at), (false, None));
    // While paused, upcoming fire times are those it would have if resumed now.
    assert_eq!(
        runner.next_fire_times(id, 2).await.expect("upcoming"),
        vec![utc("2026-01-01T10:00:00Z"), utc("2026-01-01T11:00:00Z")]
    );
    // A witness schedule fires at the same times: once it has handled 13:00, the service has
    // looked at the paused one too.
    let witness = ScheduleConfig::new("report", "0 * * * *").catchup(CatchupPolicy::RunOnce);
    let witness = runner.create_schedule(witness).await.expect("witness").id;
    move_clock(&runner, &clock, utc("2026-01-01T13:30:00Z"), &[witness]).await;
    assert_eq!(fired(&runner, witness).await, vec![utc("2026-01-01T13:00:00Z")], "the service ran");
    assert!(fired(&runner, id).await.is_empty(), "nothing fires while paused");
    assert!(runner.resume_schedule(id).await.expect("resume"));
    assert!(!runner.resume_schedule(id).await.expect("resume twice"));
    assert_eq!(runner.get_schedule(id).await.expect("get").next_run_at, Some(utc("2026-01-01T14:00:00Z")));
    move_clock(&runner, &clock, utc("2026-01-01T14:00:01Z"), &[id]).await;
    assert_eq!(fired(&runner, id).await, vec![utc("2026-01-01T14:00:00Z")], "times passed while paused are not run");

    // Update: a new expression takes effect from now; delete removes it and its history.
    let updated = runner
        .update_schedule(id, ScheduleConfig::new("report", "30 * * * *").timezone("Europe/Berlin"))
        .await
        .expect("update");
    assert_eq!((updated.cron_expression.as_str(), updated.timezone.as_str()), ("30 * * * *", "Europe/Berlin"));
    assert_eq!(updated.next_run_at, Some(utc("2026-01-01T14:30:00Z")));
    assert!(runner.delete_schedule(id).await.expect("delete"));
    assert!(!runner.delete_schedule(id).await.expect("delete twice"));
    let err = runner.get_schedule(id).await.expect_err("gone");
    assert!(matches!(err, cloacina::Error::ScheduleNotFound(_)), "{err}");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(daylight_saving_changes_neither_double_fire_nor_skip, |t| {
    // New York, 2026: clocks go back on 1 November (01:00–02:00 happens twice) and forward on
    // 8 March (02:00–03:00 does not exist).
    let clock = ManualClock::new(utc("2026-11-01T03:50:00Z"));
    let runner = cron_runner(&t, &clock).await;
    let ny = |expr: &str| ScheduleConfig::new("report", expr).timezone("America/New_York");
    let hourly = runner.create_schedule(ny("0 * * * *")).await.expect("hourly").id;
    let daily = runner.create_schedule(ny("30 1 * * *")).await.expect("daily").id;
    // Walk the night in 10-minute steps, as time passes.
    let mut now = clock.now();
    while now < utc("2026-11-01T08:30:00Z") {
        now += Duration::minutes(10);
        move_clock(&runner, &clock, now, &[hourly, daily]).await;
    }
    assert_eq!(
        fired(&runner, hourly).await,
        vec![
            utc("2026-11-01T04:00:00Z"), // 00:00 EDT
            utc("2026-11-01T05:00:00Z"), // 01:00 EDT; 01:00 EST (06:00Z) is the same wall time: not again
            utc("2026-11-01T07:00:00Z"), // 02:00 EST
            utc("2026-11-01T08:00:00Z"), // 03:00 EST
        ]
    );
    assert_eq!(fired(&runner, daily).await, vec![utc("2026-11-01T05:30:00Z")], "01:30 once, in its first pass");

    runner.shutdown().await.expect("shutdown");
    drop(runner);

    // Spring, on a fresh runner started in March (a real clock never runs backwards).
    clock.set(utc("2026-03-08T05:00:00Z"));
    let runner = cron_runner(&t, &clock).await;
    let spring = runner.create_schedule(ny("30 2 * * *")).await.expect("spring").id;
    let mut now = clock.now();
    while now < utc("2026-03-09T12:00:00Z") {
        now += Duration::minutes(30);
        move_clock(&runner, &clock, now, &[spring]).await;
    }
    assert_eq!(
        fired(&runner, spring).await,
        vec![utc("2026-03-08T07:00:00Z"), utc("2026-03-09T06:30:00Z")],
        "02:30 does not exist on 8 March: it runs at the jump (03:00 EDT), not never"
    );
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_claimed_fire_time_without_a_pipeline_is_fired_again, |t| {
    let clock = ManualClock::new(utc("2026-01-01T10:00:30Z"));
    let runner = cron_runner(&t, &clock).await;
    let id = runner.create_schedule(ScheduleConfig::new("report", "0 * * * *")).await.expect("create").id;
    // A runner claimed 10:00 ten minutes ago and died before creating its pipeline.
    let (fire, claimed_at) = (utc("2026-01-01T10:00:00Z"), utc("2026-01-01T09:50:30Z"));
    let claimed =
        t.db.run(move |c| cron_executions::claim(c, id, fire, "dead-runner", claimed_at.into())).await.expect("claim");
    assert!(claimed.is_some());
    clock.set(utc("2026-01-01T10:01:00Z"));
    wait_for(|| async { runner.schedule_history(id, 10).await.expect("history")[0].pipeline_execution_id.is_some() })
        .await;
    let history = runner.schedule_history(id, 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].scheduled_time, history[0].claimed_by.as_str()), (fire, runner.runner_name()));
    let pipeline = history[0].pipeline_execution_id.expect("pipeline");
    wait_for(|| async { runner.get_execution_status(pipeline).await.ok() == Some(WorkflowStatus::Completed) }).await;
    runner.shutdown().await.expect("shutdown");
});

engine_test!(on_the_system_clock_the_service_wakes_at_each_fire_time, |t| {
    let runner =
        DefaultRunner::builder(t.url.clone()).config(config(&t)).workflow(report()).build().await.expect("runner");
    // Every second (six fields); the service sleeps until each fire time, it does not poll.
    let id = runner.create_schedule(ScheduleConfig::new("report", "* * * * * *")).await.expect("create").id;
    wait_for(|| async { runner.schedule_history(id, 10).await.expect("history").len() >= 3 }).await;
    assert!(runner.pause_schedule(id).await.expect("pause"));
    let times = fired(&runner, id).await;
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::seconds(1), "consecutive seconds, none twice: {times:?}");
    }
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_runner_wide_catch_up_cap_bounds_every_schedule, |t| {
    let clock = ManualClock::new(utc("2026-01-01T09:59:00Z"));
    let first = cron_runner(&t, &clock).await;
    let schedule = ScheduleConfig::new("report", "0 * * * *").catchup(CatchupPolicy::RunAll).max_catchup(10);
    let id = first.create_schedule(schedule).await.expect("create").id;
    first.shutdown().await.expect("shutdown");
    drop(first);
    // Down from 09:59 to 15:30; the next runner runs at most 2 missed fire times per schedule
    // (upstream's cron_max_catchup_executions), although the schedule allows 10.
    clock.set(utc("2026-01-01T15:30:00Z"));
    let capped = DefaultRunnerConfig { cron_max_catchup_executions: 2, ..config(&t) };
    let runner = DefaultRunner::builder(t.url.clone())
        .config(capped)
        .workflow(report())
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .expect("runner");
    move_clock(&runner, &clock, utc("2026-01-01T15:30:00Z"), &[id]).await;
    let h = |s: &str| utc(&format!("2026-01-01T{s}:00:00Z"));
    assert_eq!(fired(&runner, id).await, vec![h("14"), h("15")]);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(upstreams_cron_api_names_work, |t| {
    let clock = ManualClock::new(utc("2026-01-01T09:59:00Z"));
    let runner = cron_runner(&t, &clock).await;
    let id = runner.register_cron_workflow("report", "0 * * * *", "UTC").await.expect("register");
    assert_eq!(runner.list_cron_schedules(true, 10, 0).await.expect("list").len(), 1);
    runner.set_cron_schedule_enabled(id, false).await.expect("disable");
    assert!(runner.list_cron_schedules(true, 10, 0).await.expect("enabled only").is_empty());
    assert_eq!(runner.list_cron_schedules(false, 10, 0).await.expect("all").len(), 1);
    assert!(runner.list_cron_schedules(false, 10, 1).await.expect("offset").is_empty());
    let err = runner.list_cron_schedules(false, -1, 0).await.expect_err("negative limit");
    assert_eq!(err.kind(), cloacina::ErrorKind::InvalidInput, "{err}");
    runner.set_cron_schedule_enabled(id, true).await.expect("enable");
    runner.update_cron_schedule(id, Some("30 * * * *"), None).await.expect("update");
    let s = runner.get_cron_schedule(id).await.expect("get");
    assert_eq!((s.cron_expression.as_str(), s.timezone.as_str()), ("30 * * * *", "UTC"));
    assert_eq!(s.next_run_at, Some(utc("2026-01-01T10:30:00Z")));
    let bad = runner.update_cron_schedule(id, None, Some("Mars/Olympus")).await.expect_err("bad zone");
    assert!(bad.to_string().contains("time zone"), "{bad}");

    move_clock(&runner, &clock, utc("2026-01-01T10:30:01Z"), &[id]).await;
    assert_eq!(fired(&runner, id).await, vec![utc("2026-01-01T10:30:00Z")]);
    let history = runner.get_cron_execution_history(id, 10, 0).await.expect("history");
    assert_eq!(history.len(), 1);
    assert!(history[0].pipeline_execution_id.is_some());
    let stats = runner.get_cron_execution_stats(utc("2026-01-01T00:00:00Z")).await.expect("stats");
    assert_eq!((stats.total_executions, stats.successful_executions, stats.lost_executions), (1, 1, 0));
    assert_eq!(stats.success_rate, 100.0);
    runner.delete_cron_schedule(id).await.expect("delete");
    assert!(runner.list_cron_schedules(false, 10, 0).await.expect("list").is_empty());
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_declared_cron_trigger_creates_its_schedule_once, |t| {
    use cloacina::runner::WorkflowSet;
    use cloacina::trigger::CronTrigger;
    let clock = ManualClock::new(utc("2026-03-01T00:00:00Z"));
    let runner = cron_runner(&t, &clock).await;
    let declared = |name: &str, workflow: &str| CronTrigger {
        name: name.into(),
        workflow: workflow.into(),
        expression: "0 2 * * *".into(),
        timezone: "Europe/Berlin".into(),
    };
    let set = WorkflowSet {
        workflows: vec![report()],
        triggers: Vec::new(),
        // The second names a workflow this runner does not have: a runner that has it creates it.
        cron_triggers: vec![declared("nightly_report", "report"), declared("orphan", "not_here")],
    };
    runner.add_workflows(set.clone()).await.expect("offer");
    let schedules = runner.list_schedules().await.expect("list");
    assert_eq!(schedules.len(), 1, "{schedules:?}");
    let s = &schedules[0];
    assert_eq!(
        (s.workflow_name.as_str(), s.cron_expression.as_str(), s.timezone.as_str()),
        ("report", "0 2 * * *", "Europe/Berlin")
    );
    assert_eq!(s.trigger_name.as_deref(), Some("nightly_report"));
    // An operator's pause stands when the declaration is offered again (a restart, a reload).
    assert!(runner.pause_schedule(s.id).await.expect("pause"));
    runner.add_workflows(set).await.expect("offer again");
    let again = runner.list_schedules().await.expect("list");
    assert_eq!(again.len(), 1, "declared once: {again:?}");
    assert!(!again[0].enabled, "the operator's pause stands");
    runner.shutdown().await.expect("shutdown");
});

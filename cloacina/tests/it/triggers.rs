//! Event triggers on both backends, on a manual clock: one poll per interval across runners, no
//! overlapping runs for one context unless allowed, pause and resume, the history, a failed step
//! that loses nothing and doubles nothing, runner processes killed with SIGKILL while firing, and
//! `#[trigger]`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::engine::{config, engine_test, wait_for};
use crate::harness::backend_test;
use cloacina::clock::ManualClock;
use cloacina::dal::{pipeline_executions as pipelines, trigger_executions, trigger_schedules};
use cloacina::database::UniversalTimestamp;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::faults::{FaultPoint, FaultTiming, Faults};
use cloacina::runner::DefaultRunner;
use cloacina::trigger::{Trigger, TriggerResult};
use cloacina::workflow::Workflow;
use cloacina::{Context, Error};

const SLOT: Duration = Duration::from_secs(5);

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
}

/// The start of slot `n` after the tests' epoch (slots are 5 s long).
fn slot(n: i64) -> DateTime<Utc> {
    utc("2026-05-01T12:00:00Z") + chrono::Duration::seconds(5 * n)
}

/// A workflow whose only task waits until `gate` is open.
fn gated(gate: &watch::Receiver<bool>) -> Workflow {
    let gate = gate.clone();
    Workflow::builder("inbox")
        .simple_task("process", &[], move |mut ctx: Context<Value>| {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                ctx.insert_or_update("processed", json!(true));
                Ok(ctx)
            }
        })
        .build()
        .expect("wf")
}

/// A trigger on `inbox` that counts its polls and fires with `file` each time.
fn counting_trigger(polls: &Arc<AtomicU32>, file: &'static str, concurrent: bool) -> Trigger {
    let polls = polls.clone();
    Trigger::new("inbox_watch", "inbox", SLOT, move || {
        let polls = polls.clone();
        async move {
            polls.fetch_add(1, Ordering::SeqCst);
            let mut ctx = Context::new();
            ctx.insert("file", json!(file))?;
            Ok(TriggerResult::Fire(Some(ctx)))
        }
    })
    .expect("trigger")
    .allow_concurrent(concurrent)
}

async fn trigger_runner(
    t: &crate::harness::TestDb,
    clock: &ManualClock,
    wf: Workflow,
    trigger: Trigger,
    faults: Faults,
) -> DefaultRunner {
    DefaultRunner::builder(t.url.clone())
        .config(config(t))
        .workflow(wf)
        .trigger(trigger)
        .clock(Arc::new(clock.clone()))
        .faults(faults)
        .build()
        .await
        .expect("runner")
}

/// Moves the clock to slot `n` and waits until that slot's poll happened.
async fn to_slot(clock: &ManualClock, polls: &AtomicU32, n: i64, expected_polls: u32) {
    clock.set(slot(n));
    wait_for(|| async { polls.load(Ordering::SeqCst) >= expected_polls }).await;
}

/// Pauses the trigger: once this returns no fire in flight can still start a run (a fire locks
/// the trigger's row and checks it is enabled), so counting runs afterwards is exact.
async fn settle(runner: &DefaultRunner) {
    runner.set_trigger_enabled("inbox_watch", false).await.expect("pause");
}

engine_test!(one_poll_per_interval_across_runners_and_no_overlapping_runs, |t| {
    let clock = ManualClock::new(slot(0));
    let polls = Arc::new(AtomicU32::new(0));
    let (open, gate) = watch::channel(false);
    let a = trigger_runner(&t, &clock, gated(&gate), counting_trigger(&polls, "a.csv", false), Faults::new()).await;
    let b = trigger_runner(&t, &clock, gated(&gate), counting_trigger(&polls, "a.csv", false), Faults::new()).await;
    // Slot 0 is polled at start, then one poll per slot: two runners, never two polls of a slot.
    wait_for(|| async { polls.load(Ordering::SeqCst) >= 1 }).await;
    for n in 1..=3 {
        to_slot(&clock, &polls, n, u32::try_from(n + 1).expect("n")).await;
    }
    settle(&a).await;
    assert_eq!(polls.load(Ordering::SeqCst), 4, "one poll per slot across both runners");
    let history = a.get_trigger_execution_history("inbox_watch", 10, 0).await.expect("history");
    assert_eq!(history.len(), 1, "the same context fired four times while its run was unfinished: one run");
    assert_eq!(a.list_executions(Default::default()).await.expect("list").len(), 1);
    // Once that run ends, the same context may start another.
    open.send_replace(true);
    let first = history[0].pipeline_execution_id.expect("linked");
    let done = a.attach(first).await.expect("attach").wait_for_completion().await.expect("wait");
    assert_eq!(done.status, WorkflowStatus::Completed);
    assert_eq!(done.final_context.get("file"), Some(&json!("a.csv")), "the fire's context is the run's input");
    b.set_trigger_enabled("inbox_watch", true).await.expect("resume");
    to_slot(&clock, &polls, 4, 5).await;
    wait_for(|| async { a.get_trigger_execution_history("inbox_watch", 10, 0).await.expect("history").len() == 2 })
        .await;
    settle(&b).await;
    let listed = a.list_trigger_schedules(false, 10, 0).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].workflow_name.as_str(), listed[0].poll_interval, listed[0].enabled), ("inbox", SLOT, false));
    assert!(a.list_trigger_schedules(true, 10, 0).await.expect("enabled only").is_empty());
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
});

engine_test!(concurrent_triggers_start_a_run_per_fire, |t| {
    let clock = ManualClock::new(slot(0));
    let polls = Arc::new(AtomicU32::new(0));
    let (_open, gate) = watch::channel(false);
    let runner = trigger_runner(&t, &clock, gated(&gate), counting_trigger(&polls, "q", true), Faults::new()).await;
    wait_for(|| async { polls.load(Ordering::SeqCst) >= 1 }).await;
    to_slot(&clock, &polls, 1, 2).await;
    to_slot(&clock, &polls, 2, 3).await;
    settle(&runner).await;
    let history = runner.get_trigger_execution_history("inbox_watch", 10, 0).await.expect("history");
    assert_eq!(history.len(), 3, "allow_concurrent: every fire starts a run");
    assert!(history.windows(2).all(|w| w[0].fired_at >= w[1].fired_at), "newest first");
    assert_eq!(runner.get_trigger_execution_history("inbox_watch", 2, 2).await.expect("page").len(), 1);
    let missing = runner.set_trigger_enabled("nope", true).await.expect_err("unknown trigger");
    assert!(matches!(missing, Error::TriggerNotFound(ref n) if n == "nope"), "{missing}");
    assert!(runner.get_trigger_execution_history("inbox_watch", -1, 0).await.is_err(), "negative limit");
    runner.shutdown().await.expect("shutdown");
});

backend_test!(one_claim_per_slot_and_none_while_paused, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::from(slot(0));
    trigger_schedules::register(&mut conn, "w", "inbox", SLOT, false, now).expect("register");
    trigger_schedules::register(&mut conn, "w", "inbox", SLOT * 2, true, now).expect("a second runner registers");
    let s = trigger_schedules::get(&mut conn, "w").expect("get").expect("stored");
    assert_eq!((s.poll_interval, s.allow_concurrent, s.enabled), (SLOT * 2, true, true), "the definition is updated");
    assert!(trigger_schedules::claim_tick(&mut conn, "w", 5, now).expect("claim"));
    assert!(!trigger_schedules::claim_tick(&mut conn, "w", 5, now).expect("claim"), "a slot is claimed once");
    assert!(!trigger_schedules::claim_tick(&mut conn, "w", 4, now).expect("claim"), "never an older slot");
    assert!(trigger_schedules::set_enabled(&mut conn, "w", false, now).expect("pause"));
    assert!(!trigger_schedules::claim_tick(&mut conn, "w", 6, now).expect("claim"), "a paused trigger is not polled");
    trigger_schedules::register(&mut conn, "w", "inbox", SLOT, false, now).expect("re-register");
    assert!(
        !trigger_schedules::get(&mut conn, "w").expect("get").expect("stored").enabled,
        "registering keeps a pause"
    );
    assert!(trigger_schedules::set_enabled(&mut conn, "w", true, now).expect("resume"));
    assert!(trigger_schedules::claim_tick(&mut conn, "w", 6, now).expect("claim"));
    assert!(!trigger_schedules::set_enabled(&mut conn, "ghost", true, now).expect("unknown"));
});

/// Fails `point` once at `timing` and checks the slot's fire still starts exactly one run (or,
/// when the slot's claim is what failed, the next slot's does).
async fn fire_with_fault(t: &crate::harness::TestDb, point: FaultPoint, timing: FaultTiming) {
    let clock = ManualClock::new(slot(0));
    let polls = Arc::new(AtomicU32::new(0));
    let (_open, gate) = watch::channel(true);
    let faults = Faults::new();
    faults.fail_once(point, timing);
    let runner = trigger_runner(t, &clock, gated(&gate), counting_trigger(&polls, "f", false), faults.clone()).await;
    wait_for(|| async { faults.fired(point) == 1 }).await;
    // A lost claim loses that slot's poll only: the next slot polls again.
    if point == FaultPoint::TriggerClaim {
        to_slot(&clock, &polls, 1, 1).await;
    }
    wait_for(|| async { !runner.get_trigger_execution_history("inbox_watch", 10, 0).await.expect("h").is_empty() })
        .await;
    settle(&runner).await;
    let history = runner.get_trigger_execution_history("inbox_watch", 10, 0).await.expect("history");
    assert_eq!(history.len(), 1, "{point:?} {timing:?}: one run");
    let runs = runner.list_executions(Default::default()).await.expect("list");
    assert_eq!(runs.len(), 1, "{point:?} {timing:?}: exactly one pipeline");
    let done = runner.attach(runs[0].id).await.expect("attach").wait_for_completion().await.expect("wait");
    assert_eq!(done.status, WorkflowStatus::Completed);
    runner.shutdown().await.expect("shutdown");
}

engine_test!(a_failed_slot_claim_delays_the_fire_by_one_slot, |t| {
    fire_with_fault(&t, FaultPoint::TriggerClaim, FaultTiming::Before).await;
});

engine_test!(a_slot_claim_whose_answer_is_lost_delays_the_fire_by_one_slot, |t| {
    fire_with_fault(&t, FaultPoint::TriggerClaim, FaultTiming::AfterCommit).await;
});

engine_test!(a_failed_fire_is_retried, |t| {
    fire_with_fault(&t, FaultPoint::TriggerFire, FaultTiming::Before).await;
});

engine_test!(a_fire_whose_commit_is_not_heard_of_starts_one_run, |t| {
    fire_with_fault(&t, FaultPoint::TriggerFire, FaultTiming::AfterCommit).await;
});

backend_test!(runners_killed_while_firing_start_one_run_per_event, |t| {
    // Two runner processes watch one inbox of ten files (the trigger fires the first file by name
    // every 50 ms; the run takes the file out). One of them is killed with SIGKILL three times,
    // each time right after a new fire was recorded, and started again. Every file must start
    // exactly one run, and every run must complete.
    let inbox = crate::harness::scratch_dir().join(crate::harness::unique_name("inbox"));
    std::fs::create_dir_all(&inbox).expect("inbox");
    for i in 0..10 {
        std::fs::write(inbox.join(format!("f{i:02}")), "x").expect("file");
    }
    let env = |name: &str| {
        [
            ("NAME", name.to_owned()),
            ("INBOX", inbox.display().to_string()),
            ("LEASE_MS", "800".to_owned()),
            ("HEARTBEAT_MS", "150".to_owned()),
            ("RECOVERY_MS", "100".to_owned()),
            ("TASK_MS", "150".to_owned()),
        ]
    };
    let fired = || trigger_executions::history(&mut t.conn(), "inbox_watch", 1_000, 0).expect("history");
    let steady = crate::harness::worker(&t, &env("steady"));
    let mut victim = crate::harness::worker(&t, &env("victim-0"));
    for k in 1..=3 {
        let before = fired().len();
        crate::harness::wait_until("a new fire", Duration::from_secs(30), || (fired().len() > before).then_some(()));
        victim.kill();
        victim = crate::harness::worker(&t, &env(&format!("victim-{k}")));
    }
    crate::harness::wait_until("every file taken and every run ended", Duration::from_secs(90), || {
        let empty = std::fs::read_dir(&inbox).ok()?.next().is_none();
        let all_ended = fired().iter().all(|f| {
            f.pipeline_execution_id
                .and_then(|id| pipelines::get(&mut t.conn(), id).ok().flatten())
                .is_some_and(|p| p.status.is_terminal())
        });
        (empty && all_ended).then_some(())
    });
    victim.stop();
    steady.stop();
    let history = fired();
    let events: HashSet<&str> = history.iter().map(|f| f.context_hash.as_str()).collect();
    assert_eq!(events.len(), 10, "every file fired");
    assert_eq!(history.len(), 10, "one run per file, none doubled: {history:#?}");
    for f in &history {
        let p = pipelines::get(&mut t.conn(), f.pipeline_execution_id.expect("linked")).expect("get").expect("run");
        assert_eq!(p.status, cloacina::models::PipelineStatus::Completed, "{p:?}");
    }
    let _ = std::fs::remove_dir(&inbox);
});

/// Fired by `#[trigger]` below, for `macro_triggered` (only the test below has that workflow).
static MACRO_POLLS: AtomicU32 = AtomicU32::new(0);

#[cloacina::trigger(on = "macro_triggered", poll_interval = "100ms", name = "macro_watch")]
async fn macro_watch() -> Result<TriggerResult, cloacina::trigger::TriggerError> {
    MACRO_POLLS.fetch_add(1, Ordering::SeqCst);
    let mut ctx = Context::new();
    ctx.insert("source", json!("macro"))?;
    Ok(TriggerResult::Fire(Some(ctx)))
}

engine_test!(a_trigger_macro_registers_itself, |t| {
    let wf = Workflow::builder("macro_triggered")
        .simple_task("echo", &[], |ctx: Context<Value>| async move { Ok(ctx) })
        .build()
        .expect("wf");
    let runner = DefaultRunner::builder(t.url.clone()).config(config(&t)).workflow(wf).build().await.expect("runner");
    let listed = runner.list_trigger_schedules(false, 10, 0).await.expect("list");
    assert!(listed.iter().any(|s| s.trigger_name == "macro_watch" && s.poll_interval == Duration::from_millis(100)));
    wait_for(|| async { !runner.get_trigger_execution_history("macro_watch", 1, 0).await.expect("h").is_empty() })
        .await;
    let fired = runner.get_trigger_execution_history("macro_watch", 1, 0).await.expect("history");
    let id = fired[0].pipeline_execution_id.expect("linked");
    let done = runner.attach(id).await.expect("attach").wait_for_completion().await.expect("wait");
    assert_eq!(done.final_context.get("source"), Some(&json!("macro")));
    runner.set_trigger_enabled("macro_watch", false).await.expect("pause");
    assert!(MACRO_POLLS.load(Ordering::SeqCst) >= 1);
    runner.shutdown().await.expect("shutdown");
});

#[cloacina::trigger(on = "wired_by_hand", poll_interval = "1h", name = "hand_wired")]
async fn hand_wired() -> Result<TriggerResult, cloacina::trigger::TriggerError> {
    Ok(TriggerResult::Skip)
}

engine_test!(upstreams_runtime_and_unified_scheduler_wire_triggers_by_hand, |t| {
    let wf = Workflow::builder("wired_by_hand")
        .simple_task("echo", &[], |ctx: Context<Value>| async move { Ok(ctx) })
        .build()
        .expect("wf");
    let runner = DefaultRunner::builder(t.url.clone()).config(config(&t)).workflow(wf).build().await.expect("runner");
    // Upstream's event-trigger example, as written there.
    let scheduler = runner.unified_scheduler().await.expect("trigger scheduling is on by default");
    let runtime = runner.runtime();
    let trigger = runtime.get_trigger("hand_wired").expect("the runner polls it");
    scheduler.register_trigger(trigger.as_ref(), "wired_by_hand").await.expect("register");
    scheduler.register_trigger(trigger.as_ref(), "wired_by_hand").await.expect("registering twice is harmless");
    assert!(runtime.trigger_names().contains(&"hand_wired".to_owned()));
    assert!(runtime.workflow_names().contains(&"wired_by_hand".to_owned()));
    assert!(runtime.get_trigger("macro_watch").is_none(), "another workflow's trigger is not polled here");

    match scheduler.register_trigger(trigger.as_ref(), "another_workflow").await {
        Err(Error::InvalidSetting { setting: "trigger", reason }) => {
            assert!(reason.contains("`hand_wired` starts `wired_by_hand`"), "{reason}")
        }
        other => panic!("binding to another workflow must be refused, got {other:?}"),
    }
    let stranger = Trigger::new("stranger", "not_here", Duration::from_secs(1), || async { Ok(TriggerResult::Skip) })
        .expect("trigger");
    match scheduler.register_trigger(&stranger, "not_here").await {
        Err(Error::InvalidSetting { reason, .. }) => assert!(reason.contains("not polled by this runner"), "{reason}"),
        other => panic!("a trigger the runner does not poll must be refused, got {other:?}"),
    }
    assert!(runner.get_trigger_schedule("stranger").await.is_err(), "a refusal records nothing");

    scheduler.disable_trigger("hand_wired").await.expect("disable");
    assert!(!runner.get_trigger_schedule("hand_wired").await.expect("row").enabled);
    scheduler.enable_trigger("hand_wired").await.expect("enable");
    assert!(runner.get_trigger_schedule("hand_wired").await.expect("row").enabled);
    runner.shutdown().await.expect("shutdown");

    let off = cloacina::runner::DefaultRunnerConfig { enable_trigger_scheduling: false, ..config(&t) };
    let quiet = DefaultRunner::builder(t.url.clone()).config(off).build().await.expect("runner");
    assert!(quiet.unified_scheduler().await.is_none(), "no scheduler when trigger scheduling is off");
    quiet.shutdown().await.expect("shutdown");
});

//! Fault injection into every engine step, on both backends: each test makes one step fail (once,
//! or a few times) before it runs or after it committed, and checks that the run still ends as it
//! should, that every task's code ran the expected number of times, and that the fault fired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use crate::engine::{config, engine_test, wait_for};
use cloacina::dal::{pipeline_executions as pipelines, recovery_events, task_executions as tasks};
use cloacina::database::UniversalTimestamp;
use cloacina::executor::{ExecutionResult, WorkflowExecutor, WorkflowStatus};
use cloacina::faults::{FaultKind, FaultPoint, FaultTiming, Faults};
use cloacina::models::{PipelineExecutionId, TaskStatus};
use cloacina::retry::{Backoff, RetryPolicy};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::task::{TaskAttempt, TriggerRule};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError};

use FaultPoint::*;
use FaultTiming::*;

/// How often each task's code ran, by task name.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<String, u32>>>);

impl Runs {
    fn count(&self, task: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(task.to_owned()).or_default() += 1;
    }

    fn of(&self, task: &str) -> u32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(task).copied().unwrap_or(0)
    }
}

fn counted(
    runs: &Runs,
    name: &'static str,
) -> impl Fn(Context<Value>) -> std::future::Ready<Result<Context<Value>, TaskError>> + Send + Sync {
    let runs = runs.clone();
    move |mut ctx: Context<Value>| {
        runs.count(name);
        ctx.insert_or_update(format!("ran_{name}"), Value::Bool(true));
        std::future::ready(Ok(ctx))
    }
}

/// `a → (b, c) → d`.
fn join(runs: &Runs) -> Workflow {
    Workflow::builder("join")
        .simple_task("a", &[], counted(runs, "a"))
        .simple_task("b", &["a"], counted(runs, "b"))
        .simple_task("c", &["a"], counted(runs, "c"))
        .simple_task("d", &["b", "c"], counted(runs, "d"))
        .build()
        .expect("join")
}

/// `x` fails (retryably) on its first attempt, then `y` follows it; `z` fails for good and
/// `cleanup` runs because it did.
fn flaky(runs: &Runs) -> Workflow {
    let retry = RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::Fixed,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(20),
        jitter: false,
        ..RetryPolicy::default()
    };
    let x_runs = runs.clone();
    let z_runs = runs.clone();
    Workflow::builder("flaky")
        .task(TaskSpec { retry, ..TaskSpec::new("x", &[]) }, move |ctx: Context<Value>| {
            x_runs.count("x");
            let first = TaskAttempt::current().is_some_and(|a| a.attempt == 1);
            async move {
                if first {
                    return Err(TaskError::retryable("first attempt fails"));
                }
                Ok(ctx)
            }
        })
        .simple_task("y", &["x"], counted(runs, "y"))
        .simple_task("z", &[], move |_ctx: Context<Value>| {
            z_runs.count("z");
            async { Err(TaskError::fatal("z is broken")) }
        })
        .task(
            TaskSpec { trigger_rule: TriggerRule::TaskFailed { task: "z".into() }, ..TaskSpec::new("cleanup", &["z"]) },
            counted(runs, "cleanup"),
        )
        .build()
        .expect("flaky")
}

/// One task that outlasts several heartbeats (the lease is 1 s).
fn slow(runs: &Runs) -> Workflow {
    let runs = runs.clone();
    Workflow::builder("slow")
        .simple_task("long", &[], move |ctx: Context<Value>| {
            runs.count("long");
            async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                Ok(ctx)
            }
        })
        .build()
        .expect("slow")
}

/// Awaits a pipeline's end, failing the test if it is stuck (30 s).
async fn within<T>(wait: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), wait).await.expect("the pipeline is stuck")
}

fn fast(t: &crate::harness::TestDb) -> DefaultRunnerConfig {
    DefaultRunnerConfig {
        lease_duration: Duration::from_millis(1_000),
        heartbeat_interval: Duration::from_millis(200),
        recovery_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(20),
        cron_recheck_interval: Duration::from_millis(100),
        ..config(t)
    }
}

async fn runner_with(t: &crate::harness::TestDb, wf: Workflow, faults: &Faults) -> DefaultRunner {
    DefaultRunner::builder(t.url.clone())
        .config(fast(t))
        .workflow(wf)
        .faults(faults.clone())
        .build()
        .await
        .expect("runner")
}

/// Runs `wf` once with one fault armed; checks that it fired and that nothing needed recovery.
async fn run_once(
    t: &crate::harness::TestDb,
    wf: Workflow,
    point: FaultPoint,
    timing: FaultTiming,
    kind: FaultKind,
) -> ExecutionResult {
    let faults = Faults::new();
    faults.fail(point, timing, kind, 1);
    let name = wf.name().to_owned();
    let runner = runner_with(t, wf, &faults).await;
    let result = within(runner.execute(&name, Context::new())).await.expect("execute");
    assert_eq!(faults.fired(point), 1, "the fault at {point:?} {timing:?} fired");
    let runs = runner.list_executions(Default::default()).await.expect("list");
    assert_eq!(runs.len(), 1, "exactly one pipeline, whatever failed");
    let id = result.execution_id;
    let events = runner.database().run(move |c| recovery_events::list_for_pipeline(c, id)).await.expect("events");
    assert!(events.is_empty(), "a fault in a live runner needs no recovery: {events:?}");
    runner.shutdown().await.expect("shutdown");
    result
}

async fn join_survives(t: &crate::harness::TestDb, point: FaultPoint, timing: FaultTiming, kind: FaultKind) {
    let runs = Runs::default();
    let result = run_once(t, join(&runs), point, timing, kind).await;
    assert_eq!(result.status, WorkflowStatus::Completed, "{point:?} {timing:?}: {result:?}");
    assert!(result.task_results.iter().all(|r| r.status == TaskStatus::Completed && r.attempts == 1));
    for task in ["a", "b", "c", "d"] {
        assert_eq!(runs.of(task), 1, "{point:?} {timing:?}: task {task} ran once");
        assert_eq!(result.final_context.get(&format!("ran_{task}")), Some(&Value::Bool(true)));
    }
}

async fn flaky_survives(t: &crate::harness::TestDb, point: FaultPoint) {
    let runs = Runs::default();
    let result = run_once(t, flaky(&runs), point, Before, FaultKind::ConnectionLost).await;
    assert_eq!(result.status, WorkflowStatus::Failed, "{point:?}: {result:?}");
    assert_eq!(result.error_message.as_deref(), Some("task `z` failed"));
    let status = |n: &str| result.task_results.iter().find(|r| r.task_name == n).map(|r| (r.task_status, r.attempts));
    assert_eq!(status("x"), Some((TaskStatus::Completed, 2)));
    assert_eq!(status("y"), Some((TaskStatus::Completed, 1)));
    assert_eq!(status("z"), Some((TaskStatus::Failed, 1)));
    assert_eq!(status("cleanup"), Some((TaskStatus::Completed, 1)));
    assert_eq!((runs.of("x"), runs.of("y"), runs.of("z"), runs.of("cleanup")), (2, 1, 1, 1), "{point:?}");
}

engine_test!(pipeline_creation_fails_before_it_runs, |t| {
    join_survives(&t, CreatePipeline, Before, FaultKind::ConnectionLost).await;
});

engine_test!(pipeline_creation_commits_but_its_answer_is_lost, |t| {
    join_survives(&t, CreatePipeline, AfterCommit, FaultKind::ConnectionLost).await;
});

engine_test!(a_claim_fails_before_it_runs, |t| {
    join_survives(&t, Claim, Before, FaultKind::ConnectionLost).await;
});

engine_test!(a_claim_commits_but_its_answer_is_lost, |t| {
    join_survives(&t, Claim, AfterCommit, FaultKind::ConnectionLost).await;
});

engine_test!(recording_outcomes_fails_before_it_runs, |t| {
    join_survives(&t, RecordOutcomes, Before, FaultKind::ConnectionLost).await;
});

engine_test!(recording_outcomes_is_rejected_by_the_database, |t| {
    join_survives(&t, RecordOutcomes, Before, FaultKind::Rejected).await;
});

engine_test!(recording_outcomes_commits_but_its_answer_is_lost, |t| {
    join_survives(&t, RecordOutcomes, AfterCommit, FaultKind::ConnectionLost).await;
});

engine_test!(marking_tasks_completed_fails, |t| {
    join_survives(&t, CompleteTasks, Before, FaultKind::ConnectionLost).await;
});

engine_test!(making_dependents_ready_fails, |t| {
    join_survives(&t, ResolveDependents, Before, FaultKind::ConnectionLost).await;
});

engine_test!(making_dependents_ready_is_rejected_by_the_database, |t| {
    join_survives(&t, ResolveDependents, Before, FaultKind::Rejected).await;
});

engine_test!(ending_the_pipeline_fails, |t| {
    join_survives(&t, FinishPipeline, Before, FaultKind::ConnectionLost).await;
});

engine_test!(scheduling_a_retry_fails, |t| {
    flaky_survives(&t, ScheduleRetry).await;
});

engine_test!(failing_a_task_fails, |t| {
    flaky_survives(&t, FailTask).await;
});

async fn slow_survives(t: &crate::harness::TestDb, timing: FaultTiming) {
    let runs = Runs::default();
    let result = run_once(t, slow(&runs), Heartbeat, timing, FaultKind::ConnectionLost).await;
    assert_eq!(result.status, WorkflowStatus::Completed, "{timing:?}");
    assert_eq!(runs.of("long"), 1, "{timing:?}: a missed renewal loses no claim");
}

engine_test!(lease_renewal_fails, |t| {
    slow_survives(&t, Before).await;
});

engine_test!(lease_renewal_commits_but_its_answer_is_lost, |t| {
    slow_survives(&t, AfterCommit).await;
});

/// One pipeline of `wf` (a single task) created directly and claimed by a runner that then
/// "dies" (it never renews): its lease runs out 300 ms from now.
fn claimed_by_a_dead_runner(t: &crate::harness::TestDb, wf: &Workflow) -> PipelineExecutionId {
    use cloacina::dal::pipeline_executions::NewPipeline;
    use cloacina::dal::task_executions::NewTask;
    let task = &wf.spec().tasks()[0];
    let new = NewPipeline {
        workflow_name: wf.name().to_owned(),
        workflow_version: wf.version().to_owned(),
        input: serde_json::json!({}),
        tasks: vec![NewTask {
            name: task.id.clone(),
            max_attempts: 3,
            ready: true,
            trigger_rules: serde_json::to_string(&task.trigger_rule).expect("rule"),
            task_configuration: "{}".to_owned(),
        }],
    };
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let id = pipelines::create(&mut conn, PipelineExecutionId::new(), &new, now).expect("create");
    let versions = vec![wf.version().to_owned()];
    let claimed = tasks::claim_ready(&mut conn, "ghost", &versions, 1, Duration::from_millis(300), now).expect("claim");
    assert_eq!(claimed.len(), 1);
    id
}

engine_test!(lease_expiry_fails_once, |t| {
    for timing in [Before, AfterCommit] {
        let runs = Runs::default();
        let wf = Workflow::builder("orphan").simple_task("only", &[], counted(&runs, "only")).build().expect("wf");
        let id = claimed_by_a_dead_runner(&t, &wf);
        let faults = Faults::new();
        faults.fail_once(ExpireLeases, timing);
        let runner = runner_with(&t, wf, &faults).await;
        let result = within(runner.attach(id).await.expect("attach").wait_for_completion()).await.expect("wait");
        assert_eq!(result.status, WorkflowStatus::Completed, "{timing:?}");
        assert_eq!(faults.fired(ExpireLeases), 1);
        assert_eq!(runs.of("only"), 1, "{timing:?}");
        let events = runner.database().run(move |c| recovery_events::list_for_pipeline(c, id)).await.expect("events");
        assert_eq!(
            events.iter().map(|e| e.recovery_type.as_str()).collect::<Vec<_>>(),
            [recovery_events::TASK_REQUEUED],
            "{timing:?}: one recovery decision, even when its first commit was not acknowledged"
        );
        runner.shutdown().await.expect("shutdown");
    }
});

engine_test!(a_pipeline_left_standing_still_is_settled, |t| {
    // A pipeline left as a crash of an older engine could leave it: `first` Completed, `second`
    // NotStarted, nothing Ready or Running. Recovery must find it and move it on.
    for timing in [Before, AfterCommit] {
        let runs = Runs::default();
        let wf = Workflow::builder("stalled")
            .simple_task("first", &[], counted(&runs, "first"))
            .simple_task("second", &["first"], counted(&runs, "second"))
            .build()
            .expect("wf");
        let id = {
            use cloacina::dal::pipeline_executions::NewPipeline;
            use cloacina::dal::task_executions::NewTask;
            let new_task = |name: &str, ready| NewTask {
                name: name.to_owned(),
                max_attempts: 1,
                ready,
                trigger_rules: serde_json::to_string(&TriggerRule::default()).expect("rule"),
                task_configuration: "{}".to_owned(),
            };
            let new = NewPipeline {
                workflow_name: "stalled".into(),
                workflow_version: wf.version().to_owned(),
                input: serde_json::json!({"given": 1}),
                tasks: vec![new_task("first", true), new_task("second", false)],
            };
            let mut conn = t.conn();
            let now = UniversalTimestamp::now();
            let id = pipelines::create(&mut conn, PipelineExecutionId::new(), &new, now).expect("create");
            let versions = vec![wf.version().to_owned()];
            let first = tasks::claim_ready(&mut conn, "old-engine", &versions, 1, Duration::from_secs(30), now)
                .expect("claim")
                .remove(0);
            assert!(tasks::complete(&mut conn, first.id, "old-engine", &serde_json::json!({"from_first": 1}), now)
                .expect("complete"));
            id
        };
        let faults = Faults::new();
        faults.fail_once(Reconcile, timing);
        let runner = runner_with(&t, wf, &faults).await;
        let result = within(runner.attach(id).await.expect("attach").wait_for_completion()).await.expect("wait");
        assert_eq!(result.status, WorkflowStatus::Completed, "{timing:?}");
        assert_eq!(result.final_context.get("from_first"), Some(&serde_json::json!(1)), "the output carried on");
        assert_eq!(faults.fired(Reconcile), 1);
        assert_eq!((runs.of("first"), runs.of("second")), (0, 1), "{timing:?}");
        let events = runner.database().run(move |c| recovery_events::list_for_pipeline(c, id)).await.expect("events");
        let kinds: Vec<_> = events.iter().map(|e| e.recovery_type.as_str()).collect();
        assert_eq!(kinds, [recovery_events::PIPELINE_RECONCILED], "{timing:?}: settled once");
        runner.shutdown().await.expect("shutdown");
    }
});

mod cron {
    use super::*;
    use chrono::{DateTime, Utc};
    use cloacina::cron::{ManualClock, ScheduleConfig};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    /// A schedule firing every minute; the clock moves to its first fire time with `point` armed.
    /// When the claim of that fire time commits but the runner cannot start its pipeline, the fire
    /// time is an orphan until `lease_duration` (1 s) later on the manual clock.
    async fn fire_once_with_fault(t: &crate::harness::TestDb, point: FaultPoint, timing: FaultTiming) {
        let runs = Runs::default();
        let wf = Workflow::builder("tick").simple_task("tock", &[], counted(&runs, "tock")).build().expect("wf");
        let clock = ManualClock::new(utc("2026-03-01T10:00:30Z"));
        let faults = Faults::new();
        let runner = DefaultRunner::builder(t.url.clone())
            .config(fast(t))
            .workflow(wf)
            .clock(Arc::new(clock.clone()))
            .faults(faults.clone())
            .build()
            .await
            .expect("runner");
        let schedule = runner.create_schedule(ScheduleConfig::new("tick", "* * * * *")).await.expect("schedule");
        faults.fail_once(point, timing);
        clock.set(utc("2026-03-01T10:01:00Z"));
        // Wait until the fault fired and the schedule moved past the fire time.
        wait_for(|| async {
            let s = runner.get_schedule(schedule.id).await.expect("schedule");
            faults.fired(point) == 1 && s.next_run_at.is_some_and(|n| n > utc("2026-03-01T10:01:00Z"))
        })
        .await;
        // A fire time claimed but not started is taken over once it is older than the lease.
        let history = runner.schedule_history(schedule.id, 10).await.expect("history");
        if history.iter().any(|f| f.pipeline_execution_id.is_none()) {
            clock.set(utc("2026-03-01T10:01:02Z"));
        }
        wait_for(|| async {
            let history = runner.schedule_history(schedule.id, 10).await.expect("history");
            !history.is_empty() && history.iter().all(|f| f.pipeline_execution_id.is_some())
        })
        .await;
        let history = runner.schedule_history(schedule.id, 10).await.expect("history");
        assert_eq!(history.len(), 1, "{point:?} {timing:?}: one fire time");
        assert_eq!(history[0].scheduled_time, utc("2026-03-01T10:01:00Z"));
        let pipeline = history[0].pipeline_execution_id.expect("started");
        let result = within(runner.attach(pipeline).await.expect("attach").wait_for_completion()).await.expect("wait");
        assert_eq!(result.status, WorkflowStatus::Completed);
        let all = runner.list_executions(Default::default()).await.expect("list");
        assert_eq!(all.len(), 1, "{point:?} {timing:?}: exactly one pipeline for the fire time");
        assert_eq!(runs.of("tock"), 1);
        runner.shutdown().await.expect("shutdown");
    }

    engine_test!(claiming_a_fire_time_fails, |t| {
        fire_once_with_fault(&t, CronClaim, Before).await;
    });

    engine_test!(claiming_a_fire_time_commits_but_its_answer_is_lost, |t| {
        fire_once_with_fault(&t, CronClaim, AfterCommit).await;
    });

    engine_test!(starting_a_fire_times_pipeline_fails, |t| {
        fire_once_with_fault(&t, CronStart, Before).await;
    });

    engine_test!(starting_a_fire_times_pipeline_commits_but_its_answer_is_lost, |t| {
        fire_once_with_fault(&t, CronStart, AfterCommit).await;
    });
}

engine_test!(a_real_serialization_failure_or_locked_database_is_retried, |t| {
    // Faults raised by the database itself rather than injected: on PostgreSQL a trigger raises
    // SQLSTATE 40001 (serialization failure) on the first completion; on SQLite another connection
    // holds the write lock past the busy timeout (5 s) while the task's outcome waits to be written.
    let runs = Runs::default();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let (release_tx, release) = tokio::sync::oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release)));
    let task_runs = runs.clone();
    let wf = Workflow::builder("contended")
        .simple_task("only", &[], move |ctx: Context<Value>| {
            task_runs.count("only");
            let (started_tx, release) = (started_tx.clone(), release.lock().expect("lock").take());
            async move {
                let _ = started_tx.send(());
                if let Some(release) = release {
                    let _ = release.await; // finish only once the database is contended
                }
                Ok(ctx)
            }
        })
        .build()
        .expect("wf");
    let runner = DefaultRunner::builder(t.url.clone())
        .config(DefaultRunnerConfig { poll_interval: Duration::from_millis(20), ..config(&t) })
        .workflow(wf)
        .build()
        .await
        .expect("runner");
    let postgres = t.db.backend() == cloacina::Backend::Postgres;
    if postgres {
        crate::harness::exec(
            &mut t.conn(),
            "CREATE SEQUENCE fault_once;
             CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.status = 'Completed' AND nextval('fault_once') = 1 THEN
                     RAISE EXCEPTION 'serialization failure raised by a test trigger' USING ERRCODE = '40001';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER fail_once BEFORE UPDATE ON task_executions FOR EACH ROW EXECUTE FUNCTION fail_once();",
        );
    }
    let handle = runner.execute_async("contended", Context::new()).await.expect("start");
    tokio::task::spawn_blocking(move || started.recv().expect("the task started")).await.expect("join");
    let holder = if postgres {
        let _ = release_tx.send(());
        None
    } else {
        let db = t.db.clone();
        Some(tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("conn");
            crate::harness::exec(&mut conn, "BEGIN IMMEDIATE");
            let _ = release_tx.send(());
            std::thread::sleep(Duration::from_millis(5_500)); // past the runner's 5 s busy timeout
            crate::harness::exec(&mut conn, "COMMIT");
        }))
    };
    let result = within(handle.wait_for_completion()).await.expect("wait");
    if let Some(holder) = holder {
        holder.await.expect("lock holder");
    }
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(runs.of("only"), 1, "the outcome was written on a later try, not lost");
    if postgres {
        #[derive(diesel::QueryableByName)]
        struct Seq {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            last_value: i64,
        }
        use diesel::RunQueryDsl;
        let seq: Seq = diesel::sql_query("SELECT last_value FROM fault_once").get_result(&mut t.conn()).expect("seq");
        assert!(seq.last_value >= 2, "the trigger failed the first completion and passed a later one");
    }
    runner.shutdown().await.expect("shutdown");
});

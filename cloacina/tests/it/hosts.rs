//! Runners record their host in `runners`; on SQLite, a runner refuses to start while a runner of
//! another host is alive on the same database (SQLite's locking holds only on one machine), with
//! guidance towards PostgreSQL. Runners of one host, and PostgreSQL, are not limited.

use std::time::Duration;

use cloacina::dal::runners;
use cloacina::database::UniversalTimestamp;
use cloacina::runner::DefaultRunner;
use cloacina::{Backend, Error};

use crate::engine::config;

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

async fn start(t: &crate::harness::TestDb) -> Result<DefaultRunner, Error> {
    DefaultRunner::builder(t.url.clone()).config(config(t)).build().await
}

crate::engine::engine_test!(a_live_runner_of_another_host_blocks_sqlite_only, |t| {
    let now = UniversalTimestamp::now();
    runners::register(
        &mut t.conn(),
        runners::NewRunner {
            name: "far-away",
            host_id: "another-machine-boot-id",
            host_name: "far.example",
            pid: 7,
            versions: &Default::default(),
        },
        now,
    )
    .unwrap();
    match (t.db.backend(), start(&t).await) {
        (Backend::Sqlite, Err(e @ Error::AnotherHost { .. })) => {
            let text = e.to_string();
            assert!(text.contains("runner far-away on another host (far.example"), "{text}");
            assert!(text.contains("PostgreSQL") && text.contains("db copy"), "{text}");
            assert_eq!(e.kind(), cloacina::ErrorKind::InvalidInput);
        }
        (Backend::Postgres, Ok(runner)) => runner.shutdown().await.unwrap(),
        (backend, other) => panic!("{backend}: {:?}", other.map(|_| "started")),
    }
    // Once that runner is stale (not seen within the live window), anyone may start; a runner of
    // this host never blocks another.
    let stale = now.minus(cloacina::ops::LIVE_WINDOW + Duration::from_secs(1));
    runners::register(
        &mut t.conn(),
        runners::NewRunner {
            name: "far-away",
            host_id: "another-machine-boot-id",
            host_name: "far.example",
            pid: 7,
            versions: &Default::default(),
        },
        stale,
    )
    .unwrap();
    let here = this_host();
    runners::register(
        &mut t.conn(),
        runners::NewRunner {
            name: "neighbour",
            host_id: &here,
            host_name: "here",
            pid: 8,
            versions: &Default::default(),
        },
        now,
    )
    .unwrap();
    let runner = start(&t).await.expect("starts");
    let name = runner.runner_name().to_owned();
    let live = runners::seen_since(&mut t.conn(), now).unwrap();
    let mine = live.iter().find(|r| r.runner_name == name).expect("registered itself");
    assert_eq!((mine.host_id.as_str(), mine.pid), (this_host().as_str(), std::process::id()));
    runner.shutdown().await.unwrap();
    let after = runners::seen_since(&mut t.conn(), stale).unwrap();
    assert!(after.iter().all(|r| r.runner_name != name), "a graceful stop removes its row: {after:?}");
});

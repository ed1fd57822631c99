//! Migrations: applied on connect, idempotent, safe under concurrent starts, and a database
//! migrated by a newer version is refused.

use cloacina::database::{migrate, Database, DatabaseConfig, Error};

use crate::harness::{backend_test, exec};

backend_test!(connect_applies_every_migration_once, |t| {
    let mut conn = t.conn();
    let status = migrate::status(&mut conn).expect("status");
    assert_eq!(status.applied, migrate::known_versions(t.db.backend()).expect("known"));
    assert!(status.pending.is_empty());
    // A second connect finds nothing to do.
    let mut again = cloacina::database::establish(t.db.url(), &options(&t)).expect("connect");
    assert_eq!(migrate::run_pending(&mut again, t.db.schema()).expect("rerun"), Vec::new());
});

fn options(t: &crate::harness::TestDb) -> cloacina::database::ConnectOptions {
    cloacina::database::ConnectOptions { schema: t.db.schema().map(str::to_owned), ..Default::default() }
}

backend_test!(a_database_from_a_newer_version_is_refused, |t| {
    let mut conn = t.conn();
    exec(&mut conn, "INSERT INTO __diesel_schema_migrations (version) VALUES ('29990101000000')");
    drop(conn);
    let config = DatabaseConfig { schema: t.db.schema().map(str::to_owned), ..Default::default() };
    let err = Database::connect_with(&t.url, config).expect_err("newer schema must be refused");
    match &err {
        Error::SchemaTooNew { unknown, .. } => assert_eq!(unknown, &vec!["29990101000000".to_owned()]),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("newer than this binary"), "{err}");
    let mut conn = t.conn();
    assert!(matches!(migrate::status(&mut conn), Err(Error::SchemaTooNew { .. })));
});

/// Several processes starting at once against an empty database all succeed, and the migrations
/// are applied exactly once.
fn concurrent_first_start(url: &str, schema: Option<String>) {
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.to_owned();
            let schema = schema.clone();
            std::thread::spawn(move || Database::connect_with(&url, DatabaseConfig { schema, ..Default::default() }))
        })
        .collect();
    let dbs: Vec<Database> = handles.into_iter().map(|h| h.join().expect("thread").expect("connect")).collect();
    let mut conn = dbs[0].get().expect("conn");
    let status = migrate::status(&mut conn).expect("status");
    assert!(status.pending.is_empty());
    assert_eq!(status.applied.len(), migrate::known_versions(dbs[0].backend()).expect("known").len());
}

#[cfg(feature = "sqlite")]
#[test]
fn concurrent_first_start_sqlite() {
    let path = crate::harness::scratch_dir().join(format!("{}.db", crate::harness::unique_name("mig")));
    concurrent_first_start(&format!("sqlite://{}", path.display()), None);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn concurrent_first_start_postgres() {
    let schema = crate::harness::unique_name("mig");
    let url = crate::harness::postgres_url();
    concurrent_first_start(&url, Some(schema.clone()));
    let parsed = cloacina::database::DatabaseUrl::parse(&url).expect("url");
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).expect("conn");
    exec(&mut conn, &format!("DROP SCHEMA \"{schema}\" CASCADE"));
}

/// On PostgreSQL, index builds on existing tables (migration 000006 here) let writers go on: while
/// the build waits for a writer's open transaction, another writer still gets its lock (a plain
/// `CREATE INDEX` would queue it behind the build). A build cancelled mid-way leaves an invalid
/// index; the next start drops and rebuilds it and records the migration once.
#[cfg(feature = "postgres")]
#[test]
fn postgres_index_builds_do_not_block_writers_and_survive_interruption() {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    const INDEXES: &str = "('task_execution_metadata_pipeline', 'recovery_events_task', 'cron_executions_pipeline', \
        'trigger_executions_pipeline', 'pipeline_executions_context', 'pipeline_executions_final_context', \
        'task_execution_metadata_context', 'pipeline_executions_finished')";
    let count = |conn: &mut cloacina::database::AnyConnection, sql: &str| -> i64 {
        diesel::sql_query(sql).get_result::<Count>(conn).unwrap_or_else(|e| panic!("{sql}: {e}")).n
    };
    let indexes = |valid: bool| {
        format!(
            "SELECT count(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN {INDEXES} AND i.indisvalid = {valid}"
        )
    };
    let t = crate::harness::TestDb::postgres();
    let connect = || cloacina::database::establish(t.db.url(), &options(&t)).expect("connect");
    // Back to the state before 000006.
    let mut setup = connect();
    let down = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/database/migrations/postgres/2026-11-26-000006_prune_indexes/down.sql"
    );
    exec(&mut setup, &std::fs::read_to_string(down).expect("down.sql"));
    exec(&mut setup, "DELETE FROM __diesel_schema_migrations WHERE version = '20261126000006'");
    assert_eq!(migrate::status(&mut setup).expect("status").pending, vec!["20261126000006".to_owned()]);

    // A writer holds its table lock in an open transaction.
    let mut writer = connect();
    exec(&mut writer, "BEGIN; LOCK TABLE pipeline_executions IN ROW EXCLUSIVE MODE");
    let mut migrator = connect();
    let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result::<Pid>(&mut migrator).expect("pid").pid;
    let migrating = std::thread::spawn(move || migrate::run_pending(&mut migrator, None));
    let waiting = format!("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock'");
    crate::harness::wait_until("the index build waiting for the writer", std::time::Duration::from_secs(30), || {
        (count(&mut setup, &waiting) == 1).then_some(())
    });
    // Another writer is not queued behind the build.
    let mut second = connect();
    exec(&mut second, "SET lock_timeout = '5s'");
    exec(&mut second, "BEGIN; LOCK TABLE pipeline_executions IN ROW EXCLUSIVE MODE; COMMIT");

    // The build is cancelled (as if its process died): the migration fails, an invalid index stays.
    exec(&mut setup, &format!("SELECT pg_cancel_backend({pid})"));
    let err = migrating.join().expect("thread").expect_err("the cancelled migration fails");
    assert!(err.to_string().contains("cancel"), "{err}");
    assert_eq!(count(&mut setup, &indexes(false)), 1, "the interrupted build left an invalid index");
    assert_eq!(migrate::status(&mut setup).expect("status").pending.len(), 1);

    // Once the writer commits, the next start completes the migration.
    exec(&mut writer, "COMMIT");
    let applied = migrate::run_pending(&mut connect(), None).expect("migrate again");
    assert_eq!(applied.iter().map(|a| a.version.as_str()).collect::<Vec<_>>(), ["20261126000006"]);
    assert_eq!(count(&mut setup, &indexes(false)), 0);
    assert_eq!(count(&mut setup, &indexes(true)), 8);
    assert!(migrate::status(&mut setup).expect("status").pending.is_empty());
}

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

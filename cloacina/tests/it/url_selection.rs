//! Every URL form of the backend-selection rules, and the errors for bad ones.

use cloacina::database::{Backend, Database, DatabaseUrl, Error, ErrorKind};

#[test]
fn unknown_schemes_name_the_scheme_and_the_supported_ones() {
    for (url, scheme) in
        [("mysql://u@h/db", "mysql://"), ("redis://h", "redis://"), ("postgress://h/db", "postgress://")]
    {
        let err = DatabaseUrl::parse(url).expect_err(url);
        assert!(matches!(&err, Error::UnsupportedScheme { scheme: s } if s == scheme), "{url}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(scheme) && msg.contains("postgres://") && msg.contains("sqlite://"), "{msg}");
        assert_eq!(err.kind(), ErrorKind::Configuration);
    }
    let empty = DatabaseUrl::parse("  ").expect_err("empty");
    assert!(empty.to_string().contains("empty URL"), "{empty}");
}

#[test]
fn unsupported_scheme_never_shows_a_password() {
    let err = DatabaseUrl::parse("mysql://admin:topsecret@db/app").expect_err("mysql");
    assert!(!format!("{err} {err:?}").contains("topsecret"));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_forms_select_sqlite() {
    for url in [
        "sqlite://data/app.db",
        "sqlite:///var/lib/app.db",
        "sqlite::memory:",
        ":memory:",
        "file:app.db?mode=rwc",
        "app.db",
        "./data/app.db",
        "/abs/path/app.db",
        "sqlite:app.db",
        "SQLITE://x.db",
    ] {
        let parsed = DatabaseUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(parsed.backend(), Backend::Sqlite, "{url}");
    }
    assert!(DatabaseUrl::parse("sqlite::memory:").map(|u| u.is_in_memory()).unwrap_or(false));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_forms_select_postgres() {
    for url in ["postgres://u@h/db", "postgresql://u:p@h:5432/db?sslmode=disable", "POSTGRES://h/db"] {
        assert_eq!(DatabaseUrl::parse(url).map(|u| u.backend()).ok(), Some(Backend::Postgres), "{url}");
    }
}

#[cfg(not(feature = "postgres"))]
#[test]
fn compiled_out_postgres_names_the_feature() {
    let err = DatabaseUrl::parse("postgres://h/db").expect_err("compiled out");
    assert!(matches!(err, Error::BackendNotCompiled { backend: Backend::Postgres }));
    assert!(err.to_string().contains("`postgres`"), "{err}");
}

#[cfg(not(feature = "sqlite"))]
#[test]
fn compiled_out_sqlite_names_the_feature() {
    let err = DatabaseUrl::parse("sqlite://x.db").expect_err("compiled out");
    assert!(matches!(err, Error::BackendNotCompiled { backend: Backend::Sqlite }));
    assert!(err.to_string().contains("`sqlite`"), "{err}");
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_files_open_by_relative_absolute_and_bare_paths() {
    let dir = crate::harness::scratch_dir();
    let abs = dir.join(format!("{}.db", crate::harness::unique_name("abs")));
    let bare = dir.join(format!("{}.db", crate::harness::unique_name("bare")));
    let rel_name = format!("../target/test-dbs/{}.db", crate::harness::unique_name("rel"));
    // Integration tests run with the package root as working directory.
    for (url, path) in [
        (format!("sqlite://{}", abs.display()), abs.clone()),
        (bare.display().to_string(), bare.clone()),
        (format!("sqlite://{rel_name}"), dir.join(rel_name.rsplit('/').next().unwrap_or_default())),
    ] {
        let db = Database::connect(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(db.backend(), Backend::Sqlite);
        assert!(path.exists(), "{url} should create {}", path.display());
        drop(db);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn unwritable_sqlite_path_reports_the_real_cause() {
    let err = Database::connect("sqlite:///nonexistent-dir-for-cloacina/x.db").expect_err("cannot open");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("unable to open database file"), "{err}");
}

#[cfg(feature = "sqlite")]
#[test]
fn in_memory_database_is_shared_by_the_pool_and_private_to_its_database() {
    use cloacina::dal::contexts;
    use cloacina::database::UniversalTimestamp;
    let a = Database::connect("sqlite::memory:").expect("memory a");
    let b = Database::connect("sqlite::memory:").expect("memory b");
    let id = {
        let mut conn = a.get().expect("conn");
        contexts::insert(&mut conn, &serde_json::json!({"k": 1}), UniversalTimestamp::now()).expect("insert")
    };
    // A later checkout (possibly a new connection) still sees the row; the other database does not.
    let mut conn = a.get().expect("conn");
    assert_eq!(contexts::get(&mut conn, id).expect("get"), Some(serde_json::json!({"k": 1})));
    let mut other = b.get().expect("conn");
    assert_eq!(contexts::get(&mut other, id).expect("get"), None);
}

#[cfg(feature = "postgres")]
#[test]
fn refused_postgres_connection_reports_the_cause_without_the_password() {
    let err = Database::connect("postgres://bob:hunter2@127.0.0.1:1/app").expect_err("nothing listens on port 1");
    let shown = format!("{err} | {err:?}");
    assert!(matches!(err, Error::Connect { .. }), "{shown}");
    assert!(shown.contains("refused"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("bob:***@"), "{shown}");
    assert!(err.is_retryable());
}

#[cfg(feature = "postgres")]
#[test]
fn missing_postgres_database_reports_the_server_message() {
    let base = crate::harness::postgres_url();
    let (server, _) = base.rsplit_once('/').expect("url has a database");
    let err =
        Database::connect(&format!("{server}/no_such_db_{}", uuid::Uuid::new_v4().simple())).expect_err("missing db");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[cfg(feature = "postgres")]
#[test]
fn schema_on_sqlite_and_bad_schema_names_are_refused() {
    use cloacina::database::DatabaseConfig;
    let bad = DatabaseConfig { schema: Some("x; drop table y".into()), ..Default::default() };
    let err = Database::connect_with(&crate::harness::postgres_url(), bad).expect_err("bad name");
    assert!(matches!(err, Error::InvalidSchemaName(_)), "{err:?}");
    #[cfg(feature = "sqlite")]
    {
        let cfg = DatabaseConfig { schema: Some("tenant_a".into()), ..Default::default() };
        let err = Database::connect_with("sqlite::memory:", cfg).expect_err("sqlite has no schemas");
        assert!(matches!(err, Error::SchemasUnsupported(Backend::Sqlite)), "{err:?}");
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn database_run_executes_off_the_async_threads() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let db = Database::connect("sqlite::memory:").expect("memory");
    let backend = rt.block_on(db.run(|conn| Ok(conn.backend()))).expect("run");
    assert_eq!(backend, Backend::Sqlite);
}

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

#[test]
fn urls_without_a_path_or_in_keyword_form_are_refused_before_anything_is_opened() {
    for url in ["sqlite://", "sqlite:///", "file:", "file:?mode=rwc", "sqlite://?cache=shared", "sqlite:"] {
        let err = DatabaseUrl::parse(url).expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Configuration, "{url}: {err:?}");
        assert!(err.to_string().contains("sqlite::memory:"), "{url}: the message says what to write: {err}");
    }
    let keyword = "host=127.0.0.1 user=app password=Hunter2secret dbname=app";
    let err = DatabaseUrl::parse(keyword).expect_err("keyword string");
    let shown = format!("{err} {err:?}");
    assert!(matches!(err, Error::InvalidUrl { .. }), "{shown}");
    assert!(shown.contains("postgres://user:password@host"), "{shown}");
    assert!(!shown.contains("Hunter2secret"), "{shown}");
    assert!(!std::path::Path::new(keyword).exists(), "no file is created");
}

#[cfg(feature = "postgres")]
#[test]
fn passwords_with_any_character_are_never_shown() {
    for (url, secret) in [
        ("postgres://bob:pa/ss@db:5432/app", "pa/ss"),
        ("postgres://bob:pa?ss@db/app?sslmode=disable", "pa?ss"),
        ("postgres://bob:pa#ss@db/app", "pa#ss"),
        ("postgres://bob:pa@ss@db/app", "pa@ss"),
        ("postgres://bob:pa%2Fss@db/app", "pa%2Fss"),
        ("postgres://bob:pa%2Fss@db/app", "pa/ss"),
        ("postgresql://db/app?user=bob&password=s3cr3t!", "s3cr3t!"),
    ] {
        let parsed = DatabaseUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let shown = format!("{parsed} {parsed:?} {}", cloacina::database::redact(url));
        assert!(!shown.contains(secret), "{url} shows {secret}: {shown}");
        assert!(shown.contains("***"), "{shown}");
    }
    let shown = DatabaseUrl::parse("postgres://bob:pa/ss@db:5432/app").expect("url").to_string();
    assert_eq!(shown, "postgres://bob:***@db:5432/app");
}

#[cfg(feature = "postgres")]
#[test]
fn a_password_with_reserved_characters_still_connects() {
    // The test server trusts local connections, so any password is accepted: connecting proves
    // that the host, port and database were read past the unencoded characters.
    let base = crate::harness::postgres_url();
    let (scheme, rest) = base.split_once("://").expect("scheme");
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let user = rest.rsplit_once('@').map_or("postgres", |(u, _)| u.split(':').next().unwrap_or("postgres"));
    for password in ["p/ss?w#rd", "a@b:c", "100%sure", "sp ace"] {
        let url = format!("{scheme}://{user}:{password}@{host_and_db}");
        let cfg = cloacina::database::DatabaseConfig { migrate: false, ..Default::default() };
        let db = Database::connect_with(&url, cfg).unwrap_or_else(|e| panic!("{password}: {e}"));
        let shown = format!("{db:?} {}", db.url());
        assert!(!shown.contains(password), "{shown}");
    }
    let err = Database::connect("postgres://bob:p/ss?w#rd@127.0.0.1:1/app").expect_err("nothing listens on port 1");
    let shown = format!("{err} | {err:?}");
    assert!(!shown.contains("p/ss") && !shown.contains("w#rd"), "{shown}");
}

#[cfg(feature = "postgres")]
#[test]
fn a_short_password_that_appears_in_a_driver_message_withholds_the_message() {
    // "on" occurs in libpq's "connection refused": cutting it out would mangle the message and
    // leaving it would show the password, so the reason is withheld whole.
    let err = Database::connect("postgres://bob:on@127.0.0.1:1/app").expect_err("refused");
    let shown = format!("{err} | {err:?}");
    assert!(shown.contains("withheld"), "{shown}");
    assert!(shown.contains("bob:***@127.0.0.1:1"), "{shown}");
}

/// libpq is built from source with a vendored OpenSSL: TLS to PostgreSQL works (`sslmode=require`
/// fails outright without TLS support), and the session is encrypted.
#[cfg(feature = "postgres")]
#[test]
fn postgres_connections_can_use_tls() {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    let base = crate::harness::postgres_url();
    let url = format!("{base}{}sslmode=require", if base.contains('?') { '&' } else { '?' });
    let parsed = cloacina::database::DatabaseUrl::parse(&url).expect("url");
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).expect("a TLS connection");
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut conn)
        .expect("pg_stat_ssl");
    assert!(row.ssl, "the session is encrypted");
}

/// A process that exits while other threads are in TLS handshakes exits cleanly. OpenSSL's own
/// exit handler would free its state under those threads (SIGSEGV after a clean shutdown, seen on
/// `cloacinactl serve` when the pool was still opening a connection); Cloacina initialises OpenSSL
/// without it. Ten processes, four connecting threads each: before the fix most of them crashed.
#[cfg(feature = "postgres")]
#[test]
fn exit_during_tls_handshakes_is_clean() {
    let base = crate::harness::postgres_url();
    let url = format!("{base}{}sslmode=require", if base.contains('?') { '&' } else { '?' });
    for round in 0..10 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloacina-test-worker"))
            .env("CLOACINA_WORKER_URL", &url)
            .env("CLOACINA_WORKER_EXIT_WHILE_CONNECTING", "4")
            .output()
            .expect("run the worker");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "EXITING", "round {round}");
        assert!(out.status.success(), "round {round}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
}

//! `cloacinactl db migrate|status` against real databases, and its errors for bad input.

#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Command, Output};

fn cloacinactl<S: AsRef<std::ffi::OsStr>>(args: &[S], url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloacinactl"));
    cmd.args(args).env_remove("DATABASE_URL").env_remove("CLOACINA_SCHEMA");
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.output().expect("run cloacinactl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// The `data` of a `--json` document (`{"version": 1, "data": …}`).
fn data(out: &std::process::Output) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
    assert_eq!(doc["version"], 1, "{doc}");
    doc["data"].clone()
}

/// migrate → status --json → status (table), on one database.
fn migrate_then_status(url: &str, schema: Option<&str>) {
    let mut extra: Vec<&str> = Vec::new();
    if let Some(s) = schema {
        extra.extend(["--schema", s]);
    }
    let with = |args: &[&'static str]| -> Vec<String> { args.iter().chain(&extra).map(|s| (*s).to_owned()).collect() };

    let before = cloacinactl(&with(&["db", "status", "--json"]), Some(url));
    assert!(before.status.success(), "{}", stderr(&before));
    let before = data(&before);
    assert_eq!(before["applied"].as_array().unwrap().len(), 0);
    let pending = before["pending"].as_array().unwrap().len();
    assert!(pending >= 1);
    assert!(before["rows"].is_null());

    let migrated = cloacinactl(&with(&["db", "migrate"]), Some(url));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let text = stdout(&migrated);
    assert!(text.contains(&format!("applied {pending} migration(s)")), "{text}");
    // Each step with its duration, in order.
    let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("applied 20") && l.ends_with(" ms")).collect();
    let versions: Vec<&str> = before["pending"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(steps.len(), versions.len(), "{text}");
    for (step, version) in steps.iter().zip(&versions) {
        assert!(step.starts_with(&format!("applied {version} in ")), "{step}");
    }
    let again = cloacinactl(&with(&["db", "migrate"]), Some(url));
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));

    let after = cloacinactl(&with(&["db", "status", "--json"]), Some(url));
    let after = data(&after);
    assert_eq!(after["pending"].as_array().unwrap().len(), 0);
    assert_eq!(after["rows"]["task_executions"], 0);
    assert_eq!(after["rows"].as_object().unwrap().len(), cloacina::database::schema::TABLES.len());

    let table = cloacinactl(&with(&["db", "status"]), Some(url));
    let text = stdout(&table);
    assert!(text.contains(&format!("{pending} applied, 0 pending")) && text.contains("pipeline_executions"), "{text}");
}

#[cfg(feature = "sqlite")]
#[test]
fn migrate_and_status_on_sqlite() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.canonicalize().unwrap().join(format!("{}.db", unique("cli")));
    let url = format!("sqlite://{}", path.display());
    // An empty file is an empty SQLite database (a missing one is refused, not created).
    std::fs::File::create(&path).unwrap();
    migrate_then_status(&url, None);
    let status = cloacinactl(&["db", "status", "--json"], Some(&url));
    assert_eq!(data(&status)["backend"], "sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn migrate_and_status_on_postgres_schema() {
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = unique("cli");
    migrate_then_status(&url, Some(&schema));
    let parsed = cloacina::database::DatabaseUrl::parse(&url).unwrap();
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).unwrap();
    diesel::connection::SimpleConnection::batch_execute(&mut conn, &format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}

#[test]
fn bad_input_gets_one_clear_line_and_a_failure_code() {
    let cases: [(&[&str], Option<&str>, &str); 6] = [
        (&["db", "status"], None, "no database URL: pass --database-url or set DATABASE_URL"),
        (&["db", "status"], Some("mysql://root:pw@localhost/app"), "unsupported database URL scheme `mysql://`"),
        (&["db", "migrate", "--database-url", "redis://localhost"], None, "unsupported database URL scheme `redis://`"),
        // No path: SQLite would migrate a throw-away temporary database and report success.
        (&["db", "migrate", "--database-url", "sqlite://"], None, "`sqlite://` names no file"),
        (&["db", "migrate"], Some("file:"), "`file:` names no file"),
        (&["db", "status"], Some("host=localhost user=app password=pw@"), "libpq keyword/value string"),
    ];
    for (args, url, expected) in cases {
        let out = cloacinactl(args, url);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: bad input exits 2: {err}");
        assert_eq!(err.lines().count(), 1, "one line on stderr, got: {err}");
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("pw@"), "{err}");
    }
}

#[test]
fn an_out_of_range_argument_is_a_usage_error_not_a_panic() {
    let out = cloacinactl(&["runs", "list", "--since", "9999999999999d"], Some("sqlite::memory:"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "clap's usage-error code, not a panic's 101: {err}");
    assert!(err.starts_with("error: invalid value '9999999999999d' for '--since <SINCE>'"), "{err}");
    assert!(err.contains("reaches before the year 1") && !err.contains("panicked"), "{err}");
}

#[cfg(feature = "postgres")]
#[test]
fn unreachable_server_is_reported_without_the_password() {
    let out = cloacinactl(&["db", "status"], Some("postgres://admin:s3cret@127.0.0.1:1/app"));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect to postgres://admin:***@127.0.0.1:1/app"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    assert_eq!(out.status.code(), Some(5), "unreachable exits 5: {err}");
}

#[test]
fn version_names_the_backends_and_the_schema() {
    let out = cloacinactl(&["--version"], None);
    let text = stdout(&out);
    assert!(out.status.success() && text.starts_with("cloacinactl "), "{text}");
    assert!(text.contains("backends: ") && text.contains("schema: 2026"), "{text}");
    #[cfg(all(feature = "postgres", feature = "sqlite"))]
    assert!(text.contains("backends: postgres, sqlite"), "{text}");
}

#[test]
fn completions_print_and_a_closed_stdout_is_a_clean_exit() {
    let out = cloacinactl(&["completions", "bash"], None);
    assert!(out.status.success() && stdout(&out).contains("cloacinactl"), "{}", stderr(&out));
    // `cloacinactl … | head -0`: the reader is gone before the first line is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloacinactl"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked") && err.is_empty(), "{err}");
}

/// A mistyped SQLite path is reported, and no empty database file is left behind; only `db
/// migrate` creates one.
#[cfg(feature = "sqlite")]
#[test]
fn commands_other_than_migrate_never_create_a_sqlite_file() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.canonicalize().unwrap().join(format!("{}.db", unique("typo")));
    for url in [format!("sqlite://{}", path.display()), path.display().to_string()] {
        for args in [&["db", "status"][..], &["runs", "list"], &["workflows", "list"], &["schedules", "list"]] {
            let out = cloacinactl(args, Some(&url));
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(3), "{args:?} on {url}: {err}");
            assert!(err.contains("no SQLite database at") && err.contains("db migrate"), "{err}");
            assert!(!path.exists(), "{args:?} created {}", path.display());
        }
    }
    let out = cloacinactl(&["db", "migrate"], Some(&format!("sqlite://{}", path.display())));
    assert!(out.status.success() && path.exists(), "{}", stderr(&out));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A real FUSE mount (`bindfs` over a scratch directory): a SQLite database there is refused with
/// the reason and the way out, nothing is created; `CLOACINA_SQLITE_ALLOW_NETWORK_FS=1` lets it
/// through. Needs `bindfs` and the right to mount (`scripts/test` installs it; CI runs as root).
#[cfg(feature = "sqlite")]
#[test]
fn a_sqlite_database_on_a_fuse_mount_is_refused_unless_allowed() {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("fusermount").arg("-u").arg(&self.0).status();
        }
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs").join(unique("fuse"));
    let (backing, mount) = (dir.join("backing"), dir.join("mount"));
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("bindfs").arg(&backing).arg(&mount).status();
    assert!(
        mounted.as_ref().is_ok_and(|s| s.success()),
        "bindfs could not mount a FUSE file system ({mounted:?}); install it with `apt-get install bindfs` (scripts/test does)"
    );
    let guard = Unmount(mount.clone());
    let url = format!("sqlite://{}", mount.join("app.db").display());

    let refused = cloacinactl(&["db", "migrate"], Some(&url));
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("is on a fuse file system") && err.contains("CLOACINA_SQLITE_ALLOW_NETWORK_FS=1"), "{err}");
    assert!(err.contains("db copy") && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_dir(&backing).unwrap().count(), 0, "nothing was created");

    let allowed = Command::new(env!("CARGO_BIN_EXE_cloacinactl"))
        .args(["db", "migrate"])
        .env("DATABASE_URL", &url)
        .env("CLOACINA_SQLITE_ALLOW_NETWORK_FS", "1")
        .output()
        .unwrap();
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert!(backing.join("app.db").exists());
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Passwords for the leak tests: each printable ASCII character at the start, the middle and the
/// end of a password (`/ ? # @ :` and `%` included, unencoded), alone and among an `@` that comes
/// before a `/`, `#` or `?` (the shapes that once split at the wrong `@`).
#[cfg(feature = "postgres")]
fn passwords() -> Vec<String> {
    (' '..='~')
        .flat_map(|c| [format!("{c}gh{c}ij{c}"), format!("{c}g@h{c}i/j{c}"), format!("{c}p@ss/w#rd?x{c}")])
        .collect()
}

/// Every command that opens a database, given a PostgreSQL URL that cannot connect, names the
/// URL with `***` for the password and shows no part of it, whatever characters it holds.
#[cfg(feature = "postgres")]
#[test]
fn no_command_shows_any_part_of_a_password() {
    let copy_target = std::env::temp_dir().join(unique("leak_copy"));
    let target = format!("sqlite://{}", copy_target.display());
    let id = "0190b8f4-0000-7000-8000-000000000000";
    let commands: Vec<Vec<String>> = [
        vec!["db", "migrate"],
        vec!["db", "status"],
        vec!["runs", "list"],
        vec!["runs", "show", id],
        vec!["runs", "start", "etl"],
        vec!["runs", "retry", id],
        vec!["runs", "cancel", id],
        vec!["runs", "prune", "--older-than", "1d"],
        vec!["schedules", "list"],
        vec!["schedules", "show", id],
        vec!["workflows", "list"],
        vec!["serve", "--bind", "127.0.0.1:0"],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(str::to_owned).collect())
    .collect();
    let passwords = passwords();
    let chunks: Vec<&[String]> = passwords.chunks(passwords.len().div_ceil(4)).collect();
    std::thread::scope(|scope| {
        for chunk in chunks {
            let (commands, target) = (&commands, &target);
            scope.spawn(move || {
                for password in chunk {
                    let url = format!("postgres://admin:{password}@127.0.0.1:1/app");
                    let copy = vec![
                        "db".to_owned(),
                        "copy".into(),
                        "--from".into(),
                        url.clone(),
                        "--to".into(),
                        target.clone(),
                    ];
                    for args in commands.iter().chain([&copy]) {
                        let out = cloacinactl(args, Some(&url));
                        let all = format!("{}{}", stdout(&out), stderr(&out));
                        assert!(!out.status.success(), "{args:?} with {password:?} succeeded: {all}");
                        let core = &password[1..password.len() - 1]; // `gh?ij`: the part no other text has
                        let encoded: String =
                            core.bytes()
                                .map(|b| {
                                    if b.is_ascii_alphanumeric() {
                                        (b as char).to_string()
                                    } else {
                                        format!("%{b:02X}")
                                    }
                                })
                                .collect();
                        for form in [core, encoded.as_str()] {
                            assert!(!all.contains(form), "{args:?} shows the password {password:?}: {all}");
                        }
                        assert!(all.contains("postgres://admin:***@127.0.0.1:1/app"), "{args:?} {password:?}: {all}");
                    }
                }
            });
        }
    });
    assert!(!copy_target.exists(), "a failed copy leaves no file");
}

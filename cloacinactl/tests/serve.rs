//! `cloacinactl serve`: answers on loopback, stops cleanly on SIGTERM, refuses a public address
//! without a token, on SQLite and on a PostgreSQL schema.

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn serve_until_sigterm(url: &str, schema: Option<&str>) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloacinactl"));
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", url)
        .env_remove("CLOACINA_TOKEN")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    if let Some(schema) = schema {
        cmd.args(["--schema", schema]);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    // The log says when it listens; then it must answer.
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("serve exited early: {seen:?}")).unwrap();
        seen.push(line.clone());
        assert!(!line.contains("ERROR"), "{line}");
        if line.contains("serving the Cloacina API") {
            break;
        }
        assert!(Instant::now() < deadline, "no listening line within 60 s");
    }
    let ready = get(port, "/readyz").expect("answers");
    assert!(ready.starts_with("HTTP/1.1 200") && ready.contains("\"ready\""), "{ready}");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "a graceful stop exits 0: {exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

#[cfg(feature = "sqlite")]
#[test]
fn serves_sqlite_until_sigterm() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("serve_{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    // `serve` refuses a SQLite path with no file (a typo must not create a database).
    let refused =
        Command::new(env!("CARGO_BIN_EXE_cloacinactl")).args(["serve"]).env("DATABASE_URL", &url).output().unwrap();
    assert_eq!(refused.status.code(), Some(3), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(!path.exists());
    std::fs::File::create(&path).unwrap();
    serve_until_sigterm(&url, None);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn serves_a_postgres_schema_until_sigterm() {
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("serve_{}", std::process::id());
    serve_until_sigterm(&url, Some(&schema));
    let _ = Command::new("psql")
        .args([url.as_str(), "-c", &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")])
        .output();
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_cloacinactl"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env("DATABASE_URL", "sqlite::memory:")
        .env_remove("CLOACINA_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:0 without a token"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

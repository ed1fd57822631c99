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

/// `serve` on a PostgreSQL URL whose password holds any printable ASCII character (at the start,
/// the middle and the end; the local server trusts the login, so the password is only carried):
/// the startup log names the database with `***` and shows no part of the password.
#[cfg(feature = "postgres")]
#[test]
fn serve_logs_no_part_of_a_password() {
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let user = user.split(':').next().unwrap();
    let schema = format!("serve_pw_{}", std::process::id());
    let passwords: Vec<String> =
        (' '..='~').flat_map(|c| [format!("{c}gh{c}ij{c}"), format!("{c}p@ss/w#rd?x{c}")]).collect();
    let chunks: Vec<&[String]> = passwords.chunks(passwords.len().div_ceil(4)).collect();
    std::thread::scope(|scope| {
        for chunk in chunks {
            let schema = &schema;
            scope.spawn(move || {
                for password in chunk {
                    let with_password = format!("{scheme}://{user}:{password}@{host}");
                    let log = serve_log(&with_password, schema);
                    let core = &password[1..password.len() - 1];
                    assert!(!log.contains(core), "serve shows the password {password:?}: {log}");
                    assert!(log.contains(&format!("{scheme}://{user}:***@{host}")), "{password:?}: {log}");
                }
            });
        }
    });
    let _ = Command::new("psql")
        .args([url.as_str(), "-c", &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")])
        .output();
}

/// Everything `serve` logs from its start to its stop on SIGTERM.
#[cfg(feature = "postgres")]
fn serve_log(url: &str, schema: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloacinactl"))
        .args(["serve", "--bind", "127.0.0.1:0", "--schema", schema])
        .env("DATABASE_URL", url)
        .env_remove("CLOACINA_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("serving the Cloacina API") {
            break;
        }
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    for line in lines.map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.wait().unwrap();
    log + &out
}

/// `serve` logs each limit it enforces (throttled), and never the token: failed authentications
/// with the client's address, then the refusal of the address; the connection limit.
#[cfg(feature = "sqlite")]
#[test]
fn serve_logs_the_limits_it_enforces_without_the_token() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("serve_limits_{}.db", std::process::id()));
    std::fs::File::create(&path).unwrap();
    let token = "a-token-nobody-should-see-0123";
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloacinactl"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--max-connections", "2"])
        .args(["--auth-failures-per-minute", "2"])
        .env("DATABASE_URL", format!("sqlite://{}", path.display()))
        .env("CLOACINA_TOKEN", token)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("serving the Cloacina API") {
            break;
        }
    }
    let post = |bearer: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let guesses: Vec<String> = (0..3).map(|i| post(&format!("guess-number-{i}-of-many"))).collect();
    assert!(guesses[0].starts_with("HTTP/1.1 401") && guesses[2].starts_with("HTTP/1.1 429"), "{guesses:?}");
    // Two idle connections fill the limit; the server closes every further one.
    let held: Vec<std::net::TcpStream> =
        (0..2).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(port, "/healthz").is_some_and(|r| !r.is_empty()) {
        assert!(Instant::now() < deadline, "a third connection is still served");
    }
    drop(held);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    let log = log.join("\n");
    assert!(log.contains("authentication failed: POST /api/v1/runs from 127.0.0.1"), "{log}");
    assert!(log.contains("connection limit reached (2 open)"), "{log}");
    assert!(!log.contains(token) && !log.contains("guess-number"), "no token in the log: {log}");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

//! What the server refuses and what one client cannot take from the others: security headers on
//! every response, the Host check against DNS rebinding, errors in one JSON shape, NUL
//! characters refused on both backends, tokens no client could send, the generated OpenAPI
//! document against the router, and (over real sockets) the header, body and idle timeouts, the
//! connection and request limits and the failed-authentication limit.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cloacina_server::{Limits, ServeError};

use super::*;

async fn refusals(t: TestDb) {
    let (_open, gate) = watch::channel(true);
    let runner = runner(&t, &gate).await;
    let config = ServerConfig {
        token: Some(TOKEN.to_owned()),
        allowed_hosts: vec!["cloacina.example".to_owned()],
        ..Default::default()
    };
    let app = router(t.open(), config);

    // Every response carries the security headers: pages, assets, API answers and errors.
    for call in [
        Call::get("/"),
        Call::get("/assets/app.js"),
        Call::get("/api/v1/runs"),
        Call::get("/nothing"),
        Call::get("/healthz"),
        Call::get("/api/v1/runs").with("DELETE"),
        Call { host: "evil.example", ..Call::get("/") },
    ] {
        let path = call.path;
        let (_, headers, _) = call.exchange(&app).await;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }

    // DNS rebinding: a name the server was not told about is refused, for reads and for
    // changes (even with an Origin that matches it, as a rebound page's does).
    let run = runner.execute("ok_flow", Context::new()).await.unwrap().execution_id;
    let pause = format!("/api/v1/runs/{run}/pause");
    for host in ["evil.example:8080", "evil.example", "localhost.evil.example", "127.0.0.1.evil.example"] {
        let (s, v) = Call { host, ..Call::get("/api/v1/runs") }.send(&app).await;
        assert_eq!((s, code(&v)), (StatusCode::MISDIRECTED_REQUEST, "misdirected_request"), "{host}: {v}");
        let origin = format!("http://{host}");
        let (s, _) = Call { host, origin: Some(&origin), ..Call::post(&pause, Value::Null) }.send(&app).await;
        assert_eq!(s, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for host in
        ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "10.0.0.7", "cloacina.example", "Cloacina.Example:443"]
    {
        let (s, v) = Call { host, ..Call::get("/api/v1/runs") }.send(&app).await;
        assert_eq!(s, StatusCode::OK, "{host}: {v}");
    }

    // Errors in one shape: a path that is not UTF-8, a method a route does not take.
    for (call, status, error) in [
        (Call::get("/api/v1/runs/%FF%FE"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            Call { token: Some(TOKEN), ..Call::get("/api/v1/runs").with("DELETE") },
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (Call::get("/api/v1/schedules/x/pause"), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (
            Call { body: Some("{}".into()), ..Call::post("/api/v1/runs", Value::Null) },
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ] {
        let path = call.path;
        let (s, headers, v) = call.exchange(&app).await;
        assert_eq!((s, code(&v)), (status, error), "{path}: {v}");
        assert_eq!(headers["content-type"], "application/json", "{path}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {v}");
    }

    // NUL characters: one rule on both backends, a 400 naming the field, nothing stored.
    let before = Call::get("/api/v1/runs?limit=500").send(&app).await.1["runs"].as_array().unwrap().len();
    let (s, v) = Call::get("/api/v1/runs?workflow=%00").send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("`workflow`"), "{v}");
    for (body, field) in [
        (json!({ "workflow": "ok_flow", "context": { "k": "a\u{0}b" } }), "`context.k`"),
        (json!({ "workflow": "ok_flow", "context": { "k\u{0}": 1 } }), "`context.k\\u0000`"),
        (json!({ "workflow": "ok_flow", "context": { "list": [{ "deep": "\u{0}" }] } }), "`context.list[0].deep`"),
        (json!({ "workflow": "ok\u{0}flow" }), "`workflow`"),
    ] {
        let (s, v) = Call::post("/api/v1/runs", body.clone()).send(&app).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    let after = Call::get("/api/v1/runs?limit=500").send(&app).await.1["runs"].as_array().unwrap().len();
    assert_eq!(before, after, "a refused run is not stored");
    let nul_schedule = json!({ "workflow": "ok_flow", "expression": "0 3 * * *", "context": { "k": "\u{0}" } });
    let (s, v) = Call::post("/api/v1/schedules", nul_schedule).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{v}");
    let (s, v) =
        Call::post("/api/v1/schedules", json!({ "workflow": "ok_flow", "expression": "0 3 * * *" })).send(&app).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let one = format!("/api/v1/schedules/{}", v["schedule"]["id"].as_str().unwrap());
    for change in [
        json!({ "timezone": "UTC\u{0}" }),
        json!({ "expression": "0 3 * * *\u{0}" }),
        json!({ "context": { "\u{0}": 1 } }),
    ] {
        let (s, v) = Call::post(&one, change.clone()).with("PUT").send(&app).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{change}: {v}");
    }
    let (_, v) = Call::get(&one).send(&app).await;
    assert_eq!((v["schedule"]["timezone"].as_str(), v["schedule"]["context"].clone()), (Some("UTC"), json!({})));
    runner.shutdown().await.unwrap();
}

both_backends!(refuses_rebinding_nul_and_answers_errors_as_json, refusals);

/// The generated document describes exactly what the router serves: every operation it lists
/// answers through the router (no 404 or 405 from routing), bodies refuse unknown fields, and the
/// text limits it states are the library's.
#[test]
fn the_document_is_generated_from_the_routes() {
    block_on(async {
        let t = TestDb::sqlite();
        let app = router(t.open(), ServerConfig::default());
        let (s, doc) = Call::get("/api/v1/openapi.json").send(&app).await;
        assert_eq!((s, doc["openapi"].as_str()), (StatusCode::OK, Some("3.1.0")));
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations += 1;
                let mut concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
                if path == "/api/v1/events" {
                    // A stream does not end: a bad query answers at once, through the route.
                    concrete.push_str("?since=not-a-time");
                }
                let (s, v) =
                    Call { method: &method.to_uppercase(), token: None, ..Call::get(&concrete) }.send(&app).await;
                let routed = v["error"]["code"] != "method_not_allowed"
                    && !(s == StatusCode::NOT_FOUND
                        && v["error"]["message"].as_str().unwrap_or("").contains("no such route"));
                assert!(routed, "{method} {path} is documented but not routed: {s} {v}");
            }
        }
        assert!(operations >= 18, "{operations} operations");
        let schemas = &doc["components"]["schemas"];
        for body in ["StartRun", "CreateSchedule", "ChangeSchedule"] {
            assert_eq!(schemas[body]["additionalProperties"], false, "{body} refuses unknown fields");
        }
        assert_eq!(schemas["StartRun"]["properties"]["workflow"]["maxLength"], cloacina::input::MAX_NAME);
        assert_eq!(
            schemas["CreateSchedule"]["properties"]["expression"]["maxLength"],
            cloacina::input::MAX_CRON_EXPRESSION
        );
        assert_eq!(schemas["CreateSchedule"]["properties"]["timezone"]["maxLength"], cloacina::input::MAX_TIMEZONE);
        // The changing operations name the token; every one may answer 421 and 503.
        let start = &doc["paths"]["/api/v1/runs"]["post"];
        assert!(start["security"][0]["bearer"].is_array(), "{start}");
        for status in ["401", "403", "421", "429", "503"] {
            assert!(start["responses"][status].is_object(), "{status}");
        }
    });
}

#[test]
fn tokens_no_client_could_send_are_refused_at_start() {
    let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    for (token, why) in [
        ("                    ", "empty or blank"),
        ("\t \t", "empty or blank"),
        ("ünïcode-token-of-enough-length", "non-ASCII"),
        ("a token with spaces inside it", "spaces"),
        ("short-token", "shorter than 16"),
    ] {
        let config = ServerConfig { token: Some(token.to_owned()), ..Default::default() };
        let err = config.check(loopback).unwrap_err();
        assert!(matches!(err, ServeError::BadToken(_)), "{token:?}: {err}");
        let text = err.to_string();
        assert!(text.contains(why.split(' ').next().unwrap()) || text.contains(why), "{token:?}: {text}");
        assert!(!text.contains(token.trim()) || token.trim().is_empty(), "the token is never shown: {text}");
    }
    let ok = ServerConfig { token: Some(TOKEN.to_owned()), ..Default::default() };
    assert!(ok.check("0.0.0.0:8080".parse().unwrap()).is_ok());
    let zero = ServerConfig { limits: Limits { max_in_flight: 0, ..Limits::default() }, ..Default::default() };
    assert!(matches!(zero.check(loopback), Err(ServeError::BadLimits(_))));
}

/// A server on a real socket with `limits` and the test token; stopped when dropped.
struct Live {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _t: TestDb,
}

impl Live {
    async fn start(limits: Limits) -> Self {
        let t = TestDb::sqlite();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = ServerConfig { token: Some(TOKEN.to_owned()), limits, ..Default::default() };
        tokio::spawn(cloacina_server::serve_on(listener, t.open(), config, async {
            let _ = stopped.await;
        }));
        Self { addr, stop: Some(stop), _t: t }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Everything the server sends until it closes the connection (or 20 s pass: a failure).
fn read_to_close(mut stream: TcpStream) -> (String, Duration) {
    let began = Instant::now();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), began.elapsed())
}

/// One request on a new connection; the response's status line and body.
fn request(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may close a connection over its limit before this is written: that is an answer too.
    let _ = write!(stream, "{head}Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
    read_to_close(stream).0
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[test]
fn slow_and_idle_clients_are_cut_off() {
    block_on(async {
        let limits = Limits {
            header_timeout: Duration::from_millis(400),
            body_timeout: Duration::from_millis(400),
            ..Limits::default()
        };
        let live = Live::start(limits).await;
        let addr = live.addr;
        // Half-sent headers: closed after the header timeout.
        let mut half = live.connect();
        write!(half, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1").unwrap();
        let (_, took) = blocking(move || read_to_close(half)).await;
        assert!(took < Duration::from_secs(10), "half-sent headers held the connection {took:?}");
        // An idle keep-alive connection: served once, then closed.
        let mut idle = live.connect();
        write!(idle, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let (answer, took) = blocking(move || read_to_close(idle)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(took < Duration::from_secs(10), "an idle connection stayed open {took:?}");
        // A body that stops coming: 408, and the connection closes.
        let mut slow = live.connect();
        write!(
            slow,
            "POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"workflow\":"
        )
        .unwrap();
        let (answer, took) = blocking(move || read_to_close(slow)).await;
        assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("request_timeout"), "{answer}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        // A body declared over the limit: 413 at once, before any of it is read.
        let answer = blocking(move || {
            request(
                addr,
                &format!("POST /api/v1/runs HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 52428800\r\n"),
            )
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large"), "{answer}");
    });
}

#[test]
fn connections_and_requests_over_the_limits_are_refused_and_health_still_answers() {
    block_on(async {
        let limits = Limits { max_connections: 8, max_in_flight: 1, ..Limits::default() };
        let live = Live::start(limits).await;
        let addr = live.addr;
        // Eight idle connections take every slot: the ninth is closed at once, unanswered.
        let held: Vec<TcpStream> = (0..8).map(|_| live.connect()).collect();
        let answer = blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                // The server accepts the eight first; a ninth then finds no slot.
                let answer = request(addr, "GET /healthz HTTP/1.1\r\n");
                if answer.is_empty() || Instant::now() > deadline {
                    return answer;
                }
            }
        })
        .await;
        assert_eq!(answer, "", "a connection over the limit gets nothing");
        drop(held);
        // Slots come back as those connections close.
        let answer = blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let answer = request(addr, "GET /healthz HTTP/1.1\r\n");
                if answer.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
                    return answer;
                }
            }
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // One request in flight (its body still arriving) fills the request limit: the API answers
        // 503 with Retry-After, health checks still answer. (A server of its own: the slots of the
        // connections above come back only as the server notices them closed.)
        let live = Live::start(Limits { max_in_flight: 1, ..Limits::default() }).await;
        let addr = live.addr;
        let (api, health, busy) = blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                // The request whose body is still arriving; a probe that reaches the server before
                // its headers takes the slot first (and this one is refused): start it again.
                let mut busy = TcpStream::connect(addr).unwrap();
                write!(
                    busy,
                    "POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
                )
                .unwrap();
                let api = request(addr, "GET /api/v1/runs HTTP/1.1\r\n");
                if api.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
                    break (api, request(addr, "GET /healthz HTTP/1.1\r\n"), busy);
                }
            }
        })
        .await;
        assert!(api.starts_with("HTTP/1.1 503") && api.contains("retry-after: 1") && api.contains("\"busy\""), "{api}");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        drop(busy);
    });
}

#[test]
fn one_client_cannot_take_every_connection() {
    block_on(async {
        let limits = Limits { max_connections_per_client: 4, ..Limits::default() };
        let live = Live::start(limits).await;
        let addr = live.addr;
        // 127.0.0.1 holds its four; its fifth is closed, while 127.0.0.2 is still served.
        let held: Vec<TcpStream> = (0..4).map(|_| live.connect()).collect();
        let mine = blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let answer = request(addr, "GET /healthz HTTP/1.1\r\n");
                if answer.is_empty() || Instant::now() > deadline {
                    return answer;
                }
            }
        })
        .await;
        assert_eq!(mine, "", "a client over its limit gets nothing");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let other = socket.connect(addr).await.unwrap().into_std().unwrap();
        other.set_nonblocking(false).unwrap();
        let answer = blocking(move || {
            let mut other = other;
            other.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(other, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
            read_to_close(other).0
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "another client is served: {answer}");
        drop(held);
    });
}

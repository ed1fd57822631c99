//! A small HTTP/1.1 client over `std::net` for tests and benchmarks that talk to a real
//! `cloacinactl serve` child: one request per connection, and Server-Sent Events streams.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

/// Opens a Server-Sent Events stream at `path`; the reader is past the response headers.
pub(crate) fn sse(port: u16, path: &str) -> std::io::BufReader<std::net::TcpStream> {
    sse_resumed(port, path, "")
}

/// [`sse`] with `Last-Event-ID: cursor` (none when empty).
pub(crate) fn sse_resumed(port: u16, path: &str, cursor: &str) -> std::io::BufReader<std::net::TcpStream> {
    use std::io::{BufRead, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let resume = if cursor.is_empty() { String::new() } else { format!("Last-Event-ID: {cursor}\r\n") };
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{resume}Accept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" {
            return reader;
        }
    }
}

/// The next event of a stream: its id and its data (chunked framing and comments skipped).
pub(crate) fn next_event(reader: &mut std::io::BufReader<std::net::TcpStream>) -> (String, Value) {
    use std::io::BufRead;
    let mut id = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if let Some(rest) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            id = rest.trim().to_owned();
        } else if let Some(data) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
            return (id, serde_json::from_str(data.trim()).unwrap());
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request to the server on `port` (the token as a bearer when given): the status
/// and the JSON body.
pub(crate) fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let kind = if path.ends_with("/packages") { "application/octet-stream" } else { "application/json" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    (status, json)
}

//! Commands that talk to a running server (`--server URL` or `CLOACINA_SERVER`) over its HTTP
//! API instead of to the database. The token comes from `CLOACINA_TOKEN` only, never from the
//! command line (where `ps` and shell history would keep it); no message shows it.

use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{Method, Url};
use serde_json::Value;

use super::output::{fail, Failure};

/// A server's API.
pub(crate) struct Server {
    base: Url,
    token: Option<String>,
    http: Client,
}

impl Server {
    /// The server at `url` (`http://host:port`, or with a path prefix where it is mounted).
    pub(crate) fn at(url: &str) -> anyhow::Result<Self> {
        let mut base = Url::parse(url.trim()).map_err(|e| {
            fail(Failure::BadInput, format!("--server: `{url}` is not a URL ({e}); e.g. http://127.0.0.1:8080"))
        })?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(fail(
                Failure::BadInput,
                "--server: put no credentials in the URL; the token goes in CLOACINA_TOKEN",
            ));
        }
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(fail(
                    Failure::BadInput,
                    "--server: this build's client speaks plain http only; reach the server over a private \
                     network or through a local TLS proxy",
                ))
            }
            other => {
                return Err(fail(Failure::BadInput, format!("--server: unsupported scheme `{other}`; use http://")))
            }
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = std::env::var("CLOACINA_TOKEN").ok().filter(|t| !t.is_empty());
        let http = Client::builder().timeout(Duration::from_secs(600)).build()?;
        Ok(Server { base, token, http })
    }

    /// Sends `method` to `path` (relative to `/api/v1/`) with `body` as an archive, and returns
    /// the answer's JSON; an error answer becomes an error with the server's message, classed by
    /// its status (404: not found, 409: conflict, 5xx: unreachable, other 4xx: bad input).
    pub(crate) fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Value> {
        self.send(method, path, body, None)
    }

    /// Uploads an archive, with its signature file's text when it is signed.
    pub(crate) fn upload(&self, archive: Vec<u8>, signature: Option<String>) -> anyhow::Result<Value> {
        self.send(Method::POST, "packages", Some(archive), signature)
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        signature: Option<String>,
    ) -> anyhow::Result<Value> {
        let url = self
            .base
            .join(&format!("api/v1/{path}"))
            .map_err(|e| fail(Failure::BadInput, format!("`{path}` cannot be part of a URL: {e}")))?;
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(body);
        }
        if let Some(signature) = signature {
            // One line of JSON: a valid header value.
            request = request.header("X-Cloacina-Signature", signature.trim());
        }
        let shown = self.base.as_str().trim_end_matches('/').to_owned();
        let response = request.send().map_err(|e| {
            fail(Failure::Unreachable, format!("cannot reach the server at {shown}: {}", root_cause(&e)))
        })?;
        let status = response.status();
        let text = response
            .text()
            .map_err(|e| fail(Failure::Unreachable, format!("the server at {shown} broke off its answer: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server at {shown} answered {status}"));
        let failure = match status.as_u16() {
            404 => Failure::NotFound,
            409 => Failure::Conflict,
            s if s >= 500 || s == 429 => Failure::Unreachable,
            _ => Failure::BadInput,
        };
        let hint = if status.as_u16() == 401 && self.token.is_none() { " (set CLOACINA_TOKEN)" } else { "" };
        Err(fail(failure, format!("{message}{hint}")))
    }
}

/// The innermost reason of a client error (a refused connection, a timeout).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

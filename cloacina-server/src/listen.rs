//! The accept loop: HTTP/1 connections served by hyper with a header timeout (which also ends
//! idle keep-alive connections), at most [`Limits::max_connections`](crate::Limits) of them and
//! [`Limits::max_connections_per_client`](crate::Limits) per client address, the client's address
//! available to the handlers, and a graceful stop that finishes requests in flight.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::limits::{Limits, Throttle};

/// How long a graceful stop waits for connections still open before it closes them.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    refused: Arc<Throttle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client: Counts = Arc::default();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine. Pause so a persistent error does not spin.
                    refused.warn(format_args!("cannot accept a connection: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.warn(format_args!(
                "connection limit reached ({} open): closing new connections",
                limits.max_connections
            ));
            drop(stream);
            continue;
        };
        let Some(client) = PerClient::take(&per_client, peer.ip(), limits.max_connections_per_client) else {
            refused.warn(format_args!(
                "client {} holds {} connections, its limit: closing its new ones",
                peer.ip(),
                limits.max_connections_per_client
            ));
            drop(stream);
            continue;
        };
        let app = app.clone().map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
        tokio::spawn(async move {
            // A connection's errors (a client gone, a header timeout) concern that client only.
            let _ = connection.await;
            drop((slot, client));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open after {DRAIN:?}: closing them"),
    }
    Ok(())
}

/// Open connections per client address.
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection counted against its client's limit; dropping it gives the place back.
struct PerClient {
    counts: Counts,
    ip: IpAddr,
}

impl PerClient {
    /// Counts a new connection of `ip`, unless it already holds `limit`.
    fn take(counts: &Counts, ip: IpAddr, limit: usize) -> Option<PerClient> {
        let mut map = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = map.entry(ip).or_insert(0);
        if *held >= limit {
            return None;
        }
        *held += 1;
        Some(PerClient { counts: counts.clone(), ip })
    }
}

impl Drop for PerClient {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

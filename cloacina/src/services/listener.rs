//! The work listener (PostgreSQL): wakes the claim loop as soon as another runner commits Ready
//! work, instead of at the next poll.
//!
//! Transactions that leave Ready work for others (a pipeline created, dependents made Ready and
//! not claimed, leases recovered, a pipeline resumed) announce it with [`Store::announce_work`](crate::engine::Store::announce_work);
//! PostgreSQL delivers the announcement when they commit. This service keeps one connection of
//! its own (outside the pool) subscribed to the announcements and looks at it every
//! [`LOOK_EVERY`]: libpq reads whatever the socket holds without waiting, so a look costs one
//! system call and no round trip. Announcements of another schema or of this runner itself (which
//! wakes its claim loop in process) are ignored.
//!
//! It also hears that a package was uploaded or deleted (`PACKAGES_CHANGED`), which wakes a
//! daemon following the stored packages.
//!
//! The poll interval stays as the safety net: an announcement lost with the listening session
//! (the connection dropped) costs at most one poll. After reconnecting, the claim loop is woken
//! once, for what may have been missed. Not started on SQLite, which cannot wake another process.

use std::sync::Arc;
use std::time::Duration;

use crate::database::{listen_work, take_notifications, AnyConnection, BackendFeature, PACKAGES_CHANGED};
use crate::engine::{Shutdown, Signals, Store};

/// How often the listening connection is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(2);
/// Pause before reconnecting after the listening session failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The service loop: returns at once on a backend without notifications, otherwise when the
/// services stop.
pub(crate) async fn run(store: Arc<Store>, signals: Arc<Signals>, shutdown: Arc<Shutdown>) {
    if !store.db.backend().supports(BackendFeature::ListenNotify) {
        return;
    }
    // A blocking loop on a thread of its own: the connection is synchronous.
    let stop = shutdown.stop_services.subscribe();
    let _ = tokio::task::spawn_blocking(move || listen(&store, &signals, &stop)).await;
}

fn listen(store: &Store, signals: &Signals, stop: &tokio::sync::watch::Receiver<bool>) {
    let schema = format!("{}:", store.db.schema().unwrap_or(""));
    let mine = store.work_signal();
    let mut session: Option<AnyConnection> = None;
    let mut failing = false;
    while !*stop.borrow() {
        let Some(conn) = session.as_mut() else {
            match subscribe(store) {
                Ok(conn) => {
                    if failing {
                        tracing::info!("listening for work announcements again");
                    }
                    session = Some(conn);
                    failing = false;
                    signals.work_available.notify_one(); // announcements may have been missed
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot listen for work announcements; polling until it can");
                    }
                    failing = true;
                    pause(stop, RECONNECT_AFTER);
                }
            }
            continue;
        };
        match take_notifications(conn) {
            Ok(payloads) => {
                if payloads.iter().any(|p| p.starts_with(&schema) && *p != mine) {
                    signals.work_available.notify_one();
                }
                if payloads.iter().any(|p| p == PACKAGES_CHANGED) {
                    signals.packages_changed.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the session listening for work announcements failed; reconnecting");
                session = None;
                failing = true;
                continue;
            }
        }
        pause(stop, LOOK_EVERY);
    }
}

fn subscribe(store: &Store) -> Result<AnyConnection, crate::database::Error> {
    let mut conn = store.db.dedicated_connection()?;
    listen_work(&mut conn)?;
    Ok(conn)
}

/// Sleeps `d`, in steps short enough to notice the stop signal within [`LOOK_EVERY`].
fn pause(stop: &tokio::sync::watch::Receiver<bool>, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !*stop.borrow() {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(LOOK_EVERY));
    }
}

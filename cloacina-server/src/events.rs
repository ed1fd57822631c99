//! `GET /api/v1/events` and `GET /api/v1/runs/{id}/events`: run and task state changes as
//! Server-Sent Events (ADR 0014), read from the database by a `cloacina::ops::events::Follower`
//! every [`POLL`], so any number of workers on any hosts show up in one stream.
//!
//! Each event is `event: run|task`, `id: <cursor>`, `data: <Event JSON>`. A client that
//! reconnects with `Last-Event-ID` (browsers' `EventSource` does) gets every change recorded
//! after it that is still in the database; `?since=` (RFC 3339) starts a new stream at a time,
//! otherwise it starts now. A stream ends after [`MAX_STREAM`] (the client reconnects and
//! resumes) and when the server stops. Streams do not count against the requests-in-flight
//! limit; [`crate::Limits::max_event_streams`] bounds them (503 beyond). Reading is open as every
//! GET is.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cloacina::ops::events::{Event, Follower};
use serde::Deserialize;
use tokio::time::Instant;
use utoipa::IntoParams;

use crate::error::ErrorBody;
use crate::ids::RunId;
use crate::{ApiError, AppState};

/// How often a stream reads the database for changes.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// How long one stream lasts before it ends (the client resumes with `Last-Event-ID`).
pub(crate) const MAX_STREAM: Duration = Duration::from_secs(600);

type Shared = State<Arc<AppState>>;

/// Where a new stream starts.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Deliver changes recorded after this time (RFC 3339); default: now. A `Last-Event-ID`
    /// header takes precedence.
    since: Option<DateTime<Utc>>,
}

/// Run and task state changes of every run, as Server-Sent Events.
#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery), responses(
    (status = OK, description = "A text/event-stream of events (`event: run|task`, `id: <cursor>`, `data: Event`)", content_type = "text/event-stream", body = Event),
    (status = SERVICE_UNAVAILABLE, description = "Too many event streams are open", body = ErrorBody),
))]
pub(crate) async fn all_events(
    State(s): Shared,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let from = start(&s, &headers, query.since);
    open(s, Follower::new(None, from))
}

/// The state changes of one run and its tasks, as Server-Sent Events.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "events", params(("id" = uuid::Uuid, Path, description = "The run's id"), EventsQuery), responses(
    (status = OK, description = "A text/event-stream of events (`event: run|task`, `id: <cursor>`, `data: Event`)", content_type = "text/event-stream", body = Event),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = SERVICE_UNAVAILABLE, description = "Too many event streams are open", body = ErrorBody),
))]
pub(crate) async fn run_events(
    State(s): Shared,
    RunId(id): RunId,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let from = start(&s, &headers, query.since);
    let follower = s.db.run_with(move |c| Follower::of_run(c, id, from)).await??;
    open(s, follower)
}

/// Where a stream starts: the `Last-Event-ID` it resumes from, else `since`, else now.
fn start(s: &AppState, headers: &HeaderMap, since: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(Follower::resume_point);
    resume.or(since).unwrap_or_else(|| s.config.clock.now())
}

/// What one stream carries between polls.
struct Stream {
    follower: Option<Follower>,
    pending: VecDeque<Event>,
    state: Arc<AppState>,
    closing: tokio::sync::watch::Receiver<bool>,
    ends: Instant,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

fn open(s: Arc<AppState>, follower: Follower) -> Result<Response, ApiError> {
    let slot = s.event_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many event streams are open; retry later")
    })?;
    let stream = Stream {
        follower: Some(follower),
        pending: VecDeque::new(),
        closing: s.closing.subscribe(),
        ends: Instant::now() + MAX_STREAM,
        state: s,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(stream, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                let sse = SseEvent::default().event(e.kind.clone()).id(e.cursor.clone());
                let sse = sse.json_data(&e).unwrap_or_else(|_| SseEvent::default().comment("unencodable event"));
                return Some((Ok::<_, Infallible>(sse), st));
            }
            if *st.closing.borrow() || Instant::now() >= st.ends {
                return None;
            }
            let mut follower = st.follower.take()?;
            let polled = st.state.db.run_with(move |c| Ok::<_, cloacina::Error>((follower.poll(c), follower))).await;
            match polled {
                Ok((Ok(events), follower)) => {
                    st.follower = Some(follower);
                    st.pending.extend(events);
                }
                Ok((Err(e), follower)) => {
                    st.follower = Some(follower);
                    tracing::warn!(error = %e, "reading changes for an event stream failed; trying again");
                }
                // The pool gave no connection: end the stream; the client resumes where it was.
                Err(e) => {
                    tracing::warn!(error = %e, "an event stream lost the database; the client will resume");
                    return None;
                }
            }
            if st.pending.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = st.closing.changed() => {}
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

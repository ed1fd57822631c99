//! Calling Python from the engine: on a thread of its own, never on the engine's threads.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking over the value a panicking holder left.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on a thread of its own (Python code never runs on the engine's threads) and waits;
/// `lost` makes the error for a thread that could not start or ended without an outcome.
pub(crate) async fn on_own_thread<T: Send + 'static, E: Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    lost: impl FnOnce(String) -> E,
) -> Result<T, E> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new().name("cloaca-task".to_owned()).spawn(move || {
        let _ = tx.send(f());
    });
    if let Err(e) = started {
        return Err(lost(format!("cannot start a thread for the Python code: {e}")));
    }
    rx.await.unwrap_or_else(|_| Err(lost("the Python code's thread ended without an outcome".to_owned())))
}

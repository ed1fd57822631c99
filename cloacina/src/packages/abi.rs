//! The host side of the package ABI (`cloacina_workflow::plugin`, ADR 0011): opening a compiled
//! package, checking its ABI version before anything else, reading its description, and calling
//! into it.
//!
//! `unsafe` is confined to this file (the tidy test holds it to that): loading the library,
//! looking up its functions, calling them, and reading the bytes it hands back. A library once
//! opened is never closed: its runtime's threads and the code of runs in flight live in it, and
//! unloading code that a thread may still return into is undefined behaviour. A library whose
//! last [`Plugin`] is dropped is retired instead: its runtime's threads stop, and only its mapped
//! code and static data stay (measured in the README); restarting the process reclaims those.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use cloacina_workflow::plugin::{
    symbols, AbiVersionFn, CallFn, CancelFn, DescribeFn, Description, FreeFn, Reply, Request, RetireFn, ABI_VERSION,
};
use tokio::sync::oneshot;

use super::Error;

/// An opened package: its functions, valid for the life of the process. When the last `Plugin`
/// of a library is dropped (the runner let go of every workflow of its version and no call is in
/// flight: each holds its `Plugin`), the library is told to retire: its runtime's threads stop,
/// so a worker that loaded many versions keeps only their mapped code.
#[derive(Debug)]
pub(crate) struct Plugin {
    call: CallFn,
    cancel: CancelFn,
    retire: Option<RetireFn>,
    path: PathBuf,
}

/// How many `Plugin`s each opened library (by path: opening one path again is the same library)
/// has now.
fn holders() -> &'static Mutex<HashMap<PathBuf, usize>> {
    static HOLDERS: OnceLock<Mutex<HashMap<PathBuf, usize>>> = OnceLock::new();
    HOLDERS.get_or_init(Mutex::default)
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Under the lock: a `Plugin` of the same library opened meanwhile is counted before it
        // makes a call, so it is never left with a retired runtime (a later call restarts one).
        let mut holders = holders().lock().unwrap_or_else(PoisonError::into_inner);
        let left = holders.get_mut(&self.path).map_or(0, |n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == 0 {
            holders.remove(&self.path);
            tracing::info!(library = %self.path.display(), "no workflow of this package library is in use: its runtime stops");
            if let Some(retire) = self.retire {
                // SAFETY: no `Plugin` of this library is left, so no call of it is in flight
                // (each holds its `Plugin` until the reply) and none will be made until the
                // library is opened again; `retire` takes no arguments.
                unsafe { retire() };
            }
        }
    }
}

/// Opens the library at `path`, checks its ABI version and returns it with its description.
pub(crate) fn open(path: &Path) -> Result<(Plugin, Description), Error> {
    let shown = path.display();
    // SAFETY: loading a library runs its initialisers; the library is a package compiled from
    // source by this host (or the cache it keeps), which is what loading a package means.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| Error::Load(format!("{shown} could not be loaded: {e}")))?;
    // Never unloaded (see the module's documentation).
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    let missing = |name: &[u8], e: libloading::Error| {
        let name = String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name)).into_owned();
        Error::Load(format!(
            "{shown} has no `{name}` ({e}): is `cloacina_workflow_plugin::package!();` at its crate root?"
        ))
    };
    // SAFETY: each symbol is looked up with the type `cloacina_workflow::plugin` gives it, which
    // `package!()` exports it with; the ABI version, checked first, says the package was built
    // against those types.
    let version =
        unsafe { library.get::<AbiVersionFn>(symbols::ABI_VERSION) }.map_err(|e| missing(symbols::ABI_VERSION, e))?;
    // SAFETY: a function of no arguments returning a u32, per the ABI of every version.
    let version = unsafe { version() };
    if version != ABI_VERSION {
        return Err(Error::InterfaceVersion { package: version, host: ABI_VERSION });
    }
    // SAFETY: as above; the version matches, so the types are this version's.
    let (describe, free, call, cancel) = unsafe {
        (
            *library.get::<DescribeFn>(symbols::DESCRIBE).map_err(|e| missing(symbols::DESCRIBE, e))?,
            *library.get::<FreeFn>(symbols::FREE).map_err(|e| missing(symbols::FREE, e))?,
            *library.get::<CallFn>(symbols::CALL).map_err(|e| missing(symbols::CALL, e))?,
            *library.get::<CancelFn>(symbols::CANCEL).map_err(|e| missing(symbols::CANCEL, e))?,
        )
    };
    let mut len = 0usize;
    // SAFETY: `describe` writes the buffer's length to `len` and returns a buffer of that many
    // bytes, which is read here and handed back to `free` exactly once.
    let described: Result<Result<Description, String>, serde_json::Error> = unsafe {
        let ptr = describe(&mut len);
        if ptr.is_null() {
            return Err(Error::Load(format!("{shown} returned no description")));
        }
        let parsed = serde_json::from_slice(std::slice::from_raw_parts(ptr, len));
        free(ptr, len);
        parsed
    };
    let description = described
        .map_err(|e| Error::Load(format!("{shown} returned a description this host cannot read: {e}")))?
        .map_err(|why| Error::Load(format!("{shown} could not describe itself: {why}")))?;
    // SAFETY: an optional function of no arguments, per the ABI (a package built before it
    // existed has none and keeps its runtime).
    let retire = unsafe { library.get::<RetireFn>(symbols::RETIRE) }.ok().map(|f| *f);
    *holders().lock().unwrap_or_else(PoisonError::into_inner).entry(path.to_path_buf()).or_default() += 1;
    Ok((Plugin { call, cancel, retire, path: path.to_path_buf() }, description))
}

/// Calls waiting for their reply, by token.
fn pending() -> &'static Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>> {
    static PENDING: OnceLock<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>> = OnceLock::new();
    PENDING.get_or_init(Mutex::default)
}

/// The completion function every call is given: hands the reply to the call's waiter.
extern "C" fn done(token: u64, reply: *const u8, len: usize) {
    let bytes = if reply.is_null() {
        Vec::new()
    } else {
        // SAFETY: the package passes `len` readable bytes, valid during this call; they are
        // copied before it returns.
        unsafe { std::slice::from_raw_parts(reply, len) }.to_vec()
    };
    let waiter = pending().lock().unwrap_or_else(PoisonError::into_inner).remove(&token);
    if let Some(waiter) = waiter {
        let _ = waiter.send(bytes);
    }
}

/// A call in flight: dropped before its reply (a timeout, a shutdown), it cancels the call.
struct InFlight<'a> {
    plugin: &'a Plugin,
    token: u64,
    call: u64,
    answered: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            pending().lock().unwrap_or_else(PoisonError::into_inner).remove(&self.token);
            // SAFETY: `cancel` takes a call id `call` returned; an id that already replied is
            // ignored by the package.
            unsafe { (self.plugin.cancel)(self.call) };
        }
    }
}

impl Plugin {
    /// Makes `request` and waits for its reply. Dropping the future cancels the call.
    pub(crate) async fn call(&self, request: &Request) -> Reply {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let bytes = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => return Reply::Refused { message: format!("the request could not be written: {e}") },
        };
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        pending().lock().unwrap_or_else(PoisonError::into_inner).insert(token, tx);
        // SAFETY: `bytes` stays alive for the call, which reads it before returning; `done` is
        // this module's completion function with the signature the ABI gives it.
        let call = unsafe { (self.call)(bytes.as_ptr(), bytes.len(), done, token) };
        let mut flight = InFlight { plugin: self, token, call, answered: false };
        let reply = rx.await;
        flight.answered = true;
        match reply {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| Reply::Refused { message: format!("the package's reply could not be read: {e}") }),
            Err(_) => Reply::Cancelled,
        }
    }
}

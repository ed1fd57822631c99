//! The host side of the package ABI (`cloacina_workflow::plugin`, ADR 0011): opening a compiled
//! package, checking its ABI version before anything else, reading its description, and calling
//! into it.
//!
//! `unsafe` is confined to this file (the tidy test holds it to that): loading the library,
//! looking up its functions, calling them, and reading the bytes it hands back. A library once
//! opened is never closed: its runtime's threads and the code of runs in flight live in it, and
//! unloading code that a thread may still return into is undefined behaviour. A daemon that
//! loads many versions of a package therefore grows; restarting it reclaims that memory.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use cloacina_workflow::plugin::{
    symbols, AbiVersionFn, CallFn, CancelFn, DescribeFn, Description, FreeFn, Reply, Request, ABI_VERSION,
};
use tokio::sync::oneshot;

use super::Error;

/// An opened package: its functions, valid for the life of the process.
#[derive(Debug)]
pub(crate) struct Plugin {
    call: CallFn,
    cancel: CancelFn,
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
    Ok((Plugin { call, cancel }, description))
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

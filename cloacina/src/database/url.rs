//! Database URLs: the one place that decides the backend from a URL, and redaction of secrets.
//!
//! Every other module receives a [`DatabaseUrl`], never a raw string, so a password cannot leak
//! through `Debug` or `Display`, and the backend decision is made exactly once.

use std::fmt;

use super::{Backend, Error};

/// A parsed, validated database URL. `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// The string handed to the driver (for SQLite, possibly rewritten; see [`DatabaseUrl::parse`]).
    connect_string: String,
    /// The password found in the URL, kept only to scrub it from driver error messages.
    secret: Option<String>,
    /// True for `sqlite::memory:`/`:memory:`: the database lives as long as its one connection.
    in_memory: bool,
}

/// Every URL form accepted, as listed in error messages.
pub(crate) const SUPPORTED_FORMS: &str =
    "postgres://…, postgresql://…, sqlite://path, sqlite:///abs/path, sqlite::memory:, file:…, or a file path";

impl DatabaseUrl {
    /// Picks the backend from the URL. This is the only function in Cloacina that does so.
    ///
    /// - `postgres://…`, `postgresql://…` → PostgreSQL.
    /// - `sqlite://rel/path`, `sqlite:///abs/path`, `sqlite:path`, `file:…`, a bare relative or absolute path → SQLite.
    /// - `sqlite::memory:` and `:memory:` → a private in-memory SQLite database.
    /// - anything else with a `scheme://` (`mysql://`, `postgress://`, …) or an empty string → [`Error::UnsupportedScheme`].
    ///
    /// A backend whose Cargo feature is compiled out is refused with [`Error::BackendNotCompiled`].
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::UnsupportedScheme { scheme: String::new() });
        }
        let lower = url.to_ascii_lowercase();
        let (backend, connect_string, in_memory) =
            if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                (Backend::Postgres, url.to_owned(), false)
            } else if lower == "sqlite::memory:" || lower == ":memory:" || lower == "sqlite://:memory:" {
                // A named shared-cache database, so every pooled connection of this `Database` sees the
                // same data; the name is unique per parse, so two `sqlite::memory:` databases never mix.
                let name = format!("file:cloacina-mem-{}?mode=memory&cache=shared", uuid::Uuid::new_v4().simple());
                (Backend::Sqlite, name, true)
            } else if lower.starts_with("sqlite://") || lower.starts_with("file:") {
                // Diesel rewrites `sqlite://` to SQLite's `file:` URI form itself; pass it through untouched.
                let in_memory = lower.contains("mode=memory");
                (Backend::Sqlite, url.to_owned(), in_memory)
            } else if let Some(rest) = lower.strip_prefix("sqlite:") {
                if rest.is_empty() {
                    return Err(Error::UnsupportedScheme { scheme: "sqlite:".to_owned() });
                }
                (Backend::Sqlite, url["sqlite:".len()..].to_owned(), false)
            } else if let Some(scheme) = explicit_scheme(url) {
                return Err(Error::UnsupportedScheme { scheme: format!("{scheme}://") });
            } else {
                (Backend::Sqlite, url.to_owned(), false)
            };
        if !backend.is_compiled() {
            return Err(Error::BackendNotCompiled { backend });
        }
        let secret = if backend == Backend::Postgres { password_of(url) } else { None };
        Ok(Self { backend, connect_string, secret, in_memory })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the URL names an in-memory SQLite database.
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// The string given to the driver. Contains the password: never log it.
    pub(crate) fn connect_string(&self) -> &str {
        &self.connect_string
    }

    /// Removes the URL's password from a driver message, in case the driver echoed it.
    pub(crate) fn scrub(&self, message: &str) -> String {
        match &self.secret {
            Some(secret) if !secret.is_empty() => message.replace(secret.as_str(), "***"),
            _ => message.to_owned(),
        }
    }

    /// The URL with its password replaced by `***`, safe for messages and logs.
    pub fn redacted(&self) -> String {
        redact(&self.connect_string)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl").field("backend", &self.backend).field("url", &self.redacted()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The scheme of a `scheme://…` string, if it has the shape of one.
fn explicit_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Byte range of the password in `scheme://user:password@host`, if any.
fn userinfo_password_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@').map(|i| start + i)?;
    let colon = url[start..at].find(':').map(|i| start + i)?;
    Some((colon + 1, at))
}

/// Byte ranges of `password=` values in the query string.
fn query_password_ranges(url: &str) -> Vec<(usize, usize)> {
    let Some(q) = url.find('?') else { return Vec::new() };
    let mut ranges = Vec::new();
    let mut pos = q + 1;
    for pair in url[q + 1..].split('&') {
        if let Some(value) = pair.strip_prefix("password=") {
            let begin = pos + "password=".len();
            ranges.push((begin, begin + value.len()));
        }
        pos += pair.len() + 1;
    }
    ranges
}

fn password_of(url: &str) -> Option<String> {
    userinfo_password_range(url)
        .into_iter()
        .chain(query_password_ranges(url))
        .map(|(a, b)| url[a..b].to_owned())
        .find(|p| !p.is_empty())
}

/// Replaces every password in a URL (user info and `password=` parameters) with `***`.
pub fn redact(url: &str) -> String {
    let mut ranges: Vec<_> = userinfo_password_range(url).into_iter().chain(query_password_ranges(url)).collect();
    ranges.sort_unstable();
    let mut out = String::with_capacity(url.len());
    let mut last = 0;
    for (a, b) in ranges {
        out.push_str(&url[last..a]);
        out.push_str("***");
        last = b;
    }
    out.push_str(&url[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_and_query_passwords() {
        assert_eq!(redact("postgres://bob:s3cret@db:5432/app"), "postgres://bob:***@db:5432/app");
        assert_eq!(
            redact("postgres://db/app?user=bob&password=s3cret&x=1"),
            "postgres://db/app?user=bob&password=***&x=1"
        );
        assert_eq!(redact("postgres://bob@db/app"), "postgres://bob@db/app");
        assert_eq!(redact("postgres://bob:p%40ss@db/a"), "postgres://bob:***@db/a");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let url = DatabaseUrl::parse("postgresql://bob:hunter2@localhost/app?password=hunter3");
        let Ok(url) = url else { return }; // the Postgres backend may be compiled out
        let shown = format!("{url:?} {url}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
        assert_eq!(url.scrub("auth failed for hunter2"), "auth failed for ***");
    }

    #[test]
    fn scheme_detection() {
        assert_eq!(explicit_scheme("mysql://x"), Some("mysql"));
        assert_eq!(explicit_scheme("/tmp/a.db"), None);
        assert_eq!(explicit_scheme("C:\\data\\a.db"), None);
    }
}

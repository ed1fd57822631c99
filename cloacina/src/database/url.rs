//! Database URLs: the one place that decides the backend from a URL, and redaction of secrets.
//!
//! Every other module receives a [`DatabaseUrl`], never a raw string, so a password cannot leak
//! through `Debug` or `Display`, and the backend decision is made exactly once.
//!
//! PostgreSQL URLs are taken apart here (scheme, user, password, the rest) and put back together
//! with the user and password percent-encoded, so a password may contain any character, `/`, `?`,
//! `#` and `@` included, written encoded or not. What is shown anywhere is rebuilt from the parts
//! with `***` in place of the password; it is never a redaction of the raw string.

use std::fmt;

use super::{Backend, Error};

/// A parsed, validated database URL. `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// The string handed to the driver (for PostgreSQL, rebuilt with the user info encoded).
    connect_string: String,
    /// The URL as it may be shown: passwords replaced by `***`.
    shown: String,
    /// Every form of every password the URL carries, to scrub from driver messages.
    secrets: Vec<String>,
    /// True for an in-memory SQLite database: it lives as long as its one connection.
    in_memory: bool,
}

impl DatabaseUrl {
    /// Picks the backend from the URL. This is the only function in Cloacina that does so.
    ///
    /// - `postgres://…`, `postgresql://…` → PostgreSQL.
    /// - `sqlite://rel/path`, `sqlite:///abs/path`, `sqlite:path`, `file:path`, a bare relative or
    ///   absolute path → SQLite.
    /// - `sqlite::memory:`, `:memory:`, `sqlite://:memory:`, `file::memory:` → a private in-memory
    ///   SQLite database shared by the pool's connections.
    ///
    /// Refused with a clear error, never guessed at: an empty URL, `sqlite://` or `file:` without a
    /// path (SQLite would open a throw-away temporary database per connection), a libpq
    /// keyword/value string (`host=… user=…`), and any other `scheme://`
    /// ([`Error::UnsupportedScheme`]). A backend whose Cargo feature is compiled out is refused
    /// with [`Error::BackendNotCompiled`]. No error message repeats a password.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::UnsupportedScheme { scheme: String::new() });
        }
        let lower = url.to_ascii_lowercase();
        let parsed = if let Some(scheme) =
            ["postgresql", "postgres"].into_iter().find(|s| lower.starts_with(&format!("{s}://")))
        {
            postgres(scheme, &url[scheme.len() + 3..])
        } else if let Some(sqlite) = sqlite(url, &lower)? {
            sqlite
        } else if let Some(scheme) = explicit_scheme(url) {
            return Err(Error::UnsupportedScheme { scheme: format!("{scheme}://") });
        } else if looks_like_keyword_string(url) {
            return Err(Error::InvalidUrl {
                reason: "this looks like a libpq keyword/value string (`host=… user=…`); write a URL instead: \
                         postgres://user:password@host:5432/dbname"
                    .to_owned(),
            });
        } else {
            file(url)
        };
        if !parsed.backend.is_compiled() {
            return Err(Error::BackendNotCompiled { backend: parsed.backend });
        }
        Ok(parsed)
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the URL names an in-memory SQLite database.
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// The file of a SQLite URL (`None` for PostgreSQL and in-memory databases), so a caller can
    /// tell a missing file from an empty database before SQLite creates it on open.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite || self.in_memory {
            return None;
        }
        let text = &self.connect_string;
        let lower = text.to_ascii_lowercase();
        let rest = ["sqlite://", "file://", "file:"]
            .into_iter()
            .find(|p| lower.starts_with(p))
            .map_or(text.as_str(), |p| &text[p.len()..]);
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        Some(std::path::PathBuf::from(path))
    }

    /// The string given to the driver. Contains the password: never log it.
    pub(crate) fn connect_string(&self) -> &str {
        &self.connect_string
    }

    /// Removes the URL's password from a driver message, in case the driver echoed it.
    ///
    /// A password of fewer than four characters cannot be cut out of a message without mangling
    /// it (it may be a common word or letter); such a message is withheld whole instead.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                if secret.chars().count() < 4 {
                    return "(the driver's message is withheld: it would show the password)".to_owned();
                }
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// This PostgreSQL URL with another user and password (encoded): the same server and
    /// database for another login. `None` for a SQLite URL. Contains the password: never log it.
    pub(crate) fn with_login(&self, user: &str, password: &str) -> Option<String> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let (scheme, rest) = self.connect_string.split_once("://")?;
        let host_part = split_userinfo(rest).host_part;
        Some(format!("{scheme}://{}:{}@{host_part}", encode(user), encode(password)))
    }

    /// The URL with its password replaced by `***`, safe for messages and logs.
    pub fn redacted(&self) -> String {
        self.shown.clone()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl").field("backend", &self.backend).field("url", &self.shown).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A SQLite URL without secrets: shown as written.
fn sqlite_url(connect_string: String, in_memory: bool) -> DatabaseUrl {
    DatabaseUrl {
        backend: Backend::Sqlite,
        shown: connect_string.clone(),
        connect_string,
        secrets: Vec::new(),
        in_memory,
    }
}

/// A plain file path (no scheme).
fn file(path: &str) -> DatabaseUrl {
    sqlite_url(path.to_owned(), false)
}

/// The SQLite forms with a prefix (`sqlite…`, `:memory:`, `file:`); `None` for anything else.
fn sqlite(url: &str, lower: &str) -> Result<Option<DatabaseUrl>, Error> {
    let no_path = |form: &str| Error::InvalidUrl {
        reason: format!(
            "`{form}` names no file (SQLite would open a private temporary database per connection, and the \
             data would be lost); write sqlite://app.db (relative), sqlite:///abs/app.db, or sqlite::memory: \
             for an in-memory database"
        ),
    };
    if matches!(lower, "sqlite::memory:" | ":memory:" | "sqlite://:memory:" | "file::memory:") {
        // A named shared-cache database, so every pooled connection of this `Database` sees the same
        // data; the name is unique per parse, so two in-memory databases never mix.
        let name = format!("file:cloacina-mem-{}?mode=memory&cache=shared", uuid::Uuid::new_v4().simple());
        return Ok(Some(sqlite_url(name, true)));
    }
    for prefix in ["sqlite://", "file:"] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let path = rest.split(['?', '#']).next().unwrap_or_default();
            if path.is_empty() || path == "/" {
                return Err(no_path(prefix));
            }
            // Diesel turns `sqlite://` into SQLite's `file:` URI form itself: pass it through untouched.
            return Ok(Some(sqlite_url(url.to_owned(), rest.contains("mode=memory"))));
        }
    }
    if let Some(rest) = lower.strip_prefix("sqlite:") {
        if rest.is_empty() {
            return Err(no_path("sqlite:"));
        }
        return Ok(Some(file(&url["sqlite:".len()..])));
    }
    Ok(None)
}

/// The scheme of a `scheme://…` string, if it has the shape of one.
fn explicit_scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// `host=db user=app …`: libpq's keyword/value form, which is not a file name.
fn looks_like_keyword_string(url: &str) -> bool {
    let Some((key, _)) = url.split_once('=') else { return false };
    let key = key.trim();
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
}

/// Parses what follows `postgres://` (or `postgresql://`): `[user[:password]@]host…`.
fn postgres(scheme: &str, rest: &str) -> DatabaseUrl {
    let split = split_userinfo(rest);
    let host_part = split.host_part;
    let (user, password) = match split.userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (Some(decode(user)), Some(password)),
            None => (Some(decode(info)), None),
        },
        None => (None, None),
    };
    let mut secrets = Vec::new();
    let mut authority = String::new();
    let mut shown_authority = String::new();
    if let Some(user) = &user {
        authority.push_str(&encode(user));
        shown_authority.push_str(&encode(user));
        if let Some(raw) = password {
            let decoded = decode(raw);
            authority.push(':');
            authority.push_str(&encode(&decoded));
            shown_authority.push_str(":***");
            secrets.extend([raw.to_owned(), decoded.clone(), encode(&decoded)]);
        }
        authority.push('@');
        shown_authority.push('@');
    }
    if split.ambiguous {
        // Another reading would put part of what is shown into the password: show no user info.
        shown_authority = "***@".to_owned();
        if let Some(info) = split.userinfo {
            secrets.extend([info.to_owned(), decode(info)]);
        }
    }
    let (shown_rest, query_secrets) = redact_query_passwords(host_part);
    secrets.extend(query_secrets);
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len())); // longer forms first, so none is left half-scrubbed
    secrets.dedup();
    DatabaseUrl {
        backend: Backend::Postgres,
        connect_string: format!("{scheme}://{authority}{host_part}"),
        shown: format!("{scheme}://{shown_authority}{shown_rest}"),
        secrets,
        in_memory: false,
    }
}

/// What follows `postgres://`, split into its user info and the rest (host, port, database,
/// query).
#[derive(Debug, PartialEq, Eq)]
struct Split<'a> {
    userinfo: Option<&'a str>,
    host_part: &'a str,
    /// More than one `@` could end the user info: the URL can be read in more than one way.
    ambiguous: bool,
}

/// Splits `[userinfo@]host…` at the last `@` that a valid host part follows.
///
/// A password may hold `/ ? # @` unencoded, so the user info cannot end at the first of them (as
/// RFC 3986 reads it). Every `@` is a candidate; it ends the user info only if what follows parses
/// as libpq's host part: `host[:port][,host[:port]…][/dbname][?key=value[&key=value…]]`, with
/// no `#`, no `/` or `@` in the database name, and a `key=value` form for every parameter. Of
/// the candidates, the last one wins (as a password can hold `@`, a host cannot), and when more
/// than one is valid the URL is marked ambiguous, so it is shown without any user info.
fn split_userinfo(rest: &str) -> Split<'_> {
    // A user name holds no unencoded `/`, `?` or `#` (only a password may): without this, a query
    // value holding `@` in a URL without user info would read as one.
    let user_ok = |info: &str| !info.split(':').next().unwrap_or_default().contains(['/', '?', '#']);
    let mut valid =
        rest.match_indices('@').map(|(at, _)| at).filter(|&at| user_ok(&rest[..at]) && is_host_part(&rest[at + 1..]));
    let Some(first) = valid.next() else { return Split { userinfo: None, host_part: rest, ambiguous: false } };
    let (last, ambiguous) = match valid.next_back() {
        Some(last) => (last, true),
        None => (first, false),
    };
    Split { userinfo: Some(&rest[..last]), host_part: &rest[last + 1..], ambiguous }
}

/// True when `s` has the shape of a PostgreSQL URL's host part (see [`split_userinfo`]).
fn is_host_part(s: &str) -> bool {
    if s.contains('#') {
        return false;
    }
    let (hosts, tail) = s.split_at(s.find(['/', '?']).unwrap_or(s.len()));
    let host_ok = |h: &str| {
        let port = match h.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((addr, after)) if addr.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%')) => {
                    match after.strip_prefix(':') {
                        Some(port) => port,
                        None if after.is_empty() => "",
                        None => return false,
                    }
                }
                _ => return false,
            },
            None => {
                let (name, port) = h.split_once(':').unwrap_or((h, ""));
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~' | '%')) {
                    return false;
                }
                port
            }
        };
        port.chars().all(|c| c.is_ascii_digit())
    };
    if !hosts.split(',').all(host_ok) {
        return false;
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let path_ok = path.is_empty() || path.strip_prefix('/').is_some_and(|db| !db.contains(['/', '@']));
    let query_ok = query.is_none_or(|q| {
        q.is_empty()
            || q.split('&').all(|pair| {
                pair.split_once('=').is_some_and(|(key, _)| {
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            })
    });
    path_ok && query_ok
}

/// Replaces the values of `password=` query parameters by `***`; returns the shown string and the
/// values (raw and decoded).
fn redact_query_passwords(host_part: &str) -> (String, Vec<String>) {
    let Some(q) = host_part.find('?') else { return (host_part.to_owned(), Vec::new()) };
    let mut secrets = Vec::new();
    let params: Vec<String> = host_part[q + 1..]
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("password") => {
                secrets.extend([value.to_owned(), decode(value)]);
                format!("{key}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    (format!("{}?{}", &host_part[..q], params.join("&")), secrets)
}

/// Percent-decodes `s` (a `%` not followed by two hex digits stays as it is).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces every password in a URL with `***`. A string that is not a valid database URL is
/// not shown at all.
pub fn redact(url: &str) -> String {
    DatabaseUrl::parse(url).map_or_else(|_| "(invalid database URL)".to_owned(), |u| u.shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(rest: &str) -> (Option<&str>, &str, bool) {
        let s = split_userinfo(rest);
        (s.userinfo, s.host_part, s.ambiguous)
    }

    #[test]
    fn userinfo_is_split_whatever_the_password_holds() {
        assert_eq!(split("bob:s3cret@db:5432/app"), (Some("bob:s3cret"), "db:5432/app", false));
        assert_eq!(split("bob:p/ss@db/app"), (Some("bob:p/ss"), "db/app", false));
        assert_eq!(split("bob:p?ss@db/app?sslmode=disable"), (Some("bob:p?ss"), "db/app?sslmode=disable", false));
        assert_eq!(split("bob:p#ss@db/app"), (Some("bob:p#ss"), "db/app", false));
        assert_eq!(split("bob:p@ss@db/app"), (Some("bob:p@ss"), "db/app", false));
        assert_eq!(split("bob:a/b@c@db/app"), (Some("bob:a/b@c"), "db/app", false));
        assert_eq!(split("db/app?application_name=me@home"), (None, "db/app?application_name=me@home", false));
        assert_eq!(split("db/app"), (None, "db/app", false));
        // The cases that leaked: an `@` before the first `/` of the password.
        assert_eq!(split("secp:p@ss/w#rd?x@127.0.0.1:5432/db"), (Some("secp:p@ss/w#rd?x"), "127.0.0.1:5432/db", false));
        assert_eq!(split("u:x#y@z/w@127.0.0.1:5432/db"), (Some("u:x#y@z/w"), "127.0.0.1:5432/db", false));
        assert_eq!(split("u:pa:ss@/@127.0.0.1:5432/db"), (Some("u:pa:ss@/"), "127.0.0.1:5432/db", false));
        // Host lists, IPv6, a socket directory, parameters holding `@` or `/`.
        assert_eq!(split("u:p@h1:5432,h2:5433/db"), (Some("u:p"), "h1:5432,h2:5433/db", false));
        assert_eq!(split("u:p@[::1]:5432/db"), (Some("u:p"), "[::1]:5432/db", false));
        assert_eq!(split("u:p@/db?host=/var/run/postgresql"), (Some("u:p"), "/db?host=/var/run/postgresql", false));
        // Two readings: the last `@` wins and the URL is marked ambiguous.
        assert_eq!(
            split("u:p@db/app?application_name=me@home"),
            (Some("u:p@db/app?application_name=me"), "home", true)
        );
    }

    /// Every printable ASCII character in every position of a password, alone and next to each
    /// of the characters URLs treat specially: the password comes back whole, and nothing shown
    /// holds it.
    #[test]
    fn no_password_of_printable_ascii_is_misread_or_shown() {
        let base: Vec<char> = "ghijklmn".chars().collect(); // no hex digits: `%` + two of them would decode
        let specials = ['@', '/', '?', '#', ':', '%', '&', '=', '[', ']', ',', ' '];
        let mut passwords = Vec::new();
        for c in ' '..='~' {
            for i in 0..=base.len() {
                let mut p = base.clone();
                p.insert(i, c);
                passwords.push(p.iter().collect::<String>());
                for s in specials {
                    for j in 0..=p.len() {
                        let mut q = p.clone();
                        q.insert(j, s);
                        passwords.push(q.iter().collect());
                    }
                }
            }
        }
        for password in &passwords {
            for host in ["127.0.0.1:5432/db", "db.example.com/app?sslmode=disable", "[::1]/db", "h/db?host=/tmp"] {
                let raw = format!("postgres://bob:{password}@{host}");
                // The parser itself (a build without PostgreSQL refuses the URL before it).
                let url = postgres("postgres", &raw["postgres://".len()..]);
                assert_eq!(url.connect_string(), format!("postgres://bob:{}@{host}", encode(password)), "{raw}");
                let mut shown = vec![url.to_string(), url.redacted()];
                if Backend::Postgres.is_compiled() {
                    shown.push(redact(&raw));
                }
                for shown in shown {
                    assert_eq!(shown, format!("postgres://bob:***@{host}"), "{raw}");
                }
                assert!(!format!("{url:?}").contains(password.as_str()), "{raw}");
                let message = format!("connection to {host} failed for bob (password {password})");
                assert!(!url.scrub(&message).contains(password.as_str()), "{raw}");
            }
        }
    }

    #[test]
    fn encoding_round_trips() {
        for s in ["plain", "p/ss?w#rd@x:y", "100%", "ünï cødé", "%zz"] {
            assert_eq!(decode(&encode(s)), s);
        }
        assert_eq!(decode("p%40ss"), "p@ss");
    }

    #[test]
    fn keyword_strings_are_recognised() {
        assert!(looks_like_keyword_string("host=db user=app password=x"));
        assert!(looks_like_keyword_string("  dbname = app"));
        assert!(!looks_like_keyword_string("/data/app.db"));
        assert!(!looks_like_keyword_string("data/a=b.db"));
    }

    #[test]
    fn scheme_detection() {
        assert_eq!(explicit_scheme("mysql://x"), Some("mysql"));
        assert_eq!(explicit_scheme("/tmp/a.db"), None);
        assert_eq!(explicit_scheme("C:\\data\\a.db"), None);
    }
}

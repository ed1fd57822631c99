//! Tenant provisioning on PostgreSQL (upstream Cloacina's `DatabaseAdmin`): a schema with
//! Cloacina's tables and a login role that may use only that schema.
//!
//! A tenant is a schema plus a role. [`DatabaseAdmin::create_tenant`] creates both and the grants
//! in one transaction (PostgreSQL's DDL is transactional, so a failure leaves nothing behind),
//! then migrates the schema; if the migration fails, the schema and role are dropped again. The
//! password is never logged and never part of an error; [`TenantCredentials`]' `Debug` hides it.
//! SQLite has no schemas or roles: there, a tenant is a database file of its own, and these calls
//! say so.

use std::fmt;

use diesel::connection::SimpleConnection;

use super::{connection, Backend, Database, DatabaseConfig};

/// What to create: the schema, the login role, and its password (empty: one is generated).
#[derive(Clone)]
pub struct TenantConfig {
    /// Schema for the tenant's tables (`a-z`, `0-9`, `_`; 1 to 63 characters).
    pub schema_name: String,
    /// The tenant's login role (same characters).
    pub username: String,
    /// Its password; empty to have a random 32-character one generated.
    pub password: String,
}

impl fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantConfig")
            .field("schema_name", &self.schema_name)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// What a tenant gets: its login and a URL to connect with (use it with the schema, e.g.
/// `DefaultRunner::with_schema(&credentials.connection_string, &credentials.schema_name)`).
#[derive(Clone)]
pub struct TenantCredentials {
    /// The login role.
    pub username: String,
    /// Its password (the one given, or the generated one). Hand it over; never log it.
    pub password: String,
    /// The tenant's schema.
    pub schema_name: String,
    /// The admin URL's server and database with the tenant's login. Contains the password.
    pub connection_string: String,
}

impl fmt::Debug for TenantCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCredentials")
            .field("username", &self.username)
            .field("password", &"***")
            .field("schema_name", &self.schema_name)
            .field("connection_string", &super::redact(&self.connection_string))
            .finish()
    }
}

/// Why a tenant could not be created or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The request itself is wrong (a name that is not a plain identifier, an empty password's
    /// generation aside).
    #[error("invalid tenant configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
    /// The database is SQLite, which has no schemas or roles.
    #[error(
        "tenants are PostgreSQL schemas with their own login; SQLite has neither: give each tenant a database \
         file of its own (sqlite://tenant_a.db, sqlite://tenant_b.db, …)"
    )]
    NotPostgres,
    /// The database refused a statement (a role or schema that exists, missing privileges, …).
    #[error(transparent)]
    Database(#[from] super::Error),
}

impl From<diesel::result::Error> for AdminError {
    fn from(e: diesel::result::Error) -> Self {
        AdminError::Database(e.into())
    }
}

/// Creates and removes tenants through an administrator's connection.
pub struct DatabaseAdmin {
    database: Database,
}

impl DatabaseAdmin {
    /// An administrator working through `database` (connected as a role that may create roles
    /// and schemas).
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Creates the tenant's schema, login role and grants, and migrates the schema. The role may
    /// use and create objects in its schema and has every privilege on Cloacina's tables there,
    /// and nothing on other schemas' tables.
    pub async fn create_tenant(&self, config: TenantConfig) -> Result<TenantCredentials, AdminError> {
        if self.database.backend() != Backend::Postgres {
            return Err(AdminError::NotPostgres);
        }
        identifier("schema_name", &config.schema_name)?;
        identifier("username", &config.username)?;
        let password = if config.password.is_empty() { generated_password()? } else { config.password };
        // The server gets the SCRAM verifier, never the password: a failed CREATE ROLE is logged
        // with its statement by default (log_min_error_statement), and statement logs show it too.
        let verifier = scram_verifier(&password, &random_bytes::<16>()?)?;
        let (schema, user) = (config.schema_name, config.username);
        let statements = [
            format!("CREATE SCHEMA \"{schema}\""),
            format!("CREATE ROLE \"{user}\" LOGIN PASSWORD {}", literal(&verifier)),
            format!("GRANT USAGE, CREATE ON SCHEMA \"{schema}\" TO \"{user}\""),
            format!("ALTER DEFAULT PRIVILEGES IN SCHEMA \"{schema}\" GRANT ALL ON TABLES TO \"{user}\""),
            format!("ALTER DEFAULT PRIVILEGES IN SCHEMA \"{schema}\" GRANT ALL ON SEQUENCES TO \"{user}\""),
        ];
        self.database
            .run(move |c| {
                use diesel::Connection;
                c.transaction(|c| c.batch_execute(&statements.join(";\n")))?;
                Ok(())
            })
            .await?;
        let admin_url = self.database.url().connect_string().to_owned();
        let migrate_schema = schema.clone();
        let migrated = tokio::task::spawn_blocking(move || {
            let config = DatabaseConfig { schema: Some(migrate_schema), pool_size: 1, ..Default::default() };
            Database::connect_with(&admin_url, config).map(drop)
        })
        .await
        .map_err(|e| super::Error::Task(e.to_string()));
        if let Err(e) = migrated.and_then(|m| m) {
            // Leave nothing half made: the schema and role go again.
            let _ = self.remove_tenant(&schema, &user).await;
            return Err(e.into());
        }
        let connection_string = self.database.url().with_login(&user, &password).ok_or(AdminError::NotPostgres)?;
        tracing::info!(schema = %schema, user = %user, "tenant created");
        Ok(TenantCredentials { username: user, password, schema_name: schema, connection_string })
    }

    /// Drops the tenant's schema with everything in it, and its role. Gone already is fine.
    pub async fn remove_tenant(&self, schema_name: &str, username: &str) -> Result<(), AdminError> {
        if self.database.backend() != Backend::Postgres {
            return Err(AdminError::NotPostgres);
        }
        identifier("schema_name", schema_name)?;
        identifier("username", username)?;
        let (schema, user) = (schema_name.to_owned(), username.to_owned());
        self.database
            .run(move |c| {
                use diesel::Connection;
                c.transaction(|c| {
                    c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))?;
                    // The role may still own default privileges granted by others: drop those first.
                    let exists: i64 = diesel::RunQueryDsl::get_result::<Count>(
                        diesel::sql_query("SELECT count(*) AS n FROM pg_roles WHERE rolname = $1")
                            .bind::<diesel::sql_types::Text, _>(&user),
                        c,
                    )?
                    .n;
                    if exists > 0 {
                        c.batch_execute(&format!("DROP OWNED BY \"{user}\"; DROP ROLE \"{user}\""))?;
                    }
                    Ok::<_, diesel::result::Error>(())
                })?;
                Ok(())
            })
            .await?;
        tracing::info!(schema = %schema_name, user = %username, "tenant removed");
        Ok(())
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A name interpolated into DDL: only plain identifiers pass.
fn identifier(what: &str, name: &str) -> Result<(), AdminError> {
    connection::validate_schema_name(name).map_err(|_| AdminError::InvalidConfig {
        message: format!(
            "{what} `{name}` must be 1 to 63 characters of a-z, 0-9 and _, not starting with a digit or pg_"
        ),
    })
}

/// A SQL string literal (PostgreSQL's standard strings: a quote is doubled).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `N` bytes from the operating system's random source.
fn random_bytes<const N: usize>() -> Result<[u8; N], AdminError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| AdminError::InvalidConfig { message: format!("no random source to make a password with: {e}") })?;
    Ok(bytes)
}

/// 32 letters and digits from the operating system's random source (uniform: bytes past the last
/// whole multiple of 62 are drawn again).
fn generated_password() -> Result<String, AdminError> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut password = String::with_capacity(32);
    while password.len() < 32 {
        for b in random_bytes::<64>()? {
            if usize::from(b) < 248 && password.len() < 32 {
                password.push(char::from(CHARS[usize::from(b) % CHARS.len()]));
            }
        }
    }
    Ok(password)
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802, RFC 7677; 4096
/// iterations, as PostgreSQL's own): `SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`, base64.
///
/// Logging in, libpq normalises the password with SASLprep, which leaves printable ASCII as it is;
/// other passwords are refused here rather than stored in a form no login would match.
fn scram_verifier(password: &str, salt: &[u8]) -> Result<String, AdminError> {
    use sha2::{Digest, Sha256};
    if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(AdminError::InvalidConfig {
            message: "a tenant password must be printable ASCII (or empty, to have one generated)".to_owned(),
        });
    }
    // PBKDF2-HMAC-SHA256 with one output block (its length is the hash's).
    let mut block = hmac_sha256(password.as_bytes(), &[salt, &1u32.to_be_bytes()].concat());
    let mut salted = block;
    for _ in 1..4096 {
        block = hmac_sha256(password.as_bytes(), &block);
        salted.iter_mut().zip(block).for_each(|(s, b)| *s ^= b);
    }
    let stored_key = Sha256::digest(hmac_sha256(&salted, b"Client Key"));
    let server_key = hmac_sha256(&salted, b"Server Key");
    Ok(format!("SCRAM-SHA-256$4096:{}${}:{}", base64(salt), base64(&stored_key), base64(&server_key)))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]) } else { '=' });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_passwords_are_random() {
        assert_eq!(literal("it's"), "'it''s'");
        let (a, b) = (generated_password().unwrap(), generated_password().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    /// Checked against an independent implementation (Python's hashlib.pbkdf2_hmac and hmac) for
    /// RFC 7677's example password and salt.
    #[test]
    fn the_scram_verifier_matches_a_reference() {
        let salt = [0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81];
        assert_eq!(base64(&salt), "W22ZaJ0SNY7soEsUEjb6gQ==");
        assert_eq!(
            scram_verifier("pencil", &salt).unwrap(),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
             wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert_eq!(
            [base64(b""), base64(b"f"), base64(b"fo"), base64(b"foo"), base64(b"foob")],
            ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="]
        );
        assert!(matches!(scram_verifier("pässword", &salt), Err(AdminError::InvalidConfig { .. })));
        assert!(matches!(scram_verifier("tab\there", &salt), Err(AdminError::InvalidConfig { .. })));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = TenantCredentials {
            username: "acme".into(),
            password: "s3cret-pass".into(),
            schema_name: "tenant_acme".into(),
            connection_string: "postgres://acme:s3cret-pass@db/app".into(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let config = TenantConfig { schema_name: "s".into(), username: "u".into(), password: "s3cret-pass".into() };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}

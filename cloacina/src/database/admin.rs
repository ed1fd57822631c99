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
        let password = if config.password.is_empty() { generated_password() } else { config.password };
        let (schema, user) = (config.schema_name, config.username);
        let statements = [
            format!("CREATE SCHEMA \"{schema}\""),
            format!("CREATE ROLE \"{user}\" LOGIN PASSWORD {}", literal(&password)),
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

/// 32 random letters and digits.
fn generated_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..32).map(|_| CHARS[fastrand::usize(..CHARS.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_passwords_are_random() {
        assert_eq!(literal("it's"), "'it''s'");
        let (a, b) = (generated_password(), generated_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
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

//! Tenants: a PostgreSQL schema per tenant (created and migrated on first use, isolated from the
//! others); DatabaseAdmin provisioning a schema with its own login role; on SQLite, one file per
//! tenant and a clear error when a schema or a tenant is asked for.

use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::DefaultRunner;
use cloacina::Context;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_tenants_live_in_their_own_schemas_and_never_see_each_other() {
    use crate::harness::{postgres_url, unique_name, DropSchema};
    let (a, b) = (DropSchema(unique_name("tenant_a")), DropSchema(unique_name("tenant_b")));
    runtime().block_on(async {
        let url = postgres_url();
        // `with_schema` creates and migrates the schema on first use (and registers `macro_etl`).
        let tenant_a = DefaultRunner::with_schema(&url, &a.0).await.expect("tenant a");
        let tenant_b = DefaultRunner::builder(url.as_str()).schema(b.0.as_str()).build().await.expect("tenant b");
        let ran = tenant_a.execute("macro_etl", Context::new()).await.expect("run in a");
        assert_eq!(ran.status, WorkflowStatus::Completed);

        let seen_by_b = tenant_b.list_executions(Default::default()).await.expect("list b");
        assert!(seen_by_b.is_empty(), "tenant b sees tenant a's runs: {seen_by_b:?}");
        let err = tenant_b.execution_details(ran.execution_id).await.expect_err("not visible in b");
        assert!(matches!(err, cloacina::Error::ExecutionNotFound(_)), "{err}");
        assert_eq!(tenant_a.list_executions(Default::default()).await.expect("list a").len(), 1);
        tenant_a.shutdown().await.expect("shutdown a");
        tenant_b.shutdown().await.expect("shutdown b");

        for bad in ["Tenant", "a;drop table x", "a\"b", "1abc", ""] {
            let err = DefaultRunner::with_schema(&url, bad).await.err().expect("invalid schema name refused");
            assert!(err.to_string().contains("invalid schema name"), "{bad}: {err}");
        }
    });
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_tenants_are_files_and_a_schema_is_a_clear_error() {
    use crate::harness::{scratch_dir, unique_name};
    runtime().block_on(async {
        let path = scratch_dir().join(format!("{}.db", unique_name("tenant")));
        let url = format!("sqlite://{}", path.display());
        let err = DefaultRunner::with_schema(&url, "tenant_a").await.err().expect("schema refused on SQLite");
        assert!(err.to_string().contains("no schemas; use one database file per tenant"), "{err}");

        let other = scratch_dir().join(format!("{}.db", unique_name("tenant")));
        let tenant_a = DefaultRunner::new(&url).await.expect("tenant a");
        let tenant_b = DefaultRunner::new(&format!("sqlite://{}", other.display())).await.expect("tenant b");
        assert_eq!(tenant_a.execute("macro_etl", Context::new()).await.expect("run").status, WorkflowStatus::Completed);
        assert!(tenant_b.list_executions(Default::default()).await.expect("list").is_empty());
        tenant_a.shutdown().await.expect("shutdown");
        tenant_b.shutdown().await.expect("shutdown");
        for p in [path, other] {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
        }
    });
}

#[cfg(feature = "postgres")]
#[test]
fn database_admin_provisions_a_tenant_that_sees_only_its_schema() {
    use crate::harness::{postgres_url, unique_name, DropSchema};
    use cloacina::database::{AdminError, Database, DatabaseAdmin, TenantConfig};
    let (schema, user) = (DropSchema(unique_name("tenant")), unique_name("tenant_user"));
    let other = DropSchema(unique_name("tenant_other"));
    runtime().block_on(async {
        let url = postgres_url();
        let no_tables = cloacina::DatabaseConfig { migrate: false, ..Default::default() };
        let admin_db = Database::connect_with(&url, no_tables).expect("admin");
        let admin = DatabaseAdmin::new(admin_db);
        let config = TenantConfig { schema_name: schema.0.clone(), username: user.clone(), password: String::new() };
        let credentials = admin.create_tenant(config.clone()).await.expect("create");
        assert_eq!(credentials.password.len(), 32, "an empty password is generated");
        assert!(!format!("{credentials:?}").contains(&credentials.password), "Debug hides the password");
        assert!(credentials.connection_string.contains(&format!("{user}:")), "the tenant's login");

        // The tenant runs workflows in its schema with its own login.
        let tenant = DefaultRunner::with_schema(&credentials.connection_string, &credentials.schema_name)
            .await
            .expect("tenant runner");
        let ran = tenant.execute("macro_etl", Context::new()).await.expect("run");
        assert_eq!(ran.status, WorkflowStatus::Completed);
        tenant.shutdown().await.expect("shutdown");

        // Another schema's tables are not its to read.
        let _elsewhere = DefaultRunner::with_schema(&url, &other.0).await.expect("other tenant");
        let mut conn = cloacina::database::establish(
            &cloacina::database::DatabaseUrl::parse(&credentials.connection_string).expect("url"),
            &Default::default(),
        )
        .expect("tenant login");
        use diesel::connection::SimpleConnection;
        let denied = conn.batch_execute(&format!("SELECT * FROM \"{}\".pipeline_executions", other.0));
        assert!(denied.is_err(), "a tenant's role reads another schema");

        // Creating it again fails cleanly; bad names and SQLite are clear errors.
        let again = admin.create_tenant(config).await.expect_err("exists");
        assert!(matches!(again, AdminError::Database(_)), "{again}");
        let bad = TenantConfig { schema_name: "x; drop".into(), username: "u".into(), password: "p".into() };
        assert!(matches!(admin.create_tenant(bad).await, Err(AdminError::InvalidConfig { .. })));

        admin.remove_tenant(&schema.0, &user).await.expect("remove");
        admin.remove_tenant(&schema.0, &user).await.expect("removing twice is fine");
        let left = cloacina::database::establish(
            &cloacina::database::DatabaseUrl::parse(&url).expect("url"),
            &Default::default(),
        );
        let mut left = left.expect("admin conn");
        let gone = left.batch_execute(&format!("SET ROLE \"{user}\""));
        assert!(gone.is_err(), "the role is gone");
    });
}

#[cfg(feature = "sqlite")]
#[test]
fn database_admin_on_sqlite_says_to_use_a_file_per_tenant() {
    use cloacina::database::{AdminError, DatabaseAdmin, TenantConfig};
    let db = crate::harness::TestDb::sqlite();
    runtime().block_on(async {
        let admin = DatabaseAdmin::new(db.db.clone());
        let config = TenantConfig { schema_name: "t".into(), username: "u".into(), password: "secret".into() };
        let err = admin.create_tenant(config).await.expect_err("no tenants on SQLite");
        assert!(matches!(err, AdminError::NotPostgres));
        assert!(err.to_string().contains("database file of its own"), "{err}");
        assert!(!err.to_string().contains("secret"));
    });
}

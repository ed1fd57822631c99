//! Tenants: a PostgreSQL schema per tenant (created and migrated on first use, isolated from the
//! others); on SQLite, one file per tenant and a clear error when a schema is asked for.

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

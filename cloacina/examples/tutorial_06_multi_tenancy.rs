//! Mirrors upstream Cloacina's library tutorial `06-multi-tenancy`: three tenants, each a
//! PostgreSQL schema with its own runner (`DefaultRunner::with_schema`), then a tenant provisioned
//! with its own login through `DatabaseAdmin::create_tenant`.
//!
//! PostgreSQL only: on SQLite it stops at once with the clear error that SQLite has no schemas
//! (use one database file per tenant).
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p cloacina --example tutorial_06_multi_tenancy
//! ```

#[path = "support/mod.rs"]
mod support;

use cloacina::database::{Database, DatabaseAdmin, DatabaseConfig, TenantConfig};
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::DefaultRunner;
use cloacina::{task, workflow, Context, TaskError};
use serde_json::{json, Value};

#[workflow(name = "customer_processing", description = "Process customer data in isolated tenant environment")]
/// The `customer_processing` workflow.
pub mod customer_processing {
    use super::*;

    #[task]
    /// The `process_customer_data` task.
    pub async fn process_customer_data(context: &mut Context<Value>) -> Result<(), TaskError> {
        let tenant: String = context.get_required("tenant_id")?;
        let records = match tenant.as_str() {
            "acme_corp" => 1250,
            "globex_inc" => 890,
            "initech" => 430,
            _ => 100,
        };
        context.insert("processed_records", json!(records))?;
        context.insert("processing_completed", json!(true))?;
        Ok(())
    }
}

#[workflow(name = "tenant_onboarding", description = "Complete tenant onboarding process")]
/// The `tenant_onboarding_workflow` workflow.
pub mod tenant_onboarding_workflow {
    use super::*;

    #[task]
    /// The `tenant_onboarding` task.
    pub async fn tenant_onboarding(context: &mut Context<Value>) -> Result<(), TaskError> {
        let kind: String = context.get_as("tenant_type")?.unwrap_or_else(|| "starter".to_owned());
        let steps: &[&str] = match kind.as_str() {
            "enterprise" => &["provision_resources", "setup_integrations", "configure_billing", "setup_support"],
            "professional" => &["provision_resources", "setup_integrations", "configure_billing"],
            "starter" => &["provision_resources", "configure_billing"],
            _ => &["provision_resources"],
        };
        context.insert("onboarding_completed", json!(true))?;
        context.insert("setup_tasks_count", json!(steps.len()))?;
        context.insert("tenant_status", json!("active"))?;
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    support::init_logging();
    if let Err(e) = run().await {
        eprintln!("error: {e}"); // on SQLite: the schema error, in words
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = support::database_url("tutorial-06.db");

    println!("=== basic multi-tenant demo ===");
    for tenant in ["acme_corp", "globex_inc", "initech"] {
        let runner = DefaultRunner::with_schema(&url, tenant).await?; // SQLite: the clear schema error
        let mut context = Context::new();
        context.insert("tenant_id", json!(tenant))?;
        context.insert("customer_name", json!(format!("{tenant} Customer")))?;
        let result = runner.execute("customer_processing", context).await?;
        let records = result.final_context.get_required::<i64>("processed_records")?;
        println!("tenant {tenant}: {:?}, {records} records processed", result.status);
        assert_eq!(result.status, WorkflowStatus::Completed);
        let others = runner.list_executions(Default::default()).await?;
        assert!(others.iter().all(|p| p.workflow_name == "customer_processing"), "tenant data stays in its schema");
        runner.shutdown().await?;
    }

    println!("=== tenant with its own login (DatabaseAdmin) ===");
    let admin_db = Database::connect_with(&url, DatabaseConfig { migrate: false, ..Default::default() })?;
    let admin = DatabaseAdmin::new(admin_db);
    let config = TenantConfig {
        schema_name: "tenant_demo".to_owned(),
        username: "demo_user".to_owned(),
        password: String::new(), // generated
    };
    let _ = admin.remove_tenant(&config.schema_name, &config.username).await; // left by an earlier run
    let credentials = admin.create_tenant(config).await?;
    println!("provisioned schema {} for {}", credentials.schema_name, credentials.username);
    let tenant = DefaultRunner::with_schema(&credentials.connection_string, &credentials.schema_name).await?;
    let mut context = Context::new();
    context.insert("tenant_id", json!("demo"))?;
    context.insert("tenant_type", json!("professional"))?;
    let result = tenant.execute("tenant_onboarding", context).await?;
    println!(
        "onboarded: {:?}, {} setup tasks",
        result.status,
        result.final_context.get_required::<u64>("setup_tasks_count")?
    );
    tenant.shutdown().await?;
    admin.remove_tenant(&credentials.schema_name, &credentials.username).await?;
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(result.final_context.get("setup_tasks_count"), Some(&json!(3)));
    println!("tutorial 06 completed");
    Ok(())
}

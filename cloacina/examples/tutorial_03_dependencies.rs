//! Mirrors upstream Cloacina's library tutorial `03-dependencies`: generate products, split them
//! into three partitions processed in parallel, combine the per-category statistics, then report
//! and notify side by side before a final cleanup (a diamond after a fan-out/fan-in).
//!
//! ```text
//! cargo run -p cloacina --example tutorial_03_dependencies   # DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const PRODUCTS: u32 = 3_000;

#[derive(Debug, Serialize, Deserialize, Clone)]
struct Product {
    id: u32,
    category: String,
    price: f64,
    stock: u32,
}

#[derive(Debug, Serialize, Deserialize, Default, Clone, PartialEq)]
struct CategoryStats {
    total_value: f64,
    total_stock: u32,
    product_count: u32,
}

/// Per-category statistics of one partition, after simulated work of `millis` (random).
async fn process(context: &mut Context<Value>, n: u32, millis: std::ops::Range<u64>) -> Result<(), TaskError> {
    let products: Vec<Product> = context.get_required(&format!("partition_{n}"))?;
    let took = fastrand::u64(millis);
    tokio::time::sleep(Duration::from_millis(took)).await;
    let mut stats: BTreeMap<String, CategoryStats> = BTreeMap::new();
    for p in &products {
        let s = stats.entry(p.category.clone()).or_default();
        s.total_value += p.price * f64::from(p.stock);
        s.total_stock += p.stock;
        s.product_count += 1;
    }
    context.insert_as(format!("stats_{n}"), stats)?;
    context.insert(format!("processing_time_{n}"), json!(took))?;
    println!("partition {n}: {} products in {took} ms", products.len());
    Ok(())
}

#[workflow(name = "parallel_processing", description = "Parallel product data processing pipeline")]
/// The `parallel_processing` workflow.
pub mod parallel_processing {
    use super::*;

    #[task(retry_attempts = 2)]
    /// The `generate_data` task.
    pub async fn generate_data(context: &mut Context<Value>) -> Result<(), TaskError> {
        let products: Vec<Product> = (1..=PRODUCTS)
            .map(|id| Product {
                id,
                category: format!("Category {}", (id % 10) + 1),
                price: (f64::from(id) * 1.5) % 100.0,
                stock: (id * 10) % 1000,
            })
            .collect();
        context.insert("total_products", json!(PRODUCTS))?;
        context.insert_as("products", products)?;
        Ok(())
    }

    #[task(dependencies = ["generate_data"], retry_attempts = 2)]
    /// The `partition_data` task.
    pub async fn partition_data(context: &mut Context<Value>) -> Result<(), TaskError> {
        let products: Vec<Product> = context.get_required("products")?;
        let size = products.len() / 3;
        let (first, rest) = products.split_at(size);
        let (second, third) = rest.split_at(size);
        context.insert_as("partition_1", first.to_vec())?;
        context.insert_as("partition_2", second.to_vec())?;
        context.insert_as("partition_3", third.to_vec())?;
        Ok(())
    }

    #[task(dependencies = ["partition_data"], retry_attempts = 3, retry_delay_ms = 1000)]
    /// The `process_partition_1` task.
    pub async fn process_partition_1(context: &mut Context<Value>) -> Result<(), TaskError> {
        process(context, 1, 100..300).await
    }

    #[task(dependencies = ["partition_data"], retry_attempts = 3, retry_delay_ms = 1000)]
    /// The `process_partition_2` task.
    pub async fn process_partition_2(context: &mut Context<Value>) -> Result<(), TaskError> {
        process(context, 2, 150..400).await
    }

    #[task(dependencies = ["partition_data"], retry_attempts = 3, retry_delay_ms = 1000)]
    /// The `process_partition_3` task.
    pub async fn process_partition_3(context: &mut Context<Value>) -> Result<(), TaskError> {
        process(context, 3, 80..250).await
    }

    #[task(dependencies = ["process_partition_1", "process_partition_2", "process_partition_3"], retry_attempts = 2)]
    /// The `combine_results` task.
    pub async fn combine_results(context: &mut Context<Value>) -> Result<(), TaskError> {
        let mut combined: BTreeMap<String, CategoryStats> = BTreeMap::new();
        let (mut total_ms, mut longest_ms) = (0u64, 0u64);
        for n in 1..=3 {
            let stats: BTreeMap<String, CategoryStats> = context.get_required(&format!("stats_{n}"))?;
            for (category, s) in stats {
                let c = combined.entry(category).or_default();
                c.total_value += s.total_value;
                c.total_stock += s.total_stock;
                c.product_count += s.product_count;
            }
            let ms: u64 = context.get_required(&format!("processing_time_{n}"))?;
            total_ms += ms;
            longest_ms = longest_ms.max(ms);
        }
        context.insert_as("final_stats", combined)?;
        context.insert("total_processing_time_ms", json!(total_ms))?;
        context.insert("actual_parallel_time_ms", json!(longest_ms))?;
        context.insert("parallel_efficiency_percent", json!(total_ms as f64 / longest_ms.max(1) as f64 * 100.0))?;
        Ok(())
    }

    #[task(dependencies = ["combine_results"], retry_attempts = 2)]
    /// The `generate_report` task.
    pub async fn generate_report(context: &mut Context<Value>) -> Result<(), TaskError> {
        let stats: BTreeMap<String, CategoryStats> = context.get_required("final_stats")?;
        let products: u32 = stats.values().map(|s| s.product_count).sum();
        let value: f64 = stats.values().map(|s| s.total_value).sum();
        context.insert("report", json!({"categories": stats.len(), "products": products, "total_value": value}))?;
        Ok(())
    }

    #[task(dependencies = ["combine_results"], retry_attempts = 2)]
    /// The `send_notifications` task.
    pub async fn send_notifications(context: &mut Context<Value>) -> Result<(), TaskError> {
        context.insert("notifications_sent", json!(["analytics@example.com", "ops@example.com"]))?;
        Ok(())
    }

    #[task(dependencies = ["generate_report", "send_notifications"])]
    /// The `cleanup` task.
    pub async fn cleanup(context: &mut Context<Value>) -> Result<(), TaskError> {
        for key in ["products", "partition_1", "partition_2", "partition_3"] {
            context.remove(key);
        }
        context.insert("cleanup_completed", json!(true))?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::fresh_database_url("tutorial-03.db");
    let runner = DefaultRunner::with_config(&url, DefaultRunnerConfig::default()).await?;
    let result = runner.execute("parallel_processing", Context::new()).await?;
    println!("status: {:?} in {:?}", result.status, result.duration);
    println!("report: {}", result.final_context.get("report").cloned().unwrap_or_default());
    println!("parallel efficiency: {:.0}%", result.final_context.get_required::<f64>("parallel_efficiency_percent")?);
    runner.shutdown().await?;
    assert_eq!(result.final_context.get("report").and_then(|r| r.get("products")), Some(&json!(PRODUCTS)));
    assert_eq!(result.final_context.get("cleanup_completed"), Some(&json!(true)));
    assert!(result.final_context.get("products").is_none(), "cleanup removed the bulk data");
    Ok(())
}

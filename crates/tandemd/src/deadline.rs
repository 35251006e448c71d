//! Waiting for a sans-IO core's next deadline inside a `select!`.

use std::time::Instant;

/// Sleeps until `deadline`, or forever when the core has nothing scheduled.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

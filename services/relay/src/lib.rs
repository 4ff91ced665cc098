//! orderly outbox relay: publishes every service's outbox rows to Kafka,
//! at least once and each key's rows in outbox order, with the replicas
//! sharing each source's buckets.
//!
//! Per source (a schema with an `outbox` table): hold a fair share of its
//! buckets under leases (`orderly::ownership`), LISTEN for the outbox
//! trigger's notifications of those buckets with a poll-interval fallback,
//! read their unpublished rows in id order, produce them with an idempotent
//! producer, several batches in flight, then mark the delivered rows
//! published in one statement fenced by the buckets' lease epochs. Published
//! rows are pruned after the retention period. RelayAdmin and `/metrics`
//! report backlogs, bucket owners and roles.

mod app;
mod config;
mod error;
mod grpc;
mod metrics;
mod publisher;
mod source;
mod store;

pub use app::{App, SERVICE_NAME};
pub use config::Config;
pub use error::Error;

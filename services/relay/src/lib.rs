//! orderly outbox relay: publishes every service's outbox rows to Kafka,
//! at least once and in outbox order, with one active relay per source.
//!
//! Per source (a schema with an `outbox` table): wait for the source's
//! Postgres advisory lock (standbys retry), LISTEN for the outbox trigger's
//! notifications with a poll-interval fallback, read unpublished rows in id
//! order, produce them with an idempotent producer, await every delivery,
//! then mark them published in one statement. Published rows are pruned after
//! the retention period. RelayAdmin and `/metrics` report backlogs and roles.

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

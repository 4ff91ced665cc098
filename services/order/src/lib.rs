//! The order service: takes orders and moves them through their states, each
//! change one Postgres transaction together with its outbox event.
//!
//! [`App`] is what the `orderly` binary and the integration tests run.

mod app;
mod config;
mod convert;
pub mod domain;
mod error;
mod events;
mod grpc;
mod metrics;
pub mod saga;
mod service;
mod store;

pub use app::{App, SERVICE_NAME};
pub use config::{Config, SagaConfig};
pub use error::Error;
pub use orderly::startup::StartupError;

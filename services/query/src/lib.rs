//! The query service: projects the order and payment topics into read
//! models in schema `query` (an order view with its payment status and
//! timeline, listed per customer), and serves `orderly.v1.QueryService`:
//! GetOrder (optionally waiting for a consistency token), ListOrders,
//! WatchOrder and GetProjectionStatus.
//!
//! [`App`] is what the `orderly` binary and the integration tests run.

mod app;
mod config;
mod consume;
pub mod domain;
mod error;
mod grpc;
mod rebuild;
mod service;
mod store;
mod wake;

pub use app::{App, SERVICE_NAME};
pub use config::{Config, DEV_PAGE_TOKEN_SECRET};
pub use error::Error;
pub use orderly::startup::StartupError;

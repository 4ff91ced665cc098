//! The payment service: charges an order once its stock is reserved (it
//! consumes `OrderReserved`), one payment per order, each recorded in one
//! Postgres transaction with its `PaymentSucceeded`/`PaymentFailed` event;
//! serves `orderly.v1.PaymentService` (GetPayment, Refund).
//!
//! [`App`] is what the `orderly` binary and the integration tests run.

mod app;
mod config;
mod consume;
mod convert;
pub mod domain;
mod error;
mod events;
pub mod gateway;
mod grpc;
mod service;
mod store;

pub use app::{App, SERVICE_NAME};
pub use config::Config;
pub use error::Error;
pub use orderly::startup::StartupError;

//! `orderly verify`: reconciles the write model (schema `orders`), the
//! inventory ledger (Redis), payments (schema `payments`) and the query views
//! (schema `query`), and reports every discrepancy with its order and SKU.
//!
//! [`domain`] compares one order's (or one SKU's) records without I/O;
//! [`store`] reads them in chunks; [`Verifier`] runs a reconciliation;
//! [`grpc`] serves it as `orderly.v1.VerifyService` (the order service
//! hosts it). Verify needs read access to the three schemas through the
//! order service's database, and the inventory service's Redis settings.

pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
mod reconcile;
pub mod store;

pub use config::Config;
pub use error::Error;
pub use grpc::{SERVICE_NAME, VerifyApi};
pub use reconcile::{Report, Verifier};

//! orderly inventory service: stock levels per SKU and one reservation record
//! per order, kept in Redis and changed only by the Lua scripts in `lua/`
//! (DESIGN §6.2), served over gRPC as `orderly.v1.InventoryService`.
//!
//! [`App`] is what the `orderly` binary and the integration tests run:
//! [`App::build`] binds the listener, [`App::run`] serves until cancelled.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod store;

pub use app::App;
pub use config::Config;
pub use error::Error;

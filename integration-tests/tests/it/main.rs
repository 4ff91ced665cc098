//! orderly's integration tests, one module per area, in one test binary: the
//! workspace is linked once for all of them rather than once per area.
//! nextest runs every test in a process of its own, so a test that sets
//! process-wide state (the global tracer in `tracing`) still starts clean.
//! Tests that run the whole platform are limited by module name in
//! `.config/nextest.toml`; a new module of that kind goes into its filter.

mod chaos;
mod consumer;
mod databases;
mod grpc_surface;
mod hostile;
mod inventory;
mod observability;
mod order;
mod order_faults;
mod order_validation;
mod overload;
mod payment;
mod process;
mod query;
mod relay;
mod saga;
mod security;
mod tls;
mod topics;
mod tracing;
mod verify;

//! orderly: the generated gRPC contracts and the platform kit every component
//! uses (configuration, telemetry, gRPC serving, shutdown, Postgres, Redis,
//! Kafka, and the error → status conventions).

pub mod auth;
pub mod backoff;
pub mod bounds;
pub mod client;
pub mod config;
pub mod consumer;
pub mod env;
pub mod grpc;
pub mod kafka;
pub mod metrics;
pub mod migrate;
pub mod outbox;
pub mod ownership;
pub mod postgres;
pub mod redis;
pub mod shutdown;
pub mod startup;
pub mod status;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod trace;

/// Code generated from `proto/orderly/v1`.
pub mod proto {
    /// Package `orderly.v1`: messages, clients and servers.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("orderly.v1");
    }

    /// Encoded descriptors of every orderly proto file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("orderly_descriptor");
}

//! Compiles the gRPC contracts in `proto/` into the `orderly` library, with a
//! file descriptor set for server reflection.

use std::{env, path::PathBuf};

const PROTOS: [&str; 9] = [
    "proto/orderly/v1/common.proto",
    "proto/orderly/v1/order.proto",
    "proto/orderly/v1/inventory.proto",
    "proto/orderly/v1/payment.proto",
    "proto/orderly/v1/query.proto",
    "proto/orderly/v1/relay.proto",
    "proto/orderly/v1/events.proto",
    "proto/orderly/v1/dead_letter.proto",
    "proto/orderly/v1/verify.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    // A vendored protoc keeps the build independent of the machine's
    // packages; an explicit PROTOC still wins.
    if env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();
    let includes = vec![PathBuf::from("proto"), protoc_bin_vendored::include_path()?];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("orderly_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}

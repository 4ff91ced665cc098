//! Compiles the gRPC contracts in `proto/` into the `orderly` library, with a
//! file descriptor set for server reflection, and generates the servers'
//! access table from each RPC's `(orderly.v1.access)` option. An RPC that
//! declares no access fails the build. Also records the commit built, for
//! the `orderly_build_info` metric.

use std::{env, fmt::Write as _, path::PathBuf, process::Command};

#[allow(dead_code)] // The build reads only part of it.
#[path = "src/auth/contract.rs"]
mod contract;

const PROTOS: [&str; 10] = [
    "proto/orderly/v1/access.proto",
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
    access_table(&out_dir)?;
    commit();
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}

/// Writes `access_table.rs`: every RPC's path and declared access, sorted
/// by path for a binary search.
fn access_table(out_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = std::fs::read(out_dir.join("orderly_descriptor.bin"))?;
    let mut methods = contract::methods(&descriptors)?;
    let undeclared = contract::undeclared(&methods);
    if !undeclared.is_empty() {
        panic!(
            "these RPCs declare no access; add `option (orderly.v1.access) = ACCESS_CLIENT;` \
             or `= ACCESS_ADMIN;` to each (see proto/orderly/v1/access.proto): {}",
            undeclared.join(", ")
        );
    }
    methods.sort_by(|a, b| a.path.cmp(&b.path));
    let mut table = String::from(
        "/// Every RPC of the contract and who may call it, sorted by path;\n\
         /// generated from the `(orderly.v1.access)` options.\n\
         pub const DECLARED: &[(&str, Access)] = &[\n",
    );
    for method in &methods {
        let access = match method.access {
            Some(contract::Declared::Admin) => "Admin",
            _ => "Client",
        };
        writeln!(table, "    ({:?}, Access::{access}),", method.path)?;
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("access_table.rs"), table)?;
    Ok(())
}

/// Sets `ORDERLY_COMMIT` for the build: `ORDERLY_BUILD_COMMIT` when given
/// (an image built without `.git`), else the checked-out commit, else
/// `unknown`. Release builds follow every new commit; debug builds read it
/// only when the build script runs again, since following `HEAD` would
/// rebuild every crate of the workspace on each commit.
fn commit() {
    println!("cargo:rerun-if-env-changed=ORDERLY_BUILD_COMMIT");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let commit = env::var("ORDERLY_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ORDERLY_COMMIT={commit}");
    if env::var("PROFILE").as_deref() == Ok("release")
        && let (Some(git_dir), Some(common)) = (
            git(&["rev-parse", "--absolute-git-dir"]),
            git(&["rev-parse", "--git-common-dir"]),
        )
    {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={common}/{head}");
        }
        println!("cargo:rerun-if-changed={common}/packed-refs");
    }
}

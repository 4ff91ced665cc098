//! One component as an OS process: `orderly <component>` with its
//! environment, its log file, and a wait for its gRPC health.

use std::{
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::{blocking, scratch::tail};
use crate::{Component, FIX_COMMAND};

/// The `orderly` binary the processes run: `ORDERLY_BIN`, or `orderly` next
/// to the running executable (a test binary lives in `target/<profile>/deps`,
/// a binary of this crate in `target/<profile>`).
pub fn orderly_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ORDERLY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running executable");
    let dirs: Vec<&Path> = exe.ancestors().skip(1).take(2).collect();
    if let Some(found) = dirs
        .iter()
        .map(|dir| dir.join("orderly"))
        .find(|candidate| candidate.is_file())
    {
        return found;
    }
    let release = dirs
        .iter()
        .any(|dir| dir.file_name().is_some_and(|name| name == "release"));
    panic!(
        "no orderly binary next to {}\n  build it with: cargo build -p orderly-bin{} \
         (or set ORDERLY_BIN)",
        exe.display(),
        if release { " --release" } else { "" }
    );
}

/// The subcommand that runs `component`.
pub fn subcommand(component: Component) -> &'static str {
    match component {
        Component::Order => "order",
        Component::Inventory => "inventory",
        Component::Payment => "payment",
        Component::Query => "query",
        Component::Relay => "relay",
    }
}

/// The variable stem of `component`'s listeners: `ORDERLY_<STEM>_GRPC_ADDR`.
pub fn env_stem(component: Component) -> &'static str {
    match component {
        Component::Order => "ORDER",
        Component::Inventory => "INVENTORY",
        Component::Payment => "PAYMENT",
        Component::Query => "QUERY",
        Component::Relay => "RELAY",
    }
}

/// A component process and how to start it again.
#[derive(Debug)]
pub struct ComponentProcess {
    pub(super) grpc: SocketAddr,
    pub(super) metrics: SocketAddr,
    pub(super) child: Option<Child>,
    pub(super) log: PathBuf,
    pub(super) starts: u32,
}

impl ComponentProcess {
    /// Spawns `orderly <component>` with `env` (nothing else inherited but
    /// PATH and ORDERLY_LOG), appending its output to `log`.
    pub(super) fn spawn(&mut self, binary: &Path, component: Component, env: &[(String, String)]) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let err = log.try_clone().expect("clone the log handle");
        let mut command = Command::new(binary);
        command
            .arg(subcommand(component))
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "ORDERLY_LOG"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        self.child = Some(child);
        self.starts += 1;
    }

    /// Waits until the process reports SERVING on gRPC health; panics with
    /// the end of its log if it exits or `timeout` passes first.
    pub(super) async fn wait_healthy(&mut self, what: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            if self.exited() {
                panic!(
                    "{what} exited on start; the end of {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 40)
                );
            }
            if serving(self.grpc).await {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{what} did not become healthy in {timeout:?} ({FIX_COMMAND} if a service is \
                     missing); the end of {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 40)
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Whether the process has exited (or was never started).
    pub(super) fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGKILLs the process and reaps it.
    pub(super) async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            blocking(move || {
                let _ = child.kill();
                let _ = child.wait();
            })
            .await;
        }
    }

    /// SIGTERMs the process (it drains) and waits for it to exit.
    pub(super) async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            blocking(move || {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            })
            .await;
        }
    }

    /// The process id while it runs.
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for ComponentProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether the gRPC server at `addr` reports its overall health SERVING.
async fn serving(addr: SocketAddr) -> bool {
    let check = async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        Some(reply.into_inner().status == ServingStatus::Serving as i32)
    };
    tokio::time::timeout(Duration::from_secs(2), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

//! A Redis server of the caller's own, on a free port, with an append-only
//! file synced on every write: a restart (even a SIGKILL) loses no write
//! Redis acknowledged, as a production inventory store must not.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    StopMode, blocking,
    scratch::{ScratchDir, tail},
};
use crate::{eventually, free_port};

/// A `redis-server` process owned by the caller; killed on drop.
#[derive(Debug)]
pub struct RedisInstance {
    port: u16,
    child: Option<Child>,
    log: PathBuf,
    dir: ScratchDir,
    /// Extra arguments: TLS only, an ACL user.
    tls: Option<Vec<String>>,
}

impl RedisInstance {
    /// Starts `redis-server` (from PATH, or `ORDERLY_TEST_REDIS_SERVER`) on
    /// a free port and waits until it answers PING.
    pub async fn start() -> Self {
        let dir = ScratchDir::new("redis");
        let log = dir.path().join("redis.log");
        let mut instance = Self {
            port: free_port(),
            child: None,
            log,
            dir,
            tls: None,
        };
        instance.start_again().await;
        instance
    }

    /// Like [`Self::start`], but listening only for TLS (the PEM
    /// certificate chain and key given; clients need no certificate), with
    /// the default user disabled and one ACL user `user` with `password`
    /// allowed everything, as a managed Redis is set up.
    pub async fn start_tls_only(cert: &[u8], key: &[u8], user: &str, password: &str) -> Self {
        let dir = ScratchDir::new("redis");
        let log = dir.path().join("redis.log");
        let (cert_path, key_path) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        std::fs::write(&cert_path, cert).expect("write server.crt");
        std::fs::write(&key_path, key).expect("write server.key");
        let port = free_port();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert_path.display().to_string(),
            "--tls-key-file",
            &key_path.display().to_string(),
            "--tls-auth-clients",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
        ];
        let mut instance = Self {
            port,
            child: None,
            log,
            dir,
            tls: Some(args.iter().map(|a| (*a).to_owned()).collect()),
        };
        instance.start_again().await;
        instance
    }

    /// Where it listens (`rediss://` when it speaks only TLS; no user).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the server in `mode` (SIGTERM: it flushes and exits; SIGKILL:
    /// it dies at once) and waits for it to exit.
    pub async fn stop(&mut self, mode: StopMode) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        blocking(move || {
            match mode {
                StopMode::Graceful => {
                    let _ = Command::new("kill")
                        .args(["-TERM", &child.id().to_string()])
                        .status();
                }
                StopMode::Crash => {
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        })
        .await;
    }

    /// Starts the stopped server again on the same port and directory (it
    /// loads its append-only file) and waits until it answers PING.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "Redis is running already");
        let server = std::env::var_os("ORDERLY_TEST_REDIS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let mut command = Command::new(&server);
        match &self.tls {
            Some(args) => command.args(["--bind", "127.0.0.1"]).args(args),
            None => command.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()]),
        };
        let child = command
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&self.log)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}\n  install it with: apt-get install -y redis-server",
                    server.display()
                )
            });
        self.child = Some(child);
        let port = self.port;
        if self.tls.is_some() {
            // PING would need TLS: listening is enough (it loads no file).
            let ready = eventually(
                "the own Redis to listen",
                Duration::from_secs(60),
                || async move {
                    TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()
                        .map(|_| ())
                },
            );
            ready.await;
        } else {
            let ready = eventually(
                "the own Redis to answer PING",
                Duration::from_secs(60),
                || async move { ping(port).await.then_some(()) },
            );
            ready.await;
        }
        if let Some(child) = self.child.as_mut() {
            assert!(
                matches!(child.try_wait(), Ok(None)),
                "Redis exited on start:\n{}",
                tail(&self.log, 20)
            );
        }
    }

    /// Stops the server in `mode` and starts it again.
    pub async fn restart(&mut self, mode: StopMode) {
        self.stop(mode).await;
        self.start_again().await;
    }
}

impl Drop for RedisInstance {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether Redis on `port` answers PING with PONG (not LOADING while it
/// replays its append-only file).
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 64];
        let n = stream.read(&mut reply).await.ok()?;
        Some(reply[..n].starts_with(b"+PONG"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

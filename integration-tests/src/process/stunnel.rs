//! A TLS terminator (Debian's `stunnel4`) in front of a plain TCP server,
//! for servers with no TLS listener of their own (the test broker).

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use super::scratch::{ScratchDir, tail};

/// The command that installs stunnel on Debian.
pub const STUNNEL_INSTALL: &str = "apt-get install -y stunnel4";

/// An stunnel process accepting TLS on `addr` and forwarding the plain
/// bytes to a target; killed on drop.
#[derive(Debug)]
pub struct Stunnel {
    /// Where it accepts TLS.
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: ScratchDir,
}

impl Stunnel {
    /// Accepts TLS on `addr` with the PEM certificate chain and key given
    /// and forwards to `target`; waits until it listens.
    pub async fn start(addr: SocketAddr, target: SocketAddr, cert: &[u8], key: &[u8]) -> Self {
        let dir = ScratchDir::new("stunnel");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert).expect("write cert.pem");
        std::fs::write(&key_path, key).expect("write key.pem");
        let log = dir.path().join("stunnel.log");
        let conf = dir.path().join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\noutput = {}\n[tls]\naccept = {addr}\n\
                 connect = {target}\ncert = {}\nkey = {}\n",
                log.display(),
                cert_path.display(),
                key_path.display()
            ),
        )
        .expect("write stunnel.conf");
        let binary = std::env::var_os("ORDERLY_TEST_STUNNEL").unwrap_or_else(|| "stunnel".into());
        let mut child = Command::new(&binary)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}\n  install it with: {STUNNEL_INSTALL}",
                    binary.to_string_lossy()
                )
            });
        assert!(
            crate::eventually::until_listening(&mut child, addr, "stunnel").await,
            "stunnel exited on start:\n{}",
            tail(&log, 20)
        );
        Self {
            addr,
            child,
            log,
            _dir: dir,
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 20)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

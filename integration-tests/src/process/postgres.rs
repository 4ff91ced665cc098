//! A Postgres server of the caller's own: a cluster made by `initdb` in a
//! scratch directory, listening on a free port of 127.0.0.1 with trust
//! authentication, so restarting or crashing it disturbs nobody else.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use super::{
    StopMode, blocking,
    scratch::{ScratchDir, tail},
};
use crate::free_port;

/// A Postgres cluster owned by the caller; stopped and removed on drop.
#[derive(Debug)]
pub struct PostgresInstance {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Removed (data and log) after the server is stopped on drop.
    _dir: ScratchDir,
}

impl PostgresInstance {
    /// Creates a cluster with `initdb` (as the `postgres` OS user when run
    /// as root, since Postgres refuses root) and starts it on a free port.
    pub async fn start() -> Self {
        blocking(|| Self::start_blocking(None, "")).await
    }

    /// Like [`Self::start`], with `pg_stat_statements` loaded and tracking
    /// every statement (nested ones included), for a benchmark that reports
    /// what each statement costs.
    pub async fn start_with_statement_stats() -> Self {
        blocking(|| {
            Self::start_blocking(
                None,
                "shared_preload_libraries = 'pg_stat_statements'\n\
                 pg_stat_statements.track = all\n",
            )
        })
        .await
    }

    /// Like [`Self::start`], but the server speaks only TLS over TCP
    /// (`ssl = on` with the PEM certificate chain and key given, and only
    /// `hostssl` lines in pg_hba.conf), as managed databases are set up.
    pub async fn start_tls_only(cert: Vec<u8>, key: Vec<u8>) -> Self {
        blocking(move || Self::start_blocking(Some((cert, key, false)), "")).await
    }

    /// Like [`Self::start_tls_only`], but plain TCP connections are taken
    /// too, so a test can see in `pg_stat_ssl` which sessions chose TLS.
    pub async fn start_tls_and_plain(cert: Vec<u8>, key: Vec<u8>) -> Self {
        blocking(move || Self::start_blocking(Some((cert, key, true)), "")).await
    }

    /// `tls`: the certificate, its key, and whether plain TCP is taken too;
    /// `extra`: more lines for postgresql.conf.
    fn start_blocking(tls: Option<(Vec<u8>, Vec<u8>, bool)>, extra: &str) -> Self {
        let bin = postgres_bin_dir();
        let dir = ScratchDir::new("postgres");
        if running_as_root() {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()));
        }
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        run(owner_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]));
        let port = free_port();
        // fsync off: a crash of the server (what the callers inject) loses
        // nothing that was written to the OS, only a machine crash would;
        // synchronous_commit stays on so an acknowledged commit is in the WAL.
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{}'\nmax_connections = 300\n\
             fsync = off\nshared_buffers = 128MB\n",
            dir.path().display()
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings);
        text.push_str(extra);
        if let Some((cert, key, plain_too)) = tls {
            text.push_str(&enable_tls(&data, &cert, &key, plain_too));
        }
        std::fs::write(&conf, text).expect("write postgresql.conf");
        let instance = Self {
            port,
            bin,
            data,
            log,
            _dir: dir,
        };
        instance.handle().pg_ctl(&["start"]);
        instance
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL of `database` on this server, as user `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The postmaster's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the server (`pg_ctl stop` in `mode`) and waits until it is down.
    pub async fn stop(&self, mode: StopMode) {
        let this = self.handle();
        blocking(move || this.stop_blocking(mode)).await;
    }

    /// Starts the stopped server again on the same port; waits until it
    /// accepts connections (after recovery, following a crash).
    pub async fn start_again(&self) {
        let this = self.handle();
        blocking(move || this.pg_ctl(&["start"])).await;
    }

    /// Stops the server in `mode` and starts it again.
    pub async fn restart(&self, mode: StopMode) {
        let this = self.handle();
        blocking(move || {
            this.stop_blocking(mode);
            this.pg_ctl(&["start"]);
        })
        .await;
    }

    /// What the blocking helpers need, owned, for `spawn_blocking`.
    fn handle(&self) -> Handle {
        Handle {
            bin: self.bin.clone(),
            data: self.data.clone(),
            log: self.log.clone(),
        }
    }
}

impl Drop for PostgresInstance {
    fn drop(&mut self) {
        let _ = owner_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        // Then `self.dir` removes the data directory.
    }
}

/// The paths `pg_ctl` needs, detached from the instance.
struct Handle {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

impl Handle {
    fn stop_blocking(&self, mode: StopMode) {
        let mode = match mode {
            StopMode::Graceful => "fast",
            StopMode::Crash => "immediate",
        };
        self.pg_ctl(&["-m", mode, "stop"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let output = owner_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "120"])
            .args(args)
            .output()
            .expect("run pg_ctl");
        assert!(
            output.status.success(),
            "pg_ctl {args:?} failed: {}\n{}\n--- {}:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log.display(),
            tail(&self.log, 30)
        );
    }
}

/// Newest `/usr/lib/postgresql/<version>/bin` with `initdb` (Debian's
/// layout), or `ORDERLY_TEST_PG_BIN`.
fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORDERLY_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no initdb under /usr/lib/postgresql/*/bin\n  install it with: apt-get install -y postgresql \
             (or set ORDERLY_TEST_PG_BIN)"
        )
    })
}

/// Writes the certificate and key (the key readable by the server's owner
/// only, as Postgres demands) and a pg_hba.conf refusing TCP without TLS
/// (unless `plain_too`); returns the settings to append to postgresql.conf.
fn enable_tls(data: &Path, cert: &[u8], key: &[u8], plain_too: bool) -> String {
    use std::os::unix::fs::PermissionsExt;
    let cert_path = data.join("server.crt");
    let key_path = data.join("server.key");
    std::fs::write(&cert_path, cert).expect("write server.crt");
    std::fs::write(&key_path, key).expect("write server.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod server.key");
    let tcp = if plain_too { "host" } else { "hostssl" };
    std::fs::write(
        data.join("pg_hba.conf"),
        format!("local all all trust\n{tcp} all all 127.0.0.1/32 trust\n"),
    )
    .expect("write pg_hba.conf");
    if running_as_root() {
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(&cert_path)
            .arg(&key_path)
            .arg(data.join("pg_hba.conf")));
    }
    "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_owned()
}

/// Whether this process runs as root (whose files under /proc are its own).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` run as the `postgres` OS user when we are root.
fn owner_command(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

//! The platform as OS processes: the real `orderly` binary per component
//! against a Postgres, a Redis and a broker of the caller's own, so they can
//! be killed, paused and restarted without disturbing any other test. For
//! chaos runs and for benchmarks that measure each component's CPU and
//! memory; ordinary tests use the in-process [`crate::TestPlatform`].

mod component;
mod postgres;
mod redis;
mod scratch;
mod stats;
mod stunnel;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

pub use component::{orderly_binary, subcommand};
pub use postgres::PostgresInstance;
pub use redis::RedisInstance;
pub use stats::ProcessStats;
pub use stunnel::{STUNNEL_INSTALL, Stunnel};

use component::{ComponentProcess, env_stem};
use scratch::{ScratchDir, tail};

use crate::{BrokerProcess, Component, Instance, free_port};

/// The broker of a process platform: a tansu process of its own with
/// in-memory storage. It is never restarted (that would lose every
/// record), only paused and resumed ([`BrokerProcess::pause`]).
pub type BrokerInstance = BrokerProcess;

/// How a server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// A clean shutdown: Postgres `pg_ctl -m fast` (sessions end, a
    /// checkpoint is written); Redis SIGTERM (it flushes and exits).
    Graceful,
    /// A crash: Postgres `pg_ctl -m immediate` (no checkpoint; the next
    /// start recovers from the WAL); Redis SIGKILL.
    Crash,
}

/// How long a component may take to report SERVING after it is started.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

/// The components a process platform runs, in start order: the servers the
/// others call come first.
const START_ORDER: [Component; 5] = [
    Component::Inventory,
    Component::Payment,
    Component::Query,
    Component::Order,
    Component::Relay,
];

/// Chooses how the process platform runs.
#[derive(Debug, Clone, Default)]
pub struct ProcessPlatformBuilder {
    /// Replicas per component; one where not set.
    replicas: Vec<(Component, usize)>,
    env: Vec<(String, String)>,
}

impl ProcessPlatformBuilder {
    /// Runs `count` replicas of `component` (at least one), each its own
    /// process on ports of its own, against the same database, Redis and
    /// broker. Replica 0 is the one [`ProcessPlatform::env`] points the
    /// others at.
    pub fn replicas(mut self, component: Component, count: usize) -> Self {
        self.replicas.retain(|(c, _)| *c != component);
        self.replicas.push((component, count.max(1)));
        self
    }

    fn replicas_of(&self, component: Component) -> usize {
        self.replicas
            .iter()
            .find_map(|(c, count)| (*c == component).then_some(*count))
            .unwrap_or(1)
    }

    /// Sets `ORDERLY_<name>` (name without the prefix) for every component,
    /// over the defaults this platform chooses.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env
            .push((format!("ORDERLY_{name}"), value.to_string()));
        self
    }

    /// Starts Postgres, Redis and the broker, runs `orderly migrate`, then
    /// starts the replicas of inventory, payment, query, order (with its
    /// saga) and the relay, and waits until each reports SERVING.
    pub async fn start(self) -> ProcessPlatform {
        crate::init_logging();
        let binary = orderly_binary();
        let instances: Vec<Instance> = START_ORDER
            .into_iter()
            .flat_map(|component| {
                (0..self.replicas_of(component)).map(move |index| Instance { component, index })
            })
            .collect();
        let (postgres, redis, broker) = tokio::join!(
            PostgresInstance::start(),
            RedisInstance::start(),
            BrokerProcess::start()
        );
        let dir = ScratchDir::new("platform");
        let mut platform = ProcessPlatform {
            postgres,
            redis,
            broker,
            binary,
            settings: self.env,
            processes: Vec::new(),
            dir,
        };
        for instance in &instances {
            let log = platform.dir.path().join(format!(
                "{}-{}.log",
                subcommand(instance.component),
                instance.index
            ));
            let process = ComponentProcess {
                grpc: ([127, 0, 0, 1], free_port()).into(),
                metrics: ([127, 0, 0, 1], free_port()).into(),
                child: None,
                log,
                starts: 0,
            };
            platform.processes.push((*instance, process));
        }
        let migrated = platform.orderly(&["migrate"]).await;
        assert!(
            migrated.status.success(),
            "orderly migrate failed:\n{}{}",
            String::from_utf8_lossy(&migrated.stdout),
            String::from_utf8_lossy(&migrated.stderr)
        );
        for instance in &instances {
            platform.spawn(*instance);
        }
        for instance in instances {
            platform.wait_healthy(instance).await;
        }
        platform
    }
}

/// The platform's processes and servers; everything is killed and removed
/// when it is dropped (the scratch directories stay when a test panics).
#[derive(Debug)]
pub struct ProcessPlatform {
    /// The platform's own Postgres (database `orderly`).
    pub postgres: PostgresInstance,
    /// The platform's own Redis.
    pub redis: RedisInstance,
    /// The platform's own broker.
    pub broker: BrokerInstance,
    binary: PathBuf,
    settings: Vec<(String, String)>,
    /// Every component copy, in start order.
    processes: Vec<(Instance, ComponentProcess)>,
    dir: ScratchDir,
}

impl ProcessPlatform {
    /// Starts choosing how to run.
    pub fn builder() -> ProcessPlatformBuilder {
        ProcessPlatformBuilder::default()
    }

    /// The environment every process gets: the servers, every component's
    /// addresses (those of its replica 0, so the saga calls inventory and
    /// payment replica 0), then the builder's settings.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.postgres.url("orderly")),
            // Up to a dozen processes share a server of 300 connections.
            ("DATABASE_POOL_SIZE".into(), "8".into()),
            ("REDIS_URL".into(), self.redis.url()),
            ("KAFKA_BROKERS".into(), self.broker.addr.to_string()),
            // A joining consumer waits about half of this.
            ("SHUTDOWN_GRACE_MS".into(), "2000".into()),
        ];
        for (instance, process) in &self.processes {
            if instance.index == 0 {
                let stem = env_stem(instance.component);
                env.push((format!("{stem}_GRPC_ADDR"), process.grpc.to_string()));
                env.push((format!("{stem}_METRICS_ADDR"), process.metrics.to_string()));
            }
        }
        let inventory = self.grpc_addr(Component::Inventory);
        let payment = self.grpc_addr(Component::Payment);
        env.push(("SAGA_INVENTORY_URL".into(), format!("http://{inventory}")));
        env.push(("SAGA_PAYMENT_URL".into(), format!("http://{payment}")));
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .map(|(name, value)| (format!("ORDERLY_{name}"), value))
            .collect();
        env.extend(self.settings.iter().cloned());
        env
    }

    /// Runs `orderly args…` (a client command such as `verify --json`, or
    /// `migrate`) with [`Self::env`], and returns what it printed.
    pub async fn orderly(&self, args: &[&str]) -> Output {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH"))
            .envs(self.env());
        blocking(move || {
            command
                .output()
                .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
        })
        .await
    }

    fn process(&self, instance: Instance) -> &ComponentProcess {
        self.processes
            .iter()
            .find_map(|(i, process)| (*i == instance).then_some(process))
            .unwrap_or_else(|| panic!("{instance:?} is not part of this platform"))
    }

    fn process_mut(&mut self, instance: Instance) -> &mut ComponentProcess {
        self.processes
            .iter_mut()
            .find_map(|(i, process)| (*i == instance).then_some(process))
            .unwrap_or_else(|| panic!("{instance:?} is not part of this platform"))
    }

    fn spawn(&mut self, instance: Instance) {
        let mut env = self.env();
        let stem = env_stem(instance.component);
        let (grpc, metrics) = {
            let process = self.process(instance);
            (process.grpc, process.metrics)
        };
        // Later settings win: this copy's own listeners.
        env.push((format!("ORDERLY_{stem}_GRPC_ADDR"), grpc.to_string()));
        env.push((format!("ORDERLY_{stem}_METRICS_ADDR"), metrics.to_string()));
        let binary = self.binary.clone();
        self.process_mut(instance)
            .spawn(&binary, instance.component, &env);
    }

    async fn wait_healthy(&mut self, instance: Instance) {
        let what = format!(
            "orderly {} #{}",
            subcommand(instance.component),
            instance.index
        );
        self.process_mut(instance)
            .wait_healthy(&what, HEALTHY_WITHIN)
            .await;
    }

    /// Kills `instance` with SIGKILL, as a crash or an OOM kill would:
    /// nothing is drained, its sessions and locks end with its connections.
    pub async fn kill9(&mut self, instance: impl Into<Instance>) {
        self.process_mut(instance.into()).kill9().await;
    }

    /// Stops `instance` with SIGTERM and waits until it has drained.
    pub async fn terminate(&mut self, instance: impl Into<Instance>) {
        self.process_mut(instance.into()).terminate().await;
    }

    /// Starts a killed or stopped `instance` again on the same ports and
    /// waits until it reports SERVING.
    pub async fn restart(&mut self, instance: impl Into<Instance>) {
        let instance = instance.into();
        assert!(
            self.process_mut(instance).exited(),
            "kill or terminate {instance:?} before restarting it"
        );
        self.spawn(instance);
        self.wait_healthy(instance).await;
    }

    /// Whether `instance` is running (it may have exited on its own).
    pub fn is_running(&mut self, instance: impl Into<Instance>) -> bool {
        !self.process_mut(instance.into()).exited()
    }

    /// Every component copy of this platform.
    pub fn instances(&self) -> Vec<Instance> {
        self.processes
            .iter()
            .map(|(instance, _)| *instance)
            .collect()
    }

    /// The replicas of `component`, replica 0 first.
    pub fn replicas(&self, component: Component) -> Vec<Instance> {
        self.processes
            .iter()
            .map(|(instance, _)| *instance)
            .filter(|instance| instance.component == component)
            .collect()
    }

    /// `instance`'s process id while it runs.
    pub fn pid(&self, instance: impl Into<Instance>) -> Option<u32> {
        self.process(instance.into()).pid()
    }

    /// CPU time and memory of `instance`'s current process (since its last
    /// start), or `None` when it is not running.
    pub fn stats(&self, instance: impl Into<Instance>) -> Option<ProcessStats> {
        ProcessStats::of(self.pid(instance)?)
    }

    /// How many times `instance` was started.
    pub fn starts(&self, instance: impl Into<Instance>) -> u32 {
        self.process(instance.into()).starts
    }

    /// Where `instance` serves gRPC.
    pub fn grpc_addr(&self, instance: impl Into<Instance>) -> SocketAddr {
        self.process(instance.into()).grpc
    }

    /// Where `instance` serves `/metrics`.
    pub fn metrics_addr(&self, instance: impl Into<Instance>) -> SocketAddr {
        self.process(instance.into()).metrics
    }

    /// `instance`'s log file (every start appends to it).
    pub fn log_path(&self, instance: impl Into<Instance>) -> &Path {
        &self.process(instance.into()).log
    }

    /// The last `lines` lines of `instance`'s log.
    pub fn log_tail(&self, instance: impl Into<Instance>, lines: usize) -> String {
        tail(self.log_path(instance), lines)
    }

    /// A gRPC channel to `instance` that connects lazily and reconnects
    /// after a restart.
    pub fn channel(&self, instance: impl Into<Instance>) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.grpc_addr(instance)))
            .expect("a valid URI")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy()
    }
}

/// Runs blocking process management off the async runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("process management task")
}

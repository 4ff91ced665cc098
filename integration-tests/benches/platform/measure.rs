//! Measuring: closed loops at a fixed concurrency, latency percentiles, and
//! CPU time read from `/proc` (this process's threads by name, Postgres
//! backends by pid, Redis and the broker by pid).

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

/// Linux fixes USER_HZ at 100 ticks per second.
const TICK: Duration = Duration::from_millis(10);

/// One closed-loop case: how many operations finished in how long.
pub struct Measured {
    /// Operations completed.
    pub ops: usize,
    /// Wall time of the measurement.
    pub elapsed: Duration,
    /// Per-operation latencies, sorted.
    pub latencies: Vec<Duration>,
}

impl Measured {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// The `p` quantile (0..=1) of sorted `values`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    let index = ((last as f64) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Runs `concurrency` workers calling `op` until `duration` has passed,
/// after one warm-up call per worker (connections, statement caches).
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let warmups: Vec<_> = (0..concurrency)
        .map(|n| {
            let op = Arc::clone(&op);
            tokio::spawn(async move { op(n).await })
        })
        .collect();
    for warmup in warmups {
        warmup.await.expect("warm-up");
    }
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = Arc::clone(&op);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = worker + concurrency;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    op(n).await;
                    latencies.push(began.elapsed());
                    n += concurrency;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Measured {
        ops: latencies.len(),
        elapsed,
        latencies,
    }
}

/// utime + stime of a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name may contain spaces; count fields after it.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state): utime (14) is [11], stime (15) [12].
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU time a process has used so far (all its threads).
pub fn process_cpu(pid: u32) -> Duration {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_ticks(&s))
        .map_or(Duration::ZERO, |t| TICK * t as u32)
}

/// CPU time used so far by this process's threads whose name starts with
/// `prefix` (threads that already exited are not counted).
pub fn threads_cpu(prefix: &str) -> Duration {
    let mut ticks = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let named = std::fs::read_to_string(path.join("comm"))
                .is_ok_and(|comm| comm.trim_end().starts_with(prefix));
            if named {
                ticks += std::fs::read_to_string(path.join("stat"))
                    .ok()
                    .and_then(|s| stat_ticks(&s))
                    .unwrap_or(0);
            }
        }
    }
    TICK * ticks as u32
}

/// The pids of the processes whose command name is `comm`.
fn processes(comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (name.trim_end() == comm).then_some(pid)
        })
        .collect()
}

/// The pid of the first process whose command name is `comm`.
pub fn find_process(comm: &str) -> Option<u32> {
    processes(comm).into_iter().next()
}

/// The broker the bench talks to: the `tansu` whose command line names the
/// port of `ORDERLY_TEST_KAFKA_BROKERS` (default 9092), so that a second
/// broker on the machine (the shared one beside a bench's own) is not
/// measured instead; else the first `tansu`.
pub fn find_broker() -> Option<u32> {
    let brokers =
        std::env::var("ORDERLY_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let port = brokers
        .split(',')
        .next()
        .and_then(|broker| broker.rsplit(':').next())
        .map(|port| format!(":{port}"));
    let candidates = processes("tansu");
    let listening_there = port.and_then(|port| {
        candidates.iter().copied().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|line| String::from_utf8_lossy(&line).contains(&port))
                .unwrap_or(false)
        })
    });
    listening_there.or_else(|| candidates.first().copied())
}

/// CPU used by the Postgres backends serving one database: the sessions
/// present at the end of a phase, less what those present at its start had
/// used (a session opened during the phase counts from zero).
pub struct BackendsCpu {
    database: String,
    start: HashMap<u32, Duration>,
}

impl BackendsCpu {
    /// Takes the starting point for `database`'s backends.
    pub async fn start(client: &tokio_postgres::Client, database: &str) -> Self {
        let start = backends(client, database)
            .await
            .into_iter()
            .map(|pid| (pid, process_cpu(pid)))
            .collect();
        Self {
            database: database.to_owned(),
            start,
        }
    }

    /// CPU the backends used since [`Self::start`].
    pub async fn used(&self, client: &tokio_postgres::Client) -> Duration {
        backends(client, &self.database)
            .await
            .into_iter()
            .map(|pid| {
                let now = process_cpu(pid);
                now.saturating_sub(self.start.get(&pid).copied().unwrap_or_default())
            })
            .sum()
    }
}

async fn backends(client: &tokio_postgres::Client, database: &str) -> Vec<u32> {
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.get::<_, i32>(0).unsigned_abs())
        .collect()
}

/// Committed transactions of `database` so far.
pub async fn commits(client: &tokio_postgres::Client, database: &str) -> i64 {
    // Backends flush their counts at most once a second, when idle: callers
    // let a phase settle for a moment before reading its end.
    client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&database],
        )
        .await
        .expect("pg_stat_database")
        .get(0)
}

/// A snapshot of CPU by part of the platform: this process's threads by
/// role, the database's backends, Redis and the broker.
pub struct CpuProbe {
    services: Duration,
    kafka_client: Duration,
    load: Duration,
    redis: Duration,
    broker: Duration,
    backends: BackendsCpu,
    pids: (Option<u32>, Option<u32>),
}

/// CPU used during a phase, per part.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsed {
    /// Tokio threads of the components (`orderly-svc`).
    pub services: Duration,
    /// librdkafka's threads (`rdk:*`), the relay's and consumers' clients.
    pub kafka_client: Duration,
    /// The load generator's threads (`bench-load`).
    pub load: Duration,
    /// The database's Postgres backends.
    pub postgres: Duration,
    /// The Redis server (shared; other clients count too).
    pub redis: Duration,
    /// The broker process (shared; other clients count too).
    pub broker: Duration,
}

impl CpuProbe {
    /// Starts measuring.
    pub async fn start(client: &tokio_postgres::Client, database: &str) -> Self {
        let pids = (find_process("redis-server"), find_broker());
        Self {
            services: threads_cpu(crate::SERVICE_THREADS),
            kafka_client: threads_cpu("rdk:"),
            load: threads_cpu(crate::LOAD_THREADS),
            redis: pids.0.map(process_cpu).unwrap_or_default(),
            broker: pids.1.map(process_cpu).unwrap_or_default(),
            backends: BackendsCpu::start(client, database).await,
            pids,
        }
    }

    /// What each part used since [`Self::start`].
    pub async fn used(&self, client: &tokio_postgres::Client) -> CpuUsed {
        CpuUsed {
            services: threads_cpu(crate::SERVICE_THREADS).saturating_sub(self.services),
            kafka_client: threads_cpu("rdk:").saturating_sub(self.kafka_client),
            load: threads_cpu(crate::LOAD_THREADS).saturating_sub(self.load),
            postgres: self.backends.used(client).await,
            redis: self
                .pids
                .0
                .map(process_cpu)
                .unwrap_or_default()
                .saturating_sub(self.redis),
            broker: self
                .pids
                .1
                .map(process_cpu)
                .unwrap_or_default()
                .saturating_sub(self.broker),
        }
    }
}

/// Microseconds of `cpu` per one of `count`.
pub fn micros_per(cpu: Duration, count: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / count.max(1) as f64
}

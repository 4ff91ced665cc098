//! The integration-test harness: every test gets its own database, Redis key
//! prefix and Kafka topic prefix (and, when it needs to break the broker, its
//! own broker process), so tests run in parallel against real services.
//!
//! A service that cannot be reached fails the test loudly with the command
//! that fixes it; nothing is skipped.

pub mod chaos;
mod database;
mod eventually;
mod gateway;
mod kafka;
mod metrics;
pub mod orders;
mod platform;
pub mod process;
mod proxy;
mod redis;
mod test_end;
mod tls;

pub use database::TestDatabase;
pub use eventually::{eventually, last_seen};
pub use gateway::{CountingGateway, GatewayCalls};
pub use kafka::{BrokerProcess, TestKafka, TopicRecord};
pub use metrics::{scrape_metrics, try_scrape_metrics};
pub use platform::{Component, Instance, TestPlatform, TestPlatformBuilder, consumer_runtime};
pub use proxy::TcpProxy;
pub use redis::TestRedis;
pub use test_end::run_as_a_test;
pub use tls::test_tls;

/// The command that starts every service the tests need.
pub const FIX_COMMAND: &str = "scripts/dev-stack.sh up";

/// A port of 127.0.0.1 that is free now and that no other test process
/// on this machine was handed in the last half hour: test processes run
/// side by side, and a port checked free by one and listened on by its
/// child seconds later could meanwhile be checked free by another.
pub fn free_port() -> u16 {
    // Below Linux's ephemeral range (32768-60999 by default): a port handed
    // out by `bind(0)` is soon handed to some outgoing connection's local
    // end too, and a process told to listen on it later finds it taken.
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    for _ in 0..1_000 {
        let port = rand::random_range(LOW..HIGH);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && reserve(port) {
            return port;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("find a free port")
}

/// How long a port claimed by a test process stays claimed.
const PORT_HELD_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Claims `port` for this process, machine-wide, with a file created
/// exclusively in a shared directory; a claim older than half an hour (its
/// test long over) is taken over. True when claimed, or when claims cannot
/// be written at all (the bind check alone then decides).
fn reserve(port: u16) -> bool {
    reserve_in(&std::env::temp_dir().join("orderly-test-ports"), port)
}

/// [`reserve`] with its claims in `dir`.
fn reserve_in(dir: &std::path::Path, port: u16) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return true;
    }
    let path = dir.join(port.to_string());
    let claim = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
    };
    match claim() {
        Ok(_) => true,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let stale = std::fs::metadata(&path)
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age > PORT_HELD_FOR);
            // Of two processes taking over one stale claim, only the one
            // that creates the file anew gets it.
            stale && std::fs::remove_file(&path).is_ok() && claim().is_ok()
        }
        Err(_) => true,
    }
}

/// The number in environment variable `name`, when it is set and parses
/// (knobs a benchmark turns to compare settings).
pub fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

/// A short random id for naming a test's database, prefixes and groups.
pub fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// The name stem of a test's own database and Redis prefix:
/// `orderly_test_<unix seconds>_<id>`. The time lets the test command clean
/// up what old runs left without touching a run still in progress.
pub fn test_resource_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("orderly_test_{now}_{}", unique_id())
}

/// Installs test logging once; `ORDERLY_LOG=debug` shows what components do.
pub fn init_logging() {
    orderly::telemetry::init();
}

/// A valid one-line order for `customer` (SKU-1 × 1 at 1.00 EUR, `pm_ok`),
/// for tests that need an order but not a particular one.
pub fn order_request(customer: &str) -> orderly::proto::v1::CreateOrderRequest {
    orderly::proto::v1::CreateOrderRequest {
        customer_id: customer.into(),
        items: vec![orderly::proto::v1::OrderItem {
            sku: "SKU-1".into(),
            quantity: 1,
            unit_price_minor: 100,
        }],
        currency: "EUR".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: String::new(),
    }
}

/// A gRPC channel to a component at `addr`, for clients the platform does
/// not hand out (health, reflection).
pub async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    orderly::client::ChannelBuilder::new(&orderly::tls::TlsConfig::default(), None)
        .and_then(|channels| channels.endpoint(&addr.to_string()))
        .expect("a valid URI")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_port_is_not_handed_out_again_until_its_claim_is_stale() {
        let dir = std::env::temp_dir().join(format!("orderly-test-ports-{}", unique_id()));
        assert!(reserve_in(&dir, 20_001), "a first claim succeeds");
        assert!(
            !reserve_in(&dir, 20_001),
            "a second claim of the same port fails"
        );
        assert!(reserve_in(&dir, 20_002), "another port is free to claim");
        let stale =
            std::time::SystemTime::now() - PORT_HELD_FOR - std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(dir.join("20001"))
            .and_then(|file| file.set_modified(stale))
            .expect("age the claim");
        assert!(reserve_in(&dir, 20_001), "a stale claim is taken over");
        assert!(!reserve_in(&dir, 20_001), "and is fresh again");
        std::fs::remove_dir_all(&dir).expect("remove the claims");
    }
}

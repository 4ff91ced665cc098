//! The test's CA and its TLS-only servers.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use orderly::{config::PostgresConfig, kafka::KafkaConfig, redis::RedisConfig};
use orderly_integration_tests::{
    BrokerProcess, TestKafka, free_port, last_seen,
    process::{PostgresInstance, RedisInstance, Stunnel},
    test_tls, unique_id,
};

/// The ACL user and password of the test's Redis.
pub const REDIS_USER: &str = "orderly";
pub const REDIS_PASSWORD: &str = "s3cret-acl";

/// A CA, a server certificate (localhost, 127.0.0.1) signed by it, and the
/// CA's PEM file, as an operator would mount it; the file is removed on drop.
pub struct Pki {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca_file: String,
    dir: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let tls = test_tls();
        let (cert, key) = tls.identity.expect("a server certificate");
        let dir = std::env::temp_dir().join(format!("orderly-tls-{}", unique_id()));
        std::fs::create_dir_all(&dir).expect("create the CA directory");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, tls.ca.expect("a CA")).expect("write ca.pem");
        Self {
            cert,
            key,
            ca_file: ca_file.display().to_string(),
            dir,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Postgres of the test's own that refuses TCP connections without TLS.
pub struct TlsPostgres {
    pub server: PostgresInstance,
}

impl TlsPostgres {
    pub async fn start(pki: &Pki) -> Self {
        Self {
            server: PostgresInstance::start_tls_only(pki.cert.clone(), pki.key.clone()).await,
        }
    }

    /// A server that takes plain TCP connections too: whether a session
    /// chose TLS then shows only in `pg_stat_ssl`, which
    /// [`Self::assert_every_session_encrypted`] reads.
    pub async fn start_accepting_plain(pki: &Pki) -> Self {
        Self {
            server: PostgresInstance::start_tls_and_plain(pki.cert.clone(), pki.key.clone()).await,
        }
    }

    /// Settings for `database` with `sslmode`, trusting `pki`'s CA.
    pub fn config(&self, pki: &Pki, database: &str, sslmode: &str) -> PostgresConfig {
        PostgresConfig {
            database_url: format!(
                "postgres://postgres@localhost:{}/{database}?sslmode={sslmode}",
                self.server.port()
            ),
            database_ca_file: Some(pki.ca_file.clone()),
            database_pool_size: 4,
            ..PostgresConfig::default()
        }
    }

    /// Every session the components keep on the `orderly` database is
    /// there and encrypted: the relay's (one per source), the query
    /// service's LISTEN session, each consumer's listening for its
    /// replicas' share changes, and the pools' connections (no
    /// application name; the relay's leases run on one of them). On a
    /// TLS-only server a session that tried plain is missing; on one
    /// accepting plain too, it shows unencrypted.
    pub async fn assert_every_session_encrypted(&self) {
        let config = PostgresConfig {
            database_url: format!(
                "postgres://postgres@localhost:{}/postgres?sslmode=require",
                self.server.port()
            ),
            ..PostgresConfig::default()
        };
        let pool = orderly::postgres::pool(&config).expect("pool");
        let client = pool.get().await.expect("connect with sslmode=require");
        let complete = |sessions: &[(String, bool)]| {
            let encrypted = |name: &str| sessions.iter().any(|(n, ssl)| n == name && *ssl);
            let encrypted_ending =
                |suffix: &str| sessions.iter().any(|(n, ssl)| n.ends_with(suffix) && *ssl);
            EXPECTED_SESSIONS.iter().all(|name| encrypted(name))
                && SHARES_LISTENERS
                    .iter()
                    .all(|suffix| encrypted_ending(suffix))
                && sessions.iter().all(|(_, ssl)| *ssl)
        };
        // Sessions reconnect after a failure: wait for all of them, then
        // show what was there if they never were.
        let sessions = last_seen(
            Duration::from_secs(30),
            || {
                let client = &client;
                async move {
                    let sessions: Vec<(String, bool)> = client
                        .query(
                            "SELECT a.application_name, s.ssl \
                             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                             WHERE a.backend_type = 'client backend' AND a.datname = 'orderly' \
                             ORDER BY 1",
                            &[],
                        )
                        .await
                        .ok()?
                        .iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect();
                    Some(sessions)
                }
            },
            |sessions| complete(sessions),
        )
        .await
        .unwrap_or_default();
        assert!(
            complete(&sessions),
            "expected {EXPECTED_SESSIONS:?}, all encrypted; (application_name, ssl): {sessions:?}"
        );
    }
}

/// The application names of the sessions every component keeps open on
/// the `orderly` database ("": the pools' connections).
const EXPECTED_SESSIONS: [&str; 4] = [
    "",
    "orderly-query:wake-ups",
    "orderly-relay:orders",
    "orderly-relay:payments",
];

/// How the application names of the consumers' sessions listening for
/// their replicas' share changes end (`<topic prefix>orderly-<consumer>:shares`).
const SHARES_LISTENERS: [&str; 3] = [
    "orderly-order-saga:shares",
    "orderly-payment:shares",
    "orderly-query:shares",
];

/// A Redis of the test's own listening only for TLS, with an ACL user.
pub struct TlsRedis {
    pub server: RedisInstance,
}

impl TlsRedis {
    pub async fn start(pki: &Pki) -> Self {
        Self {
            server: RedisInstance::start_tls_only(&pki.cert, &pki.key, REDIS_USER, REDIS_PASSWORD)
                .await,
        }
    }

    /// `rediss://` settings with the ACL user, trusting `pki`'s CA.
    pub fn config(&self, pki: &Pki) -> RedisConfig {
        RedisConfig {
            redis_url: format!(
                "rediss://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
                self.server.port()
            ),
            redis_ca_file: Some(pki.ca_file.clone()),
            redis_pool_size: 4,
            ..RedisConfig::default()
        }
    }
}

/// A broker of the test's own reachable only through stunnel (TLS); it
/// advertises stunnel's address, so clients reconnect through it too.
pub struct TlsBroker {
    pub broker: Option<BrokerProcess>,
    pub stunnel: Stunnel,
}

impl TlsBroker {
    pub async fn start(pki: &Pki) -> Self {
        let front: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let broker = BrokerProcess::start_advertising(front).await;
        let stunnel = Stunnel::start(front, broker.addr, &pki.cert, &pki.key).await;
        Self {
            broker: Some(broker),
            stunnel,
        }
    }

    /// Kafka settings over TLS trusting `pki`'s CA, read as a component
    /// reads them.
    pub fn config(&self, pki: &Pki) -> KafkaConfig {
        let vars = [
            ("ORDERLY_KAFKA_SECURITY_PROTOCOL", "ssl"),
            ("ORDERLY_KAFKA_CA_FILE", pki.ca_file.as_str()),
        ];
        KafkaConfig {
            kafka_brokers: self.stunnel.addr.to_string(),
            kafka_topic_prefix: format!("t{}.", unique_id()),
            kafka_topic_partitions: 3,
            security: orderly::kafka::KafkaSecurity::from_vars(
                vars.map(|(n, v)| (n.to_owned(), v.to_owned())),
            )
            .expect("valid Kafka security settings"),
            ..KafkaConfig::default()
        }
    }

    /// The platform's Kafka, topics created over TLS, and the TLS front
    /// to keep while it is used.
    pub async fn test_kafka(mut self, pki: &Pki) -> (TestKafka, Stunnel) {
        let config = self.config(pki);
        orderly::kafka::ensure_topics(&config)
            .await
            .expect("create topics over TLS");
        let kafka = TestKafka::of(config, self.broker.take());
        (kafka, self.stunnel)
    }
}

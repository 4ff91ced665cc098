//! The test's CA and its TLS-only servers.

use std::{net::SocketAddr, path::PathBuf};

use orderly::{config::PostgresConfig, kafka::KafkaConfig, redis::RedisConfig};
use orderly_integration_tests::{
    BrokerProcess, TestKafka, free_port,
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

    /// Every client session the server has is encrypted.
    pub async fn assert_only_tls_sessions(&self) {
        let config = PostgresConfig {
            database_url: format!(
                "postgres://postgres@localhost:{}/postgres?sslmode=require",
                self.server.port()
            ),
            ..PostgresConfig::default()
        };
        let pool = orderly::postgres::pool(&config).expect("pool");
        let client = pool.get().await.expect("connect with sslmode=require");
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.backend_type = 'client backend'",
                &[],
            )
            .await
            .expect("sessions");
        let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
        assert!(
            encrypted > 1 && plain == 0,
            "{encrypted} TLS, {plain} plain sessions"
        );
    }
}

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
        let kafka = TestKafka {
            config,
            broker: self.broker.take(),
        };
        (kafka, self.stunnel)
    }
}

//! `orderly config`: the effective settings of every component as
//! `ORDERLY_*=value` lines (an env file), secrets hidden. Values come from
//! the components' own config types, so defaults and validation are exactly
//! what they would run with.

use std::{collections::BTreeSet, fmt::Display};

use orderly::config::{ENV_PREFIX, GrpcLimits, PostgresConfig, redact_secrets};

/// Collects `NAME=value` lines under section comments.
#[derive(Default)]
struct EnvFile {
    lines: Vec<String>,
    names: BTreeSet<String>,
}

impl EnvFile {
    fn section(&mut self, title: &str) {
        if !self.lines.is_empty() {
            self.lines.push(String::new());
        }
        self.lines.push(format!("# {title}"));
    }

    fn set(&mut self, name: &str, value: impl Display) {
        let value = redact_secrets(&value.to_string());
        self.lines.push(format!("{ENV_PREFIX}{name}={value}"));
        self.names.insert(format!("{ENV_PREFIX}{name}"));
    }
}

/// Prints the effective configuration; a malformed variable fails with its
/// name, as the component would.
pub fn print() -> anyhow::Result<()> {
    let order = orderly_order::Config::from_env()?;
    let saga = orderly_order::SagaConfig::from_env()?;
    let inventory = orderly_inventory::Config::from_env()?;
    let payment = orderly_payment::Config::from_env()?;
    let query = orderly_query::Config::from_env()?;
    let relay = orderly_relay::Config::from_env()?;
    let kafka = orderly::kafka::KafkaConfig::from_env()?;
    let consumers = orderly::consumer::RuntimeConfig::from_env()?;
    let grace: u64 = orderly::config::var("SHUTDOWN_GRACE_MS", 10_000)?;

    let mut env = EnvFile::default();
    env.section("postgres (order, payment, query, relay, migrate)");
    postgres(&mut env, &order.postgres);
    env.section("redis (inventory; the order service reads it for verify)");
    let redis = &inventory.redis;
    env.set("REDIS_URL", &redis.redis_url);
    env.set("REDIS_POOL_SIZE", redis.redis_pool_size);
    env.set("REDIS_RESPONSE_TIMEOUT_MS", redis.redis_response_timeout_ms);
    env.set("REDIS_KEY_PREFIX", &redis.redis_key_prefix);
    env.set(
        "REDIS_CA_FILE",
        redis.redis_ca_file.as_deref().unwrap_or_default(),
    );
    let (cert, key) = redis.redis_client_cert.clone().unwrap_or_default();
    env.set("REDIS_CERT_FILE", cert);
    env.set("REDIS_KEY_FILE", key);
    env.section("kafka");
    env.set("KAFKA_BROKERS", &kafka.kafka_brokers);
    env.set("KAFKA_TOPIC_PREFIX", &kafka.kafka_topic_prefix);
    env.set("KAFKA_TOPIC_PARTITIONS", kafka.kafka_topic_partitions);
    env.set("KAFKA_REPLICATION_FACTOR", kafka.kafka_replication_factor);
    env.set("KAFKA_FETCH_WAIT_MS", kafka.kafka_fetch_wait_ms);
    // The password (and secret-looking properties) as ***.
    for (name, value) in kafka.security.describe() {
        env.set(&name, value);
    }
    // The _FILE variants are read into the values above.
    for name in ["KAFKA_SASL_USERNAME_FILE", "KAFKA_SASL_PASSWORD_FILE"] {
        env.set(
            name,
            std::env::var(format!("{ENV_PREFIX}{name}")).unwrap_or_default(),
        );
    }
    env.section("order service and its saga");
    env.set("ORDER_GRPC_ADDR", order.grpc_addr);
    env.set("ORDER_METRICS_ADDR", order.metrics_addr);
    env.set("SAGA_ENABLED", order.saga.is_some());
    env.set("SAGA_INVENTORY_URL", &saga.inventory_url);
    env.set("SAGA_PAYMENT_URL", &saga.payment_url);
    env.set("SAGA_CALL_TIMEOUT_MS", saga.call_timeout.as_millis());
    env.set(
        "SAGA_PAYMENT_DEADLINE_MS",
        saga.payment_deadline.as_millis(),
    );
    env.set(
        "SAGA_PENDING_DEADLINE_MS",
        saga.pending_deadline.as_millis(),
    );
    env.set("SAGA_SWEEP_INTERVAL_MS", saga.sweep_interval.as_millis());
    env.section("consumer runtime (order saga, payment, query)");
    env.set("CONSUMER_BACKOFF_MAX_MS", saga.backoff_max.as_millis());
    for (name, value) in consumers.describe() {
        env.set(name, value);
    }
    env.section("inventory service");
    env.set("INVENTORY_GRPC_ADDR", inventory.grpc_addr);
    env.set("INVENTORY_METRICS_ADDR", inventory.metrics_addr);
    env.set(
        "INVENTORY_RESERVATION_RETENTION_SECS",
        inventory.reservation_retention_secs,
    );
    env.section("payment service");
    env.set("PAYMENT_GRPC_ADDR", payment.grpc_addr);
    env.set("PAYMENT_METRICS_ADDR", payment.metrics_addr);
    env.set("PAYMENT_GATEWAY_TIMEOUT_MS", payment.gateway_timeout_ms);
    env.section("query service");
    env.set("QUERY_GRPC_ADDR", query.grpc_addr);
    env.set("QUERY_METRICS_ADDR", query.metrics_addr);
    // A secret: only whether it was set is shown.
    let secret = if query.page_token_secret == orderly_query::DEV_PAGE_TOKEN_SECRET {
        "<development default: set it in production>"
    } else {
        "***"
    };
    env.set("QUERY_PAGE_TOKEN_SECRET", secret);
    env.section("outbox relay");
    env.set("RELAY_GRPC_ADDR", relay.grpc_addr);
    env.set("RELAY_METRICS_ADDR", relay.metrics_addr);
    env.set("RELAY_SOURCES", relay.sources.join(","));
    env.set("RELAY_BATCH_SIZE", relay.batch_size);
    env.set("RELAY_MAX_IN_FLIGHT", relay.max_in_flight);
    env.set("RELAY_MARK_INTERVAL_MS", relay.mark_interval_ms);
    env.set("RELAY_POLL_INTERVAL_MS", relay.poll_interval_ms);
    env.set("RELAY_RETENTION_HOURS", relay.retention.as_secs() / 3600);
    env.set("RELAY_PRUNE_INTERVAL_MS", relay.prune_interval_ms);
    env.set("RELAY_PRUNE_BATCH", relay.prune_batch);
    env.set("RELAY_MESSAGE_TIMEOUT_MS", relay.message_timeout_ms);
    env.set("RELAY_LEASE_TTL_MS", relay.lease_ttl_ms);
    env.set("RELAY_BACKOFF_MAX_MS", relay.backoff_max_ms);
    env.set("RELAY_MAX_ATTEMPTS", relay.max_attempts);
    env.section("every gRPC server");
    grpc(&mut env, &order.grpc);
    security(&mut env, &order.grpc);
    env.section("process");
    env.set("SHUTDOWN_GRACE_MS", grace);
    env.set(
        "LOG",
        std::env::var("ORDERLY_LOG").unwrap_or_else(|_| "info".to_owned()),
    );
    env.set(
        "LOG_FORMAT",
        std::env::var("ORDERLY_LOG_FORMAT").unwrap_or_else(|_| "text".to_owned()),
    );
    for line in &env.lines {
        println!("{line}");
    }
    // Traces are configured by OpenTelemetry's own variables; show those
    // set, since their absence means no export at all.
    let mut otel: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| name.starts_with("OTEL_"))
        .collect();
    otel.sort();
    println!(
        "\n# tracing: the OTEL_* variables set (spans are exported only to \
         OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
    );
    for (name, value) in otel {
        // Header lists carry credentials (`authorization=...`).
        let value = if name.contains("HEADERS") {
            "***".to_owned()
        } else {
            redact_secrets(&value)
        };
        println!("{name}={value}");
    }
    // Names only: a variable read elsewhere (or misspelt) may hold a secret.
    let others: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with(ENV_PREFIX) && !env.names.contains(name))
        .collect();
    if !others.is_empty() {
        println!("\n# also set in the environment, not listed above (misspelt?)");
        for name in others {
            println!("# {name}");
        }
    }
    Ok(())
}

fn postgres(env: &mut EnvFile, postgres: &PostgresConfig) {
    env.set("DATABASE_URL", &postgres.database_url);
    env.set("DATABASE_POOL_SIZE", postgres.database_pool_size);
    env.set(
        "DATABASE_STATEMENT_TIMEOUT_MS",
        postgres.statement_timeout_ms,
    );
    env.set(
        "DATABASE_CA_FILE",
        postgres.database_ca_file.as_deref().unwrap_or_default(),
    );
}

fn grpc(env: &mut EnvFile, limits: &GrpcLimits) {
    env.set("GRPC_REQUEST_TIMEOUT_MS", limits.grpc_request_timeout_ms);
    env.set("GRPC_CONCURRENCY_LIMIT", limits.grpc_concurrency_limit);
    env.set("GRPC_MAX_MESSAGE_BYTES", limits.grpc_max_message_bytes);
    env.set(
        "GRPC_MAX_STREAMS_PER_CONNECTION",
        limits.grpc_max_streams_per_connection,
    );
    env.set(
        "GRPC_KEEPALIVE_INTERVAL_MS",
        limits.grpc_keepalive_interval_ms,
    );
    env.set(
        "GRPC_KEEPALIVE_TIMEOUT_MS",
        limits.grpc_keepalive_timeout_ms,
    );
}

/// Tokens are never printed, only whether they are set; files by path.
fn security(env: &mut EnvFile, limits: &GrpcLimits) {
    let (client, admin) = limits.auth.counts();
    env.section(&format!(
        "security: authentication {} ({client} client, {admin} admin tokens), TLS server {}, TLS clients {}",
        if limits.auth.enabled() { "on" } else { "off" },
        if limits.tls.identity.is_some() { "on" } else { "off" },
        if limits.tls.ca.is_some() { "on" } else { "off" },
    ));
    for name in [
        "AUTH_CLIENT_TOKEN",
        "AUTH_ADMIN_TOKEN",
        // The command line's token.
        "TOKEN",
    ] {
        let set = std::env::var(format!("{ENV_PREFIX}{name}")).is_ok_and(|v| !v.trim().is_empty());
        env.set(name, if set { "***" } else { "" });
    }
    for name in [
        "AUTH_CLIENT_TOKEN_FILE",
        "AUTH_ADMIN_TOKEN_FILE",
        "TLS_CERT_FILE",
        "TLS_KEY_FILE",
        "TLS_CA_FILE",
        "TLS_SERVER_NAME",
    ] {
        env.set(
            name,
            std::env::var(format!("{ENV_PREFIX}{name}")).unwrap_or_default(),
        );
    }
}

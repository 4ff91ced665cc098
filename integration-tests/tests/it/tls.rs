//! orderly against stores that demand TLS and credentials, as managed
//! Postgres, Redis and Kafka do: servers of the test's own with a CA made
//! for the test. Postgres in `tls/postgres.rs`, Redis in `tls/redis.rs`,
//! Kafka (the broker behind stunnel) in `tls/kafka.rs`, and the whole saga
//! with all three over TLS here (in-process) and in `tls/processes.rs` (the
//! `orderly` binary, configured by its environment).

mod kafka;
mod postgres;
mod processes;
mod redis;
mod support;

use orderly::proto::v1::{OrderStatus, PaymentStatus};
use orderly_integration_tests::{
    TestDatabase, TestPlatform, TestRedis,
    orders::{create, payment, stock, until_status},
    test_resource_name,
};

use support::{Pki, TlsBroker, TlsPostgres, TlsRedis};

#[tokio::test(flavor = "multi_thread")]
async fn the_saga_runs_with_all_three_stores_over_tls() {
    let pki = Pki::new();
    // Postgres takes plain connections too, so that every component's
    // session is seen to choose TLS (the binary test in tls/processes.rs
    // runs against one that refuses them).
    let (postgres, redis, broker) = tokio::join!(
        TlsPostgres::start_accepting_plain(&pki),
        TlsRedis::start(&pki),
        TlsBroker::start(&pki)
    );
    let config = postgres.config(&pki, "orderly", "verify-full");
    orderly::migrate::run(&config)
        .await
        .expect("migrate over TLS");
    let redis_config = orderly::redis::RedisConfig {
        redis_key_prefix: test_resource_name(),
        ..redis.config(&pki)
    };
    let (kafka, _tls_front) = broker.test_kafka(&pki).await;
    let platform = TestPlatform::builder()
        .all()
        .database(TestDatabase::on_own_server(config, "orderly"))
        .redis(TestRedis::of(redis_config))
        .kafka(kafka)
        .start()
        .await;
    stock(&platform, &[("SKU-TLS", 5)]).await;
    let order = create(&platform, "c-tls", &[("SKU-TLS", 2)], "pm_ok").await;
    let confirmed = until_status(&platform, &order.order_id, OrderStatus::Confirmed).await;
    assert_eq!(confirmed.version, 3, "PENDING -> RESERVED -> CONFIRMED");
    let paid = payment(&platform, &order.order_id)
        .await
        .expect("a payment");
    assert_eq!(paid.status(), PaymentStatus::Succeeded);
    // Redis and the broker refuse plain connections; Postgres shows each
    // session's encryption.
    postgres.assert_every_session_encrypted().await;
}

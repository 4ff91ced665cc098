//! The real `orderly` binary, one process per component, configured only
//! through its environment as a deployment is, against the three TLS-only
//! stores: migrate, the saga, and `orderly config` hiding the credentials.

use std::time::Duration;

use orderly::proto::v1::{
    CreateOrderRequest, GetOrderRequest, OrderItem, OrderStatus, SetStockRequest,
    inventory_service_client::InventoryServiceClient, order_service_client::OrderServiceClient,
};
use orderly_integration_tests::{Component, eventually, last_seen, process::ProcessPlatform};

use super::support::{Pki, REDIS_PASSWORD, REDIS_USER, TlsBroker, TlsPostgres, TlsRedis};

/// Passwords the stores never ask for (Postgres trusts, Kafka has no
/// SASL here), given only to be hidden by `orderly config`.
const PG_PASSWORD: &str = "pg-url-s3cret";
const KAFKA_PASSWORD: &str = "kafka-sasl-s3cret";

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_confirms_an_order_with_every_store_over_tls_from_its_environment() {
    let pki = Pki::new();
    let (postgres, redis, front) = tokio::join!(
        TlsPostgres::start(&pki),
        TlsRedis::start(&pki),
        TlsBroker::start(&pki)
    );
    let ca = pki.ca_file.as_str();
    // These win over the platform's own (plain) servers.
    let platform = ProcessPlatform::builder()
        .env(
            "DATABASE_URL",
            format!(
                "postgres://postgres@localhost:{}/orderly?sslmode=verify-full&password={PG_PASSWORD}",
                postgres.server.port()
            ),
        )
        .env("DATABASE_CA_FILE", ca)
        .env(
            "REDIS_URL",
            format!(
                "rediss://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
                redis.server.port()
            ),
        )
        .env("REDIS_CA_FILE", ca)
        .env("KAFKA_BROKERS", front.stunnel.addr)
        .env("KAFKA_SECURITY_PROTOCOL", "ssl")
        .env("KAFKA_CA_FILE", ca)
        .env("KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE", "true")
        // Unused over `ssl` (and by a server that trusts), but shown by
        // `orderly config`: must be hidden there.
        .env("KAFKA_SASL_PASSWORD", KAFKA_PASSWORD)
        .start()
        .await;
    let mut inventory = InventoryServiceClient::new(platform.channel(Component::Inventory));
    inventory
        .set_stock(SetStockRequest {
            sku: "SKU-TLS".into(),
            quantity: 3,
        })
        .await
        .expect("SetStock over rediss://");
    let mut orders = OrderServiceClient::new(platform.channel(Component::Order));
    let order = orders
        .create_order(CreateOrderRequest {
            customer_id: "c-tls".into(),
            items: vec![OrderItem {
                sku: "SKU-TLS".into(),
                quantity: 1,
                unit_price_minor: 100,
            }],
            currency: "EUR".into(),
            payment_method: "pm_ok".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("CreateOrder")
        .into_inner()
        .order
        .expect("an order");
    eventually("the order is CONFIRMED", Duration::from_secs(90), || {
        let mut orders = orders.clone();
        let request = GetOrderRequest {
            order_id: order.order_id.clone(),
        };
        async move {
            let order = orders.get_order(request).await.ok()?.into_inner().order?;
            (order.status() == OrderStatus::Confirmed).then_some(())
        }
    })
    .await;
    // The server refuses plain connections: a session that tried one is
    // missing.
    postgres.assert_every_session_encrypted().await;

    // `orderly verify`: the order service reconciles Postgres and Redis,
    // both over TLS (the view may still be settling: try again).
    let passed = |verify: &(bool, String, String)| verify.0 && verify.1.contains("CONFIRMED");
    let verify = last_seen(
        Duration::from_secs(60),
        || async {
            let verify = platform
                .orderly(&["verify", "--pending-bound-secs", "0"])
                .await;
            Some((
                verify.status.success(),
                String::from_utf8_lossy(&verify.stdout).into_owned(),
                String::from_utf8_lossy(&verify.stderr).into_owned(),
            ))
        },
        passed,
    )
    .await
    .unwrap_or_default();
    assert!(
        passed(&verify),
        "orderly verify: {}\n{}",
        verify.1,
        verify.2
    );

    let config = platform.orderly(&["config"]).await;
    let stdout = String::from_utf8_lossy(&config.stdout);
    assert!(config.status.success(), "{stdout}");
    for password in [REDIS_PASSWORD, PG_PASSWORD, KAFKA_PASSWORD] {
        assert!(!stdout.contains(password), "{password}: {stdout}");
    }
    assert!(stdout.contains("&password=***"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l == "ORDERLY_KAFKA_SASL_PASSWORD=***"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("ORDERLY_KAFKA_CA_FILE={ca}")),
        "{stdout}"
    );
}

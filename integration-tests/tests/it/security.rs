//! Bearer-token authentication and TLS on every component: who may call
//! what, tokens from files and in rotation, probes left open, TLS with the
//! operator's CA, and a whole order through the saga with both on.

use std::time::Duration;

use orderly::{
    auth::AuthConfig,
    client::{ChannelBuilder, GrpcChannel},
    proto::v1::{
        GetOrderRequest, GetStockRequest, OrderStatus, SetStockRequest, VerifyRequest,
        inventory_service_client::InventoryServiceClient, order_service_client::OrderServiceClient,
        verify_service_client::VerifyServiceClient,
    },
    tls::TlsConfig,
};
use orderly_integration_tests::{
    Component, TestPlatform, eventually, order_request, orders::SAGA_WAIT, test_tls,
};
use tonic::{Code, transport::Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

mod every_method;

const CLIENT: &str = "client-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

async fn inventory_with(auth: AuthConfig, tls: TlsConfig) -> TestPlatform {
    TestPlatform::builder()
        .inventory()
        .security(auth, tls)
        .start()
        .await
}

async fn inventory(
    platform: &TestPlatform,
    token: Option<&str>,
) -> InventoryServiceClient<GrpcChannel> {
    InventoryServiceClient::new(
        platform
            .channel_with_token(Component::Inventory, token)
            .await,
    )
}

async fn get_stock(platform: &TestPlatform, token: Option<&str>) -> Result<(), Code> {
    inventory(platform, token)
        .await
        .get_stock(GetStockRequest {
            skus: vec!["SKU-1".into()],
        })
        .await
        .map(drop)
        .map_err(|status| status.code())
}

async fn set_stock(platform: &TestPlatform, token: Option<&str>) -> Result<(), Code> {
    inventory(platform, token)
        .await
        .set_stock(SetStockRequest {
            sku: "SKU-1".into(),
            quantity: 5,
        })
        .await
        .map(drop)
        .map_err(|status| status.code())
}

async fn health(channel: GrpcChannel) -> Result<ServingStatus, Code> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status())
        .map_err(|status| status.code())
}

async fn verify(platform: &TestPlatform, token: &str) -> Result<(), Code> {
    let channel = platform
        .channel_with_token(Component::Order, Some(token))
        .await;
    VerifyServiceClient::new(channel)
        .verify(VerifyRequest::default())
        .await
        .map(drop)
        .map_err(|status| status.code())
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_unauthenticated() {
    let platform = inventory_with(AuthConfig::new(&[CLIENT], &[ADMIN]), TlsConfig::default()).await;
    assert_eq!(get_stock(&platform, None).await, Err(Code::Unauthenticated));
    assert_eq!(
        get_stock(&platform, Some("not-a-token")).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(set_stock(&platform, None).await, Err(Code::Unauthenticated));
    assert_eq!(get_stock(&platform, Some(CLIENT)).await, Ok(()));
}

#[tokio::test]
async fn a_client_token_on_an_admin_rpc_is_permission_denied() {
    let platform = inventory_with(AuthConfig::new(&[CLIENT], &[ADMIN]), TlsConfig::default()).await;
    assert_eq!(
        set_stock(&platform, Some(CLIENT)).await,
        Err(Code::PermissionDenied)
    );
    // The admin token may call admin and ordinary RPCs alike.
    assert_eq!(set_stock(&platform, Some(ADMIN)).await, Ok(()));
    assert_eq!(get_stock(&platform, Some(ADMIN)).await, Ok(()));
}

#[tokio::test]
async fn old_and_new_tokens_both_work_during_a_rotation() {
    let platform = inventory_with(
        AuthConfig::new(&["old-client,new-client"], &["old-admin\nnew-admin"]),
        TlsConfig::default(),
    )
    .await;
    for token in ["old-client", "new-client", "old-admin", "new-admin"] {
        assert_eq!(get_stock(&platform, Some(token)).await, Ok(()), "{token}");
    }
    assert_eq!(set_stock(&platform, Some("new-admin")).await, Ok(()));
    assert_eq!(
        set_stock(&platform, Some("new-client")).await,
        Err(Code::PermissionDenied)
    );
}

#[tokio::test]
async fn tokens_are_read_from_mounted_files() {
    let dir = std::env::temp_dir().join(format!(
        "orderly-secrets-{}",
        orderly_integration_tests::unique_id()
    ));
    std::fs::create_dir_all(&dir).expect("secret dir");
    let (client_file, admin_file) = (dir.join("client-token"), dir.join("admin-token"));
    // As Kubernetes mounts a Secret key: the token and a trailing newline.
    std::fs::write(&client_file, "file-client\n").expect("write");
    std::fs::write(&admin_file, "file-admin\n").expect("write");
    let vars = [
        ("ORDERLY_AUTH_CLIENT_TOKEN_FILE", client_file),
        ("ORDERLY_AUTH_ADMIN_TOKEN_FILE", admin_file),
    ];
    let auth = AuthConfig::from_lookup(|name| {
        vars.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, path)| path.display().to_string())
    })
    .expect("tokens from files");
    std::fs::remove_dir_all(&dir).ok();

    let platform = inventory_with(auth, TlsConfig::default()).await;
    assert_eq!(get_stock(&platform, Some("file-client")).await, Ok(()));
    assert_eq!(set_stock(&platform, Some("file-admin")).await, Ok(()));
    assert_eq!(get_stock(&platform, None).await, Err(Code::Unauthenticated));
}

#[tokio::test]
async fn health_stays_open_without_a_token() {
    let platform = inventory_with(AuthConfig::new(&[CLIENT], &[ADMIN]), test_tls()).await;
    let channel = platform
        .channel_with_token(Component::Inventory, None)
        .await;
    assert_eq!(health(channel).await, Ok(ServingStatus::Serving));
}

#[tokio::test]
async fn tls_clients_trusting_the_ca_are_served() {
    let platform = inventory_with(AuthConfig::default(), test_tls()).await;
    assert_eq!(get_stock(&platform, None).await, Ok(()));
    assert_eq!(set_stock(&platform, None).await, Ok(()));
}

#[tokio::test]
async fn a_plaintext_client_cannot_talk_to_a_tls_server() {
    let platform = inventory_with(AuthConfig::default(), test_tls()).await;
    let addr = platform.inventory_addr();
    let plaintext = async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a URI")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .map_err(|_| Code::Unavailable)?;
        InventoryServiceClient::new(channel)
            .get_stock(GetStockRequest {
                skus: vec!["SKU-1".into()],
            })
            .await
            .map(drop)
            .map_err(|status| status.code())
    };
    assert!(plaintext.await.is_err(), "a plaintext call succeeded");

    // Nor does a TLS client that trusts another CA.
    let stranger = TlsConfig {
        identity: None,
        ..test_tls()
    };
    let connected = ChannelBuilder::new(&stranger, None)
        .expect("builder")
        .connect(&addr.to_string())
        .await;
    assert!(
        connected.is_err(),
        "a certificate from another CA was trusted"
    );
}

#[tokio::test]
async fn an_order_completes_with_auth_and_tls_on() {
    let platform = TestPlatform::builder()
        .inventory()
        .payment()
        .saga()
        .relay()
        .security(AuthConfig::new(&[CLIENT], &[ADMIN]), test_tls())
        .start()
        .await;
    assert_eq!(set_stock(&platform, Some(ADMIN)).await, Ok(()));
    let mut orders = OrderServiceClient::new(
        platform
            .channel_with_token(Component::Order, Some(CLIENT))
            .await,
    );
    let order = orders
        .create_order(order_request("secure-customer"))
        .await
        .expect("CreateOrder with a client token")
        .into_inner()
        .order
        .expect("an order");
    // The saga reserves, and commits after payment, calling the inventory
    // over TLS with the admin token.
    eventually("the order to be confirmed", SAGA_WAIT, || {
        let mut orders = orders.clone();
        let order_id = order.order_id.clone();
        async move {
            let order = orders
                .get_order(GetOrderRequest { order_id })
                .await
                .ok()?
                .into_inner()
                .order?;
            (order.status() == OrderStatus::Confirmed).then_some(())
        }
    })
    .await;

    // Reconciling the stores is an admin RPC.
    assert_eq!(verify(&platform, CLIENT).await, Err(Code::PermissionDenied));
    assert_eq!(verify(&platform, ADMIN).await, Ok(()));
}

//! What operators rely on: health, reflection (both protocol versions, since
//! grpcurl 1.8 only speaks v1alpha) and a clean stop.

use std::time::Duration;

use orderly::proto::v1::{CreateOrderRequest, GetStockRequest};
use orderly_integration_tests::{Component, TestPlatform, channel, order_request, scrape_metrics};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

async fn list_services_v1alpha(channel: Channel) -> Vec<String> {
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("stream")
        .expect("one response");
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected reflection answer");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn every_server_reports_health_and_reflects_its_api() {
    let platform = TestPlatform::builder().order().inventory().start().await;
    for (addr, service) in [
        (platform.order_addr(), "orderly.v1.OrderService"),
        (platform.inventory_addr(), "orderly.v1.InventoryService"),
    ] {
        let channel = channel(addr).await;
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(health.status(), ServingStatus::Serving, "{service}");

        let names = list_services_v1alpha(channel.clone()).await;
        for expected in [service, "grpc.health.v1.Health"] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }

        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "google.rpc.BadRequest".into(),
                ),
            ),
        };
        let mut responses = v1::server_reflection_client::ServerReflectionClient::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("v1 reflection")
            .into_inner();
        let response = responses
            .message()
            .await
            .expect("stream")
            .expect("one response");
        assert!(
            matches!(
                response.message_response,
                Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
            ),
            "error detail types are reflected so clients can decode them: {response:?}"
        );
    }
}

#[tokio::test]
async fn a_cancelled_server_stops_and_frees_its_port() {
    let mut platform = TestPlatform::builder().order().start().await;
    let addr = platform.order_addr();
    let mut health = HealthClient::new(channel(addr).await);
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("serving before the stop");

    tokio::time::timeout(Duration::from_secs(10), platform.stop(Component::Order))
        .await
        .expect("the server stops within the grace period");
    std::net::TcpListener::bind(addr).expect("the port is free again");
}

#[tokio::test]
async fn requests_are_counted_and_timed_per_method_and_code() {
    let platform = TestPlatform::builder().order().inventory().start().await;
    let mut orders = platform.order_client().await;
    let valid = order_request("cust-metrics");
    orders.create_order(valid.clone()).await.expect("create");
    orders.create_order(valid.clone()).await.expect("create");
    let invalid = CreateOrderRequest {
        currency: "nope".into(),
        ..valid
    };
    orders.create_order(invalid).await.expect_err("invalid");
    platform
        .inventory_client()
        .await
        .get_stock(GetStockRequest { skus: vec![] })
        .await
        .expect_err("no SKUs");

    let order_text = scrape_metrics(platform.order_metrics_addr()).await;
    let create = "method=\"/orderly.v1.OrderService/CreateOrder\"";
    for line in [
        format!("orderly_grpc_requests_total{{{create},code=\"OK\"}} 2"),
        format!("orderly_grpc_requests_total{{{create},code=\"INVALID_ARGUMENT\"}} 1"),
        format!("orderly_grpc_request_duration_seconds_count{{{create}}} 3"),
    ] {
        assert!(
            order_text.contains(&line),
            "missing {line} in\n{order_text}"
        );
    }
    let inventory_text = scrape_metrics(platform.inventory_metrics_addr()).await;
    let line = "orderly_grpc_requests_total{method=\"/orderly.v1.InventoryService/GetStock\",code=\"INVALID_ARGUMENT\"} 1";
    assert!(
        inventory_text.contains(line),
        "missing {line} in\n{inventory_text}"
    );
}

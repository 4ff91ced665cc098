//! The saga's remote commands: Inventory Reserve/Commit/Release and Payment
//! Refund over gRPC, each with a deadline and a client span in the event's
//! trace, whose context the callee continues. Every command is idempotent
//! per order, so retrying one is safe.

use std::{future::Future, time::Duration};

use orderly::{
    client::{ChannelBuilder, GrpcChannel},
    proto::v1::{
        self as pb, inventory_service_client::InventoryServiceClient,
        payment_service_client::PaymentServiceClient,
    },
    trace::TraceContext,
};
use tonic::{Request, Response, Status};
use tracing::{Instrument, field::Empty};

use crate::domain::Order;

/// Clients of the services the saga commands.
#[derive(Debug, Clone)]
pub struct Remotes {
    inventory: InventoryServiceClient<GrpcChannel>,
    payment: PaymentServiceClient<GrpcChannel>,
    timeout: Duration,
}

/// How a reservation came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every item is held.
    Reserved,
    /// Nothing is held, for this reason.
    Rejected(String),
}

impl Remotes {
    /// Clients, built by `channels` (TLS, token), that connect lazily (a
    /// service that is down fails calls with UNAVAILABLE, retried by the
    /// consumer runtime).
    pub fn new(
        channels: &ChannelBuilder,
        inventory_url: &str,
        payment_url: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let channels = channels.clone().connect_timeout(timeout);
        let channel = |url: &str| channels.connect_lazy(url).map_err(|e| e.to_string());
        Ok(Self {
            inventory: InventoryServiceClient::new(channel(inventory_url)?),
            payment: PaymentServiceClient::new(channel(payment_url)?),
            timeout,
        })
    }

    /// Sends one command in a client span, a child of `trace`, whose
    /// context travels in the request's metadata.
    async fn call<M, T, F>(
        &self,
        method: &'static str,
        order_id: &str,
        trace: &TraceContext,
        message: M,
        send: impl FnOnce(Request<M>) -> F,
    ) -> Result<T, Status>
    where
        F: Future<Output = Result<Response<T>, Status>>,
    {
        let span = tracing::info_span!(
            "grpc.client",
            orderly.component = "order",
            otel.name = method,
            otel.kind = "client",
            rpc.system = "grpc",
            order_id,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        );
        trace.set_parent_of(&span);
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        TraceContext::of(&span).inject(request.metadata_mut());
        let result = self.bounded(send(request)).instrument(span.clone()).await;
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        span.record("rpc.grpc.status_code", code as i32);
        span.record(
            "otel.status_code",
            if result.is_ok() { "OK" } else { "ERROR" },
        );
        result.map(Response::into_inner)
    }

    /// Reserves every item of `order` (idempotent per order).
    pub async fn reserve(
        &self,
        order: &Order,
        trace: &TraceContext,
    ) -> Result<Reservation, Status> {
        let items = order
            .items
            .iter()
            .map(|item| pb::ReservationItem {
                sku: item.sku.clone(),
                quantity: item.quantity,
            })
            .collect();
        let order_id = order.id.to_string();
        let mut inventory = self.inventory.clone();
        let response = self
            .call(
                "orderly.v1.InventoryService/Reserve",
                &order_id,
                trace,
                pb::ReserveRequest {
                    order_id: order_id.clone(),
                    items,
                },
                move |request| async move { inventory.reserve(request).await },
            )
            .await?;
        Ok(match response.outcome() {
            pb::ReservationOutcome::Reserved => Reservation::Reserved,
            _ if response.reason.is_empty() => {
                Reservation::Rejected("stock could not be reserved".into())
            }
            _ => Reservation::Rejected(response.reason),
        })
    }

    /// Turns the order's reservation into sales (idempotent).
    pub async fn commit(&self, order_id: &str, trace: &TraceContext) -> Result<(), Status> {
        let mut inventory = self.inventory.clone();
        self.call(
            "orderly.v1.InventoryService/Commit",
            order_id,
            trace,
            pb::CommitRequest {
                order_id: order_id.to_owned(),
            },
            move |request| async move { inventory.commit(request).await },
        )
        .await?;
        Ok(())
    }

    /// Releases the order's reservation, or leaves a tombstone (idempotent).
    pub async fn release(&self, order_id: &str, trace: &TraceContext) -> Result<(), Status> {
        let mut inventory = self.inventory.clone();
        self.call(
            "orderly.v1.InventoryService/Release",
            order_id,
            trace,
            pb::ReleaseRequest {
                order_id: order_id.to_owned(),
            },
            move |request| async move { inventory.release(request).await },
        )
        .await?;
        Ok(())
    }

    /// Refunds the order's payment (idempotent).
    pub async fn refund(
        &self,
        order_id: &str,
        reason: &str,
        trace: &TraceContext,
    ) -> Result<(), Status> {
        let mut payment = self.payment.clone();
        self.call(
            "orderly.v1.PaymentService/Refund",
            order_id,
            trace,
            pb::RefundRequest {
                order_id: order_id.to_owned(),
                reason: reason.to_owned(),
            },
            move |request| async move { payment.refund(request).await },
        )
        .await?;
        Ok(())
    }

    /// Bounds a call by the timeout even when the connection itself hangs.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        tokio::time::timeout(self.timeout + Duration::from_millis(100), call)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("saga call timed out")))
    }
}

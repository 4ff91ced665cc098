//! The saga's remote commands: Inventory Reserve/Commit/Release and Payment
//! Refund over gRPC, each with a deadline and the event's trace context.
//! Every command is idempotent per order, so retrying one is safe.

use std::time::Duration;

use orderly::{
    proto::v1::{
        self as pb, inventory_service_client::InventoryServiceClient,
        payment_service_client::PaymentServiceClient,
    },
    trace::TraceContext,
};
use tonic::{Request, Status, transport::Channel};

use crate::domain::Order;

/// Clients of the services the saga commands.
#[derive(Debug, Clone)]
pub struct Remotes {
    inventory: InventoryServiceClient<Channel>,
    payment: PaymentServiceClient<Channel>,
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
    /// Clients that connect lazily (a service that is down fails calls with
    /// UNAVAILABLE, retried by the consumer runtime).
    pub fn new(inventory_url: &str, payment_url: &str, timeout: Duration) -> Result<Self, String> {
        let channel = |url: &str| {
            Channel::from_shared(url.to_owned())
                .map(|endpoint| endpoint.connect_timeout(timeout).connect_lazy())
                .map_err(|e| format!("invalid URL {url:?}: {e}"))
        };
        Ok(Self {
            inventory: InventoryServiceClient::new(channel(inventory_url)?),
            payment: PaymentServiceClient::new(channel(payment_url)?),
            timeout,
        })
    }

    fn request<T>(&self, message: T, trace: &TraceContext) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        trace.inject(request.metadata_mut());
        request
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
        let request = self.request(
            pb::ReserveRequest {
                order_id: order.id.to_string(),
                items,
            },
            trace,
        );
        let response = self
            .bounded(self.inventory.clone().reserve(request))
            .await?;
        let response = response.into_inner();
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
        let request = self.request(
            pb::CommitRequest {
                order_id: order_id.to_owned(),
            },
            trace,
        );
        self.bounded(self.inventory.clone().commit(request)).await?;
        Ok(())
    }

    /// Releases the order's reservation, or leaves a tombstone (idempotent).
    pub async fn release(&self, order_id: &str, trace: &TraceContext) -> Result<(), Status> {
        let request = self.request(
            pb::ReleaseRequest {
                order_id: order_id.to_owned(),
            },
            trace,
        );
        self.bounded(self.inventory.clone().release(request))
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
        let request = self.request(
            pb::RefundRequest {
                order_id: order_id.to_owned(),
                reason: reason.to_owned(),
            },
            trace,
        );
        self.bounded(self.payment.clone().refund(request)).await?;
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

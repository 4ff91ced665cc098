//! `orderly.v1.OrderService`: protobuf in, use case, protobuf out.

use orderly::proto::v1::{self as pb, order_service_server::OrderService};
use orderly::{status::Violations, trace::TraceContext};
use tonic::{Request, Response, Status};

use crate::{
    convert,
    domain::{CreateOrder, parse_order_id, validate_cancel_reason},
    error::Error,
    service::Orders,
};

/// The gRPC face of [`Orders`].
#[derive(Debug, Clone)]
pub struct OrderApi {
    orders: Orders,
}

impl OrderApi {
    /// Serves `orders`.
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        // The request's server span: the parent of everything the order
        // causes downstream.
        let trace = TraceContext::current();
        let request = request.into_inner();
        let command = CreateOrder {
            customer_id: request.customer_id,
            items: request
                .items
                .into_iter()
                .map(|i| (i.sku, i.quantity, i.unit_price_minor))
                .collect(),
            currency: request.currency,
            payment_method: request.payment_method,
            idempotency_key: request.idempotency_key,
        };
        let new = command.validate().map_err(Error::from)?;
        let order = self.orders.create(new, &trace).await?;
        tracing::Span::current().record("order_id", order.id.to_string());
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(convert::order(&order)),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let id = parse_order_id("order_id", &request.get_ref().order_id).map_err(Error::from)?;
        let order = self.orders.get(id).await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(convert::order(&order)),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let trace = TraceContext::current();
        let request = request.into_inner();
        let id = parse_order_id("order_id", &request.order_id);
        if let Ok(id) = &id {
            tracing::Span::current().record("order_id", id.to_string());
        }
        // Both fields are checked before either is refused, so the answer
        // names every bad field at once.
        let (id, ()) =
            Violations::both(id, validate_cancel_reason(&request.reason)).map_err(Error::from)?;
        let order = self.orders.cancel(id, &request.reason, &trace).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(convert::order(&order)),
        }))
    }
}

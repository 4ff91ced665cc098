//! `orderly.v1.PaymentService`: protobuf in, use case, protobuf out.

use orderly::proto::v1::{self as pb, payment_service_server::PaymentService};
use orderly::trace::TraceContext;
use tonic::{Request, Response, Status};

use crate::{
    convert,
    domain::{RefundCommand, parse_order_id},
    error::Error,
    service::Payments,
};

/// The gRPC face of [`Payments`].
#[derive(Debug, Clone)]
pub struct PaymentApi {
    payments: Payments,
}

impl PaymentApi {
    /// Serves `payments`.
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        let id = parse_order_id("order_id", &request.get_ref().order_id).map_err(Error::from)?;
        let payment = self.payments.get(id).await?;
        Ok(Response::new(pb::GetPaymentResponse {
            payment: Some(convert::payment(&payment)),
        }))
    }

    async fn refund(
        &self,
        request: Request<pb::RefundRequest>,
    ) -> Result<Response<pb::RefundResponse>, Status> {
        // The request's server span, itself continuing the caller's trace.
        let trace = TraceContext::current();
        let request = request.into_inner();
        tracing::Span::current().record("order_id", &request.order_id);
        let command = RefundCommand {
            order_id: request.order_id,
            reason: request.reason,
        };
        let (id, reason) = command.validate().map_err(Error::from)?;
        let payment = self.payments.refund(id, &reason, &trace).await?;
        Ok(Response::new(pb::RefundResponse {
            payment: Some(convert::payment(&payment)),
        }))
    }
}

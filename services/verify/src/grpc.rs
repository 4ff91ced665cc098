//! `orderly.v1.VerifyService`: the reconciliation as an admin RPC.

use std::time::Duration;

use orderly::proto::v1::{
    self as pb, VerifyRequest, VerifyResponse, VerifySummary,
    verify_service_server::{VerifyService, VerifyServiceServer},
};
use tonic::{Request, Response, Status};

use crate::{Report, Verifier, domain, reconcile::status_counts};

/// The fully qualified gRPC service name, as health reports it.
pub const SERVICE_NAME: &str = "orderly.v1.VerifyService";

/// The bound applied when the request leaves it unset.
pub const DEFAULT_PENDING_BOUND: Duration = Duration::from_secs(60);

/// The service implementation.
#[derive(Debug, Clone)]
pub struct VerifyApi {
    verifier: Verifier,
}

impl VerifyApi {
    /// Serves reconciliations run by `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }

    /// The tonic service, ready to add to a server's routes.
    pub fn into_service(self) -> VerifyServiceServer<Self> {
        VerifyServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl VerifyService for VerifyApi {
    async fn verify(
        &self,
        request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let bound = request
            .into_inner()
            .pending_bound_secs
            .map_or(DEFAULT_PENDING_BOUND, Duration::from_secs);
        let report = self.verifier.verify(bound).await?;
        Ok(Response::new(response(&report, bound)))
    }
}

fn response(report: &Report, bound: Duration) -> VerifyResponse {
    let summary = VerifySummary {
        orders_by_status: status_counts(report)
            .map(|(status, count)| pb::StatusCount {
                status: proto_status(status) as i32,
                count,
            })
            .collect(),
        orders: report.orders,
        skus: report.skus,
        reservations: report.reservations,
        payments: report.payments,
        views: report.views,
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        pending_bound_secs: bound.as_secs(),
        discrepancies: report.found,
    };
    VerifyResponse {
        summary: Some(summary),
        discrepancies: report
            .discrepancies
            .iter()
            .map(|d| pb::Discrepancy {
                kind: d.kind.as_str().to_owned(),
                order_id: d.order_id.map(|id| id.to_string()).unwrap_or_default(),
                sku: d.sku.clone().unwrap_or_default(),
                detail: d.detail.clone(),
            })
            .collect(),
    }
}

fn proto_status(status: domain::Status) -> pb::OrderStatus {
    match status {
        domain::Status::Pending => pb::OrderStatus::Pending,
        domain::Status::Reserved => pb::OrderStatus::Reserved,
        domain::Status::Confirmed => pb::OrderStatus::Confirmed,
        domain::Status::Rejected => pb::OrderStatus::Rejected,
        domain::Status::Cancelled => pb::OrderStatus::Cancelled,
    }
}

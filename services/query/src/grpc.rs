//! `orderly.v1.QueryService`: protobuf in, use case, protobuf out.

use std::{pin::Pin, time::Duration};

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use orderly::{
    proto::v1::{self as pb, query_service_server::QueryService},
    status::Violations,
    time::to_timestamp,
};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    domain::{ListRequest, OrderStatus, OrderView, PaymentStatus, parse_order_id},
    error::Error,
    rebuild::{RebuildState, RebuildStatus, Rebuilds},
    service::{ProjectionReport, Views},
};

/// The projection GetProjectionStatus reports.
const PROJECTION: &str = "orders";

/// The gRPC face of [`Views`].
#[derive(Debug, Clone)]
pub struct QueryApi {
    views: Views,
    rebuilds: Rebuilds,
    request_timeout: Duration,
}

impl QueryApi {
    /// Serves `views` and `rebuilds`; no wait outlasts `request_timeout`
    /// (the server's cap on every request).
    pub fn new(views: Views, rebuilds: Rebuilds, request_timeout: Duration) -> Self {
        Self {
            views,
            rebuilds,
            request_timeout,
        }
    }

    /// How long GetOrder may wait: the client's deadline (`grpc-timeout`)
    /// capped by the server's, less a margin to read the view once more and
    /// answer before the deadline passes.
    fn wait_budget(&self, metadata: &MetadataMap) -> Duration {
        let deadline = orderly::grpc::client_timeout(metadata.as_ref())
            .map_or(self.request_timeout, |client| {
                client.min(self.request_timeout)
            });
        let margin = (deadline / 5).min(Duration::from_millis(250));
        deadline.saturating_sub(margin)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchOrderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn get_order(
        &self,
        request: Request<pb::QueryGetOrderRequest>,
    ) -> Result<Response<pb::QueryGetOrderResponse>, Status> {
        let wait = self.wait_budget(request.metadata());
        let request = request.into_inner();
        let order_id = parse_order_id("order_id", &request.order_id).map_err(Error::from)?;
        let (view, current) = self.views.get(order_id, request.min_version, wait).await?;
        Ok(Response::new(pb::QueryGetOrderResponse {
            order: Some(view_to_proto(view)),
            current,
        }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let request = request.into_inner();
        let mut v = Violations::default();
        let mut time = |field: &str, at: Option<prost_types::Timestamp>| {
            at.and_then(|at| {
                let parsed = from_timestamp(&at);
                if parsed.is_none() {
                    v.add(field, "is not a valid timestamp");
                }
                parsed
            })
        };
        let created_after = time("created_after", request.created_after);
        let created_before = time("created_before", request.created_before);
        let status = match pb::OrderStatus::try_from(request.status) {
            Ok(pb::OrderStatus::Unspecified) => Ok(None),
            Ok(status) => Ok(Some(status_from_proto(status))),
            Err(_) => Err(request.status),
        };
        let listed = ListRequest {
            customer_id: request.customer_id,
            status,
            page_size: request.page_size,
            created_after,
            created_before,
        }
        .validate();
        // The timestamps' violations and the rest are reported together.
        let ((), (filter, page_size)) =
            Violations::both(v.into_result(()), listed).map_err(Error::from)?;
        let (views, next_page_token) = self
            .views
            .list(&filter, page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: views.into_iter().map(view_to_proto).collect(),
            next_page_token,
        }))
    }

    type WatchOrderStream = WatchStream;

    async fn watch_order(
        &self,
        request: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        // The client's deadline ends the stream (DEADLINE_EXCEEDED); without
        // one it lasts until the order is final or the client goes away.
        let deadline = orderly::grpc::client_timeout(request.metadata().as_ref())
            .map(|timeout| Instant::now() + timeout);
        let order_id =
            parse_order_id("order_id", &request.get_ref().order_id).map_err(Error::from)?;
        let changes = ReceiverStream::new(self.views.watch(order_id, deadline)).map(|change| {
            change
                .map(|view| pb::WatchOrderResponse {
                    order: Some(view_to_proto(view)),
                })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(changes)))
    }

    async fn get_projection_status(
        &self,
        _request: Request<pb::GetProjectionStatusRequest>,
    ) -> Result<Response<pb::GetProjectionStatusResponse>, Status> {
        let report = self.views.status().await?;
        Ok(Response::new(pb::GetProjectionStatusResponse {
            projections: vec![report_to_proto(report, self.rebuilds.status(), Utc::now())],
        }))
    }

    async fn rebuild(
        &self,
        request: Request<pb::RebuildRequest>,
    ) -> Result<Response<pb::RebuildResponse>, Status> {
        let projection = &request.get_ref().projection;
        if !projection.is_empty() && projection != PROJECTION {
            let mut v = Violations::default();
            v.add(
                "projection",
                format!("unknown projection (known: {PROJECTION})"),
            );
            return Err(Error::from(v).into());
        }
        let rebuild_id = self.rebuilds.start()?;
        Ok(Response::new(pb::RebuildResponse { rebuild_id }))
    }
}

fn from_timestamp(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}

fn status_from_proto(status: pb::OrderStatus) -> OrderStatus {
    match status {
        pb::OrderStatus::Reserved => OrderStatus::Reserved,
        pb::OrderStatus::Confirmed => OrderStatus::Confirmed,
        pb::OrderStatus::Rejected => OrderStatus::Rejected,
        pb::OrderStatus::Cancelled => OrderStatus::Cancelled,
        pb::OrderStatus::Pending | pb::OrderStatus::Unspecified => OrderStatus::Pending,
    }
}

fn status_to_proto(status: Option<OrderStatus>) -> pb::OrderStatus {
    match status {
        None => pb::OrderStatus::Unspecified,
        Some(OrderStatus::Pending) => pb::OrderStatus::Pending,
        Some(OrderStatus::Reserved) => pb::OrderStatus::Reserved,
        Some(OrderStatus::Confirmed) => pb::OrderStatus::Confirmed,
        Some(OrderStatus::Rejected) => pb::OrderStatus::Rejected,
        Some(OrderStatus::Cancelled) => pb::OrderStatus::Cancelled,
    }
}

fn payment_to_proto(status: Option<PaymentStatus>) -> pb::PaymentStatus {
    match status {
        None => pb::PaymentStatus::Unspecified,
        Some(PaymentStatus::Succeeded) => pb::PaymentStatus::Succeeded,
        Some(PaymentStatus::Failed) => pb::PaymentStatus::Failed,
        Some(PaymentStatus::Refunded) => pb::PaymentStatus::Refunded,
    }
}

fn view_to_proto(view: OrderView) -> pb::OrderView {
    pb::OrderView {
        order: Some(pb::Order {
            order_id: view.order_id.to_string(),
            customer_id: view.customer_id,
            status: status_to_proto(view.status).into(),
            items: view
                .items
                .into_iter()
                .map(|item| pb::OrderItem {
                    sku: item.sku,
                    quantity: item.quantity,
                    unit_price_minor: item.unit_price_minor,
                })
                .collect(),
            currency: view.currency,
            total_minor: view.total_minor,
            version: view.version,
            reason: view.reason,
            payment_method: view.payment_method,
            created_at: view.created_at.map(to_timestamp),
            updated_at: view.updated_at.map(to_timestamp),
        }),
        payment_status: payment_to_proto(view.payment_status).into(),
        timeline: view
            .timeline
            .into_iter()
            .map(|entry| pb::TimelineEntry {
                event_type: entry.event_type,
                version: entry.version,
                occurred_at: Some(to_timestamp(entry.occurred_at)),
            })
            .collect(),
    }
}

fn rebuild_to_proto(status: RebuildStatus) -> pb::RebuildStatus {
    let state = match status.state {
        RebuildState::Running => pb::RebuildState::Running,
        RebuildState::Swapped => pb::RebuildState::Swapped,
        RebuildState::Failed => pb::RebuildState::Failed,
    };
    pb::RebuildStatus {
        rebuild_id: status.id,
        state: state.into(),
        events_applied: status.applied,
        remaining: status.remaining,
        started_at: Some(to_timestamp(status.started_at)),
        finished_at: status.finished_at.map(to_timestamp),
        checksums_match: status.state == RebuildState::Swapped
            && status.rebuilt_checksum == status.live_checksum,
        rebuilt_checksum: status.rebuilt_checksum,
        live_checksum: status.live_checksum,
        error: status.error,
    }
}

fn report_to_proto(
    report: ProjectionReport,
    rebuild: Option<RebuildStatus>,
    now: DateTime<Utc>,
) -> pb::ProjectionStatus {
    let partitions: Vec<pb::PartitionLag> = report
        .partitions
        .into_iter()
        .map(|p| pb::PartitionLag {
            topic: p.topic,
            partition: p.partition,
            committed_offset: p.committed,
            high_watermark: p.high_watermark,
            lag: p.lag,
        })
        .collect();
    pb::ProjectionStatus {
        name: PROJECTION.to_owned(),
        total_lag: partitions.iter().map(|p| p.lag).sum(),
        partitions,
        rebuilding: rebuild
            .as_ref()
            .is_some_and(|r| r.state == RebuildState::Running),
        last_applied_at: report.last_applied_at.map(to_timestamp),
        last_event_occurred_at: report.last_occurred_at.map(to_timestamp),
        end_to_end_lag_ms: report
            .last_occurred_at
            .map_or(0, |at| (now - at).num_milliseconds().max(0)),
        rebuild: rebuild.map(rebuild_to_proto),
    }
}

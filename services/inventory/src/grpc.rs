//! `orderly.v1.InventoryService`: proto ⇄ domain and nothing else. Status
//! codes are chosen in `error.rs`.

use orderly::proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Outcome, RejectionCode, Reservation, ReservationState, StockLevel},
    store::Store,
};

/// The gRPC handlers, over a [`Store`].
#[derive(Debug, Clone)]
pub struct InventoryGrpc {
    store: Store,
}

impl InventoryGrpc {
    /// Handlers that read and write `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl pb::inventory_service_server::InventoryService for InventoryGrpc {
    async fn set_stock(
        &self,
        request: Request<pb::SetStockRequest>,
    ) -> Result<Response<pb::SetStockResponse>, Status> {
        let request = request.into_inner();
        let (sku, quantity) = domain::validate_set_stock(&request.sku, request.quantity)
            .map_err(crate::Error::from)?;
        let level = self.store.set_stock(&sku, quantity).await?;
        Ok(Response::new(pb::SetStockResponse {
            level: Some(level_to_proto(level)),
        }))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        let request = request.into_inner();
        let (sku, delta, request_id) =
            domain::validate_adjust_stock(&request.sku, request.delta, &request.request_id)
                .map_err(crate::Error::from)?;
        let level = self
            .store
            .adjust_stock(&sku, delta, request_id.as_deref())
            .await?;
        Ok(Response::new(pb::AdjustStockResponse {
            level: Some(level_to_proto(level)),
        }))
    }

    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let request = request.into_inner();
        let skus: Vec<&str> = request.skus.iter().map(String::as_str).collect();
        let skus = domain::validate_get_stock(&skus).map_err(crate::Error::from)?;
        let levels = self.store.get_stock(&skus).await?;
        Ok(Response::new(pb::GetStockResponse {
            levels: levels.into_iter().map(level_to_proto).collect(),
        }))
    }

    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let request = request.into_inner();
        // The kit's server span names the order, so the trace shows whose
        // reservation this is.
        tracing::Span::current().record("order_id", &request.order_id);
        let items: Vec<(&str, u32)> = request
            .items
            .iter()
            .map(|item| (item.sku.as_str(), item.quantity))
            .collect();
        let command =
            domain::validate_reserve(&request.order_id, &items).map_err(crate::Error::from)?;
        let (outcome, record) = self.store.reserve(&command).await?.into_reserve_answer();
        let reason = match (&outcome, &record.rejection) {
            (Outcome::Rejected, Some(rejection)) => rejection.reason.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ReserveResponse {
            outcome: match outcome {
                Outcome::Reserved => pb::ReservationOutcome::Reserved,
                Outcome::Rejected => pb::ReservationOutcome::Rejected,
            }
            .into(),
            reason,
            reservation: Some(reservation_to_proto(record)),
        }))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let order_id = domain::validate_order_id(&request.into_inner().order_id)
            .map_err(crate::Error::from)?;
        tracing::Span::current().record("order_id", order_id.to_string());
        let record = self.store.commit(order_id).await?;
        Ok(Response::new(pb::CommitResponse {
            reservation: Some(reservation_to_proto(record)),
        }))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let order_id = domain::validate_order_id(&request.into_inner().order_id)
            .map_err(crate::Error::from)?;
        tracing::Span::current().record("order_id", order_id.to_string());
        let record = self.store.release(order_id).await?;
        Ok(Response::new(pb::ReleaseResponse {
            reservation: Some(reservation_to_proto(record)),
        }))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::GetReservationResponse>, Status> {
        let order_id = domain::validate_order_id(&request.into_inner().order_id)
            .map_err(crate::Error::from)?;
        let record = self.store.get_reservation(order_id).await?;
        Ok(Response::new(pb::GetReservationResponse {
            reservation: Some(reservation_to_proto(record)),
        }))
    }
}

fn level_to_proto(level: StockLevel) -> pb::StockLevel {
    pb::StockLevel {
        sku: level.sku.as_str().to_owned(),
        available: level.available,
        reserved: level.reserved,
        sold: level.sold,
    }
}

fn reservation_to_proto(record: Reservation) -> pb::Reservation {
    let state = match record.state {
        ReservationState::Reserved => pb::ReservationState::Reserved,
        ReservationState::Committed => pb::ReservationState::Committed,
        ReservationState::Released => pb::ReservationState::Released,
        ReservationState::Rejected => pb::ReservationState::Rejected,
    };
    let (rejection_code, reason, rejected_sku, shortfall) = match record.rejection {
        None => (
            pb::RejectionCode::Unspecified,
            String::new(),
            String::new(),
            0,
        ),
        Some(rejection) => {
            let code = match rejection.code {
                RejectionCode::UnknownSku => pb::RejectionCode::UnknownSku,
                RejectionCode::InsufficientStock => pb::RejectionCode::InsufficientStock,
                RejectionCode::AlreadyReleased => pb::RejectionCode::AlreadyReleased,
            };
            (code, rejection.reason, rejection.sku, rejection.shortfall)
        }
    };
    pb::Reservation {
        order_id: record.order_id.to_string(),
        state: state.into(),
        items: record
            .items
            .into_iter()
            .map(|item| pb::ReservationItem {
                sku: item.sku.as_str().to_owned(),
                quantity: item.quantity,
            })
            .collect(),
        rejection_code: rejection_code.into(),
        reason,
        rejected_sku,
        shortfall,
    }
}

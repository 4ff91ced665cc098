//! RelayAdmin: each source's backlog and this relay's role for it.

use std::sync::Arc;

use deadpool_postgres::Pool;
use orderly::proto::v1::{
    GetBacklogRequest, GetBacklogResponse, SourceStatus, relay_admin_server::RelayAdmin,
};
use tonic::{Request, Response, Status};

use crate::{error::Error, source::SourceState, store};

/// The RelayAdmin service over this relay's sources.
#[derive(Clone)]
pub struct AdminService {
    sources: Arc<[Arc<SourceState>]>,
    pool: Pool,
}

impl AdminService {
    /// Reports on `sources`, reading backlogs through `pool`.
    pub fn new(sources: Arc<[Arc<SourceState>]>, pool: Pool) -> Self {
        Self { sources, pool }
    }
}

/// Every source's status; backlogs are read from the database, so any
/// replica (active or standby) reports the same figures.
pub async fn statuses(
    sources: &[Arc<SourceState>],
    pool: &Pool,
) -> Result<Vec<SourceStatus>, Error> {
    let mut statuses = Vec::with_capacity(sources.len());
    for source in sources {
        let backlog = store::backlog(pool, &source.queries).await?;
        statuses.push(SourceStatus {
            name: source.name.clone(),
            backlog: backlog.rows,
            oldest_unpublished_age_ms: backlog.oldest_age_ms,
            role: source.role() as i32,
            last_published_at: source.last_published_at().map(orderly::time::to_timestamp),
        });
    }
    Ok(statuses)
}

#[tonic::async_trait]
impl RelayAdmin for AdminService {
    async fn get_backlog(
        &self,
        _request: Request<GetBacklogRequest>,
    ) -> Result<Response<GetBacklogResponse>, Status> {
        let sources = statuses(&self.sources, &self.pool).await?;
        Ok(Response::new(GetBacklogResponse { sources }))
    }
}

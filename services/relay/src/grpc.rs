//! RelayAdmin: each source's backlog, who owns each of its buckets and this
//! relay's role for it, and the rows set aside because the broker keeps
//! refusing them.

use std::sync::Arc;

use deadpool_postgres::Pool;
use orderly::{
    proto::v1::{
        GetBacklogRequest, GetBacklogResponse, ListSetAsideRequest, ListSetAsideResponse,
        RelayBucket, RetrySetAsideRequest, RetrySetAsideResponse, SetAsideRow, SourceStatus,
        relay_admin_server::RelayAdmin,
    },
    status::Violations,
};
use tonic::{Request, Response, Status};

use crate::{
    error::Error,
    source::{SourceState, lease::RELAY_GROUP},
    store,
};

/// Rows ListSetAside returns when the request sets no limit.
const DEFAULT_LIST_LIMIT: u32 = 100;
/// The most rows ListSetAside returns, and ids RetrySetAside takes, at once.
const MAX_ROWS: usize = 1_000;

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

    /// The relayed source called `name`.
    fn source(&self, name: &str) -> Result<&Arc<SourceState>, Error> {
        self.sources
            .iter()
            .find(|source| source.name == name)
            .ok_or_else(|| Error::UnknownSource(name.to_owned()))
    }
}

/// Every source's status; backlogs (and, with `with_buckets`, each
/// bucket's owner and backlog) are read from the database, so any replica
/// reports the same figures. Metrics leave the buckets out.
pub async fn statuses(
    sources: &[Arc<SourceState>],
    pool: &Pool,
    with_buckets: bool,
) -> Result<Vec<SourceStatus>, Error> {
    let mut statuses = Vec::with_capacity(sources.len());
    for source in sources {
        let backlog = store::backlog(pool, &source.queries).await?;
        let buckets = if with_buckets {
            buckets(source, pool).await?
        } else {
            Vec::new()
        };
        statuses.push(SourceStatus {
            name: source.name.clone(),
            backlog: backlog.rows,
            oldest_unpublished_age_ms: backlog.oldest_age_ms,
            role: source.role() as i32,
            last_published_at: source.last_published_at().map(orderly::time::to_timestamp),
            set_aside: backlog.set_aside,
            held_behind_set_aside: backlog.held,
            buckets,
        });
    }
    Ok(statuses)
}

/// Each bucket of `source`, its owner and its backlog.
async fn buckets(source: &SourceState, pool: &Pool) -> Result<Vec<RelayBucket>, Error> {
    let waiting = store::bucket_backlog(pool, &source.queries).await?;
    let client = pool.get().await?;
    let owners = orderly::ownership::owners(&client, &source.name, RELAY_GROUP).await?;
    let here: Vec<i32> = source.grants().iter().map(|g| g.slot).collect();
    Ok(owners
        .into_iter()
        .map(|owner| {
            let backlog = waiting.iter().find(|b| b.bucket == owner.slot);
            RelayBucket {
                bucket: u32::try_from(owner.slot).unwrap_or(0),
                owner_instance: owner.instance.unwrap_or_default(),
                owner_member: owner.owner.map(|m| m.to_string()).unwrap_or_default(),
                epoch: u64::try_from(owner.epoch).unwrap_or(0),
                live: owner.live,
                owned_here: here.contains(&owner.slot),
                backlog: backlog.map_or(0, |b| b.rows),
                oldest_unpublished_age_ms: backlog.map_or(0, |b| b.oldest_age_ms),
            }
        })
        .collect())
}

/// The row limit a ListSetAside request asks for.
fn list_limit(requested: u32) -> Result<u32, Violations> {
    let mut violations = Violations::default();
    if requested as usize > MAX_ROWS {
        violations.add("limit", format!("must be at most {MAX_ROWS}"));
    }
    let limit = if requested == 0 {
        DEFAULT_LIST_LIMIT
    } else {
        requested
    };
    violations.into_result(limit)
}

/// Checks a RetrySetAside request's fields (the source's existence aside).
fn check_retry(request: &RetrySetAsideRequest) -> Result<(), Violations> {
    let mut violations = Violations::default();
    if request.source.is_empty() {
        violations.add("source", "is required, e.g. \"orders\"");
    }
    if request.ids.len() > MAX_ROWS {
        violations.add("ids", format!("at most {MAX_ROWS} ids at once"));
    } else {
        for (i, id) in request.ids.iter().enumerate() {
            if *id <= 0 {
                violations.add(format!("ids[{i}]"), "must be a positive outbox id");
            }
        }
    }
    violations.into_result(())
}

fn to_proto(source: &str, row: store::SetAside) -> SetAsideRow {
    SetAsideRow {
        source: source.to_owned(),
        id: row.id,
        event_id: row.event_id,
        event_type: row.event_type,
        topic: row.topic,
        partition_key: row.partition_key,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        last_error: row.last_error.unwrap_or_default(),
        created_at: Some(orderly::time::to_timestamp(row.created_at)),
        set_aside_at: Some(orderly::time::to_timestamp(row.set_aside_at)),
        waiting_behind: u64::try_from(row.waiting_behind).unwrap_or(0),
    }
}

#[tonic::async_trait]
impl RelayAdmin for AdminService {
    async fn get_backlog(
        &self,
        _request: Request<GetBacklogRequest>,
    ) -> Result<Response<GetBacklogResponse>, Status> {
        let sources = statuses(&self.sources, &self.pool, true).await?;
        Ok(Response::new(GetBacklogResponse { sources }))
    }

    async fn list_set_aside(
        &self,
        request: Request<ListSetAsideRequest>,
    ) -> Result<Response<ListSetAsideResponse>, Status> {
        let request = request.into_inner();
        let limit = list_limit(request.limit).map_err(Error::from)?;
        let sources: Vec<&Arc<SourceState>> = if request.source.is_empty() {
            self.sources.iter().collect()
        } else {
            vec![self.source(&request.source)?]
        };
        let mut rows = Vec::new();
        for source in sources {
            let left = limit.saturating_sub(u32::try_from(rows.len()).unwrap_or(u32::MAX));
            if left == 0 {
                break;
            }
            let found = store::list_set_aside(&self.pool, &source.queries, left).await?;
            rows.extend(found.into_iter().map(|row| to_proto(&source.name, row)));
        }
        Ok(Response::new(ListSetAsideResponse { rows }))
    }

    async fn retry_set_aside(
        &self,
        request: Request<RetrySetAsideRequest>,
    ) -> Result<Response<RetrySetAsideResponse>, Status> {
        let request = request.into_inner();
        check_retry(&request).map_err(Error::from)?;
        let source = self.source(&request.source)?;
        let mut client = self.pool.get().await.map_err(Error::from)?;
        let tx = client.transaction().await.map_err(Error::from)?;
        let retried =
            store::retry_set_aside(&tx, &source.queries, &source.name, &request.ids).await?;
        tx.commit().await.map_err(Error::from)?;
        if !retried.is_empty() {
            tracing::info!(
                source = %source.name, rows = retried.len(), ids = ?retried,
                "set-aside outbox rows put back in line"
            );
        }
        Ok(Response::new(RetrySetAsideResponse {
            retried_ids: retried,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_limit_defaults_and_is_bounded() {
        assert_eq!(list_limit(0), Ok(DEFAULT_LIST_LIMIT));
        assert_eq!(list_limit(7), Ok(7));
        assert_eq!(list_limit(1_000), Ok(1_000));
        assert!(list_limit(1_001).expect_err("too many").names("limit"));
    }

    #[test]
    fn a_retry_names_a_source_and_positive_ids() {
        let request = RetrySetAsideRequest {
            source: String::new(),
            ids: vec![3, 0, -1],
        };
        let violations = check_retry(&request).expect_err("invalid");
        assert!(violations.names("source"));
        assert!(violations.names("ids[1]"));
        assert!(violations.names("ids[2]"));
        assert!(!violations.names("ids[0]"));
        let all = RetrySetAsideRequest {
            source: "orders".into(),
            ids: Vec::new(),
        };
        assert_eq!(check_retry(&all), Ok(()));
        let too_many = RetrySetAsideRequest {
            source: "orders".into(),
            ids: (1..=1_001).collect(),
        };
        assert!(check_retry(&too_many).expect_err("too many").names("ids"));
    }
}

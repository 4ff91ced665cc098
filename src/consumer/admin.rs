//! `orderly.v1.DeadLetterService`: lists and requeues the dead letters of the
//! consumers running in this process, and tells who owns their partitions.

use tonic::{Request, Response, Status};

use super::{Consumer, store::ListedLetter};
use crate::{
    ownership::SlotOwner,
    proto::v1::{
        self as pb,
        dead_letter_service_server::{DeadLetterService, DeadLetterServiceServer},
    },
    status::Violations,
    time::to_timestamp,
};

/// The fully qualified service name, as health reports it.
pub const DEAD_LETTER_SERVICE: &str = "orderly.v1.DeadLetterService";

/// Default and largest page of ListDeadLetters.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;
/// Most ids one RequeueDeadLetters takes (each is applied in turn).
const MAX_IDS: usize = 1_000;

/// The dead-letter admin of a component's consumers.
#[derive(Debug, Clone)]
pub struct DeadLetterAdmin {
    consumers: Vec<Consumer>,
}

/// The gRPC service over `consumers`, ready to add to a component's routes.
pub fn dead_letter_admin(consumers: Vec<Consumer>) -> DeadLetterServiceServer<DeadLetterAdmin> {
    DeadLetterServiceServer::new(DeadLetterAdmin { consumers })
}

impl DeadLetterAdmin {
    /// The consumer named, or every one served here when `name` is empty.
    fn select(&self, name: &str) -> Result<Vec<&Consumer>, Status> {
        if name.is_empty() {
            Ok(self.consumers.iter().collect())
        } else {
            Ok(vec![self.find(name)?])
        }
    }

    fn find(&self, name: &str) -> Result<&Consumer, Status> {
        self.consumers
            .iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                let served: Vec<&str> = self.consumers.iter().map(Consumer::name).collect();
                Status::not_found(format!(
                    "no consumer {} runs here (served: {})",
                    crate::status::quoted(name),
                    served.join(", ")
                ))
            })
    }
}

fn unavailable(error: impl std::fmt::Display) -> Status {
    unavailable_to("read dead letters", error)
}

/// The database (or the pool) failed: UNAVAILABLE, saying what could not
/// be done.
fn unavailable_to(what: &str, error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "dead-letter admin request failed");
    Status::unavailable(format!("cannot {what}: {error}"))
}

fn owner_to_proto(owner: SlotOwner) -> pb::PartitionOwner {
    pb::PartitionOwner {
        partition: owner.slot,
        owner_instance: owner.instance.unwrap_or_default(),
        owner_member: owner.owner.map(|m| m.to_string()).unwrap_or_default(),
        epoch: owner.epoch,
        live: owner.live,
        held: owner.held.unwrap_or_default(),
    }
}

fn to_proto(letter: ListedLetter) -> pb::DeadLetter {
    pb::DeadLetter {
        id: letter.id,
        consumer: letter.consumer,
        topic: letter.topic,
        partition: letter.partition,
        offset: letter.offset,
        key: letter.key,
        event_id: letter.event_id.map(|id| id.to_string()).unwrap_or_default(),
        event_type: letter.event_type,
        aggregate_id: letter.aggregate_id,
        aggregate_version: letter.aggregate_version.unsigned_abs(),
        error: letter.error,
        dead_lettered_at: Some(to_timestamp(letter.dead_lettered_at)),
        requeued_at: letter.requeued_at.map(to_timestamp),
        requeue_attempts: letter.requeue_attempts.unsigned_abs(),
    }
}

#[tonic::async_trait]
impl DeadLetterService for DeadLetterAdmin {
    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        if request.limit > MAX_LIMIT {
            let mut violations = Violations::default();
            violations.add("limit", format!("must be at most {MAX_LIMIT}"));
            return Err(violations.into());
        }
        let limit = if request.limit == 0 {
            DEFAULT_LIMIT
        } else {
            request.limit
        };
        let consumers = self.select(&request.consumer)?;
        let mut letters = Vec::new();
        for consumer in consumers {
            let shared = &consumer.shared;
            let client = shared.pool.get().await.map_err(unavailable)?;
            let found = shared
                .store
                .list_dead_letters(
                    &client,
                    shared.name,
                    request.include_requeued,
                    i64::from(limit),
                )
                .await
                .map_err(|e| unavailable(crate::postgres::describe(&e)))?;
            letters.extend(found);
        }
        letters.sort_by(|a, b| {
            b.dead_lettered_at
                .cmp(&a.dead_lettered_at)
                .then(b.id.cmp(&a.id))
        });
        letters.truncate(limit as usize);
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: letters.into_iter().map(to_proto).collect(),
        }))
    }

    async fn requeue_dead_letters(
        &self,
        request: Request<pb::RequeueDeadLettersRequest>,
    ) -> Result<Response<pb::RequeueDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::default();
        if request.consumer.is_empty() {
            violations.add(
                "consumer",
                "required: the consumer whose letters to requeue",
            );
        }
        if request.ids.len() > MAX_IDS {
            violations.add("ids", format!("at most {MAX_IDS} ids at once"));
        }
        violations.into_result(()).map_err(Status::from)?;
        let consumer = self.find(&request.consumer)?;
        let outcomes = consumer
            .requeue(&request.ids)
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        Ok(Response::new(pb::RequeueDeadLettersResponse {
            results: outcomes
                .into_iter()
                .map(|outcome| pb::RequeueResult {
                    id: outcome.id,
                    applied: outcome.result.is_ok(),
                    error: outcome.result.err().unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn get_consumer_status(
        &self,
        request: Request<pb::GetConsumerStatusRequest>,
    ) -> Result<Response<pb::GetConsumerStatusResponse>, Status> {
        let request = request.into_inner();
        let mut statuses = Vec::new();
        for consumer in self.select(&request.consumer)? {
            let owners = consumer
                .partition_owners()
                .await
                .map_err(|error| unavailable_to("read the partition leases", error))?;
            statuses.push(pb::ConsumerStatus {
                consumer: consumer.name().to_owned(),
                lease_group: consumer.lease_group().to_owned(),
                partitions: owners.into_iter().map(owner_to_proto).collect(),
            });
        }
        Ok(Response::new(pb::GetConsumerStatusResponse {
            consumers: statuses,
        }))
    }
}

//! Projection: the live projector catching up a backlog of events, next to
//! a rebuild of the same view from the same topics (the rebuild is meant to
//! be much faster: it is how a broken view gets fixed).

use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use orderly::proto::v1::{GetProjectionStatusRequest, RebuildRequest, RebuildState};
use orderly_integration_tests::{TestKafka, TestPlatform};

use crate::{
    Settings, in_services,
    report::{Report, Target},
};

const SECTION: &str = "6 projection";

/// Section 6 over the topics section 5 filled with `settings.events`
/// `OrderCreated` events.
pub async fn run(
    settings: &Settings,
    topics: &TestKafka,
    report: &mut Report,
) -> anyhow::Result<()> {
    let events = settings.events as i64;
    let kafka = topics.share();
    let platform =
        in_services(async move { TestPlatform::builder().kafka(kafka).query().start().await })
            .await;
    let admin = platform.db.client().await;
    let mut query = platform.query_client().await;
    let deadline = Instant::now() + settings.phase_limit;
    // Caught up: no lag left on any partition and nothing applied since
    // the previous look. (The broker's offsets need not be contiguous, so
    // positions are not compared with the event count.)
    let mut previous = -1;
    let projected = loop {
        let status = query
            .get_projection_status(GetProjectionStatusRequest {})
            .await?
            .into_inner();
        let applied: i64 = admin
            .query_one(
                "SELECT count(*) FROM query.inbox WHERE consumer = 'query'",
                &[],
            )
            .await?
            .get(0);
        let no_lag = status.projections.iter().all(|p| p.total_lag == 0);
        if no_lag && applied > 0 && applied == previous {
            break applied;
        }
        previous = applied;
        if Instant::now() > deadline {
            bail!("the live projection did not catch up in time ({applied} of {events} applied)");
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    };
    // The first and last event's transactions, as the inbox recorded them:
    // the consumer group's join before the first is not projecting.
    let row = admin
        .query_one(
            "SELECT min(processed_at), max(processed_at) FROM query.inbox WHERE consumer = 'query'",
            &[],
        )
        .await?;
    let (first, last): (DateTime<Utc>, DateTime<Utc>) = (row.get(0), row.get(1));
    let live = projected as f64 / seconds(last - first);
    report.value(
        SECTION,
        &format!("live projection catching up {events} events"),
        live,
        "events/s",
    );
    // Every record should reach the projector; one that did not is a loss
    // (the consumer runtime logs it), not a speed.
    report.value(
        SECTION,
        "events the live projector never received",
        (events - projected) as f64,
        "events",
    );
    query
        .rebuild(RebuildRequest {
            projection: "orders".into(),
        })
        .await?;
    // Progress is sampled, since a finished rebuild forgets its inbox: from
    // the first poll that saw events applied to the end it reports.
    let mut first_seen: Option<(DateTime<Utc>, u64)> = None;
    let mut rebuild_started = None;
    let (finished, applied) = loop {
        let status = query
            .get_projection_status(GetProjectionStatusRequest {})
            .await?
            .into_inner();
        let rebuild = status
            .projections
            .iter()
            .find_map(|p| p.rebuild.clone())
            .unwrap_or_default();
        if rebuild_started.is_none() {
            rebuild_started = rebuild
                .started_at
                .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.unsigned_abs()));
        }
        if rebuild.events_applied > 0 && first_seen.is_none() {
            first_seen = Some((Utc::now(), rebuild.events_applied));
        }
        match rebuild.state() {
            RebuildState::Swapped => {
                let finished = rebuild
                    .finished_at
                    .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.unsigned_abs()))
                    .unwrap_or_else(Utc::now);
                break (finished, rebuild.events_applied);
            }
            RebuildState::Failed => bail!("the rebuild failed: {}", rebuild.error),
            _ => {}
        }
        if Instant::now() > deadline + settings.phase_limit {
            bail!("the rebuild did not finish in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let db = platform.db.clone();
    drop(platform);
    db.drop_now().await;
    let (started, applied_then) = first_seen.unwrap_or((finished, 0));
    let rebuild = (applied - applied_then) as f64 / seconds(finished - started);
    report.push(
        SECTION,
        &format!("rebuild vs live projection, {events} events"),
        rebuild,
        "events/s",
        Some(live),
        Some(Target::RatioAtLeast(5.0)),
    );
    // The same, from the request (start-up, the first batch and the swap
    // included): the stricter reading.
    let whole = applied as f64 / seconds(finished - rebuild_started.unwrap_or(started));
    report.push(
        SECTION,
        &format!("rebuild from its start vs live projection, {events} events"),
        whole,
        "events/s",
        Some(live),
        None,
    );
    Ok(())
}

fn seconds(span: chrono::TimeDelta) -> f64 {
    (span.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(1e-3)
}

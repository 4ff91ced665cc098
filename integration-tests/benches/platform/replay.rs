//! The saga's baseline, "direct replay": an order's essential durable work
//! done directly, with no gRPC and no broker, at the same concurrency: its
//! CreateOrder transaction, the Redis reserve script, the RESERVED
//! transition with its outbox row, the payment with its outbox row, the
//! CONFIRMED transition with its outbox row, the Redis commit script, and
//! the view's upserts and timeline rows (one transaction, as a projector
//! batch would). Each transaction pipelined like the services send theirs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orderly::{
    outbox::{EventMeta, OutboxRow},
    proto::v1::{self as pb, event_envelope::Payload},
    trace::TraceContext,
};
use orderly_integration_tests::TestPlatform;
use orderly_inventory::{domain::OrderId, store::Keys};
use tokio_postgres::{Client, NoTls, Statement, types::ToSql};
use uuid::Uuid;

use crate::{
    create_order::{Direct, DirectConnections, create_directly, request},
    measure::{Measured, closed_loop},
};

const UPDATE_STATUS: &str = include_str!("../../../services/order/src/store/update_status.sql");
const INSERT_PAYMENT: &str = include_str!("../../../services/payment/src/store/insert_payment.sql");
const INSERT_OUTBOX: &str = include_str!("../../../src/outbox/insert.sql");
const APPLY_ORDER: &str = include_str!("../../../services/query/src/store/apply_order.sql");
const APPLY_PAYMENT: &str = include_str!("../../../services/query/src/store/apply_payment.sql");
const TIMELINE: &str = include_str!("../../../services/query/src/store/insert_timeline.sql");
const COMMIT_SCRIPT: &str = include_str!("../../../lua/commit.lua");
/// Seconds a finished reservation record is kept (the service's default).
const RETENTION: u64 = orderly_inventory::config::DEFAULT_RESERVATION_RETENTION_SECS;

/// One worker's connection and statements.
struct Worker {
    create: Direct,
    client: Client,
    update: Statement,
    payment: Statement,
    orders_outbox: Statement,
    payments_outbox: Statement,
    view_order: Statement,
    view_payment: Statement,
    timeline: Statement,
    redis: redis::aio::MultiplexedConnection,
}

/// Replays orders in a closed loop on `platform`'s stores for `duration`.
pub async fn run(
    platform: &TestPlatform,
    concurrency: usize,
    duration: std::time::Duration,
) -> Measured {
    let creates = DirectConnections::open(&platform.db, concurrency).await;
    let redis_config = &platform.redis.as_ref().expect("redis").config;
    let keys = Keys::new(&redis_config.redis_key_prefix).expect("keys");
    let redis_client = redis::Client::open(redis_config.redis_url.as_str()).expect("redis");
    let mut workers = Vec::with_capacity(concurrency);
    for create in creates.into_inner() {
        let (client, connection) = tokio_postgres::connect(&platform.db.config.database_url, NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let views = |sql: &str| {
            sql.replace("{views}", "query.order_views")
                .replace("{timeline}", "query.order_timeline")
        };
        workers.push(Worker {
            update: client.prepare(UPDATE_STATUS).await.expect("prepare"),
            payment: client.prepare(INSERT_PAYMENT).await.expect("prepare"),
            orders_outbox: client
                .prepare(&INSERT_OUTBOX.replace("{schema}", "orders"))
                .await
                .expect("prepare"),
            payments_outbox: client
                .prepare(&INSERT_OUTBOX.replace("{schema}", "payments"))
                .await
                .expect("prepare"),
            view_order: client.prepare(&views(APPLY_ORDER)).await.expect("prepare"),
            view_payment: client
                .prepare(&views(APPLY_PAYMENT))
                .await
                .expect("prepare"),
            timeline: client.prepare(&views(TIMELINE)).await.expect("prepare"),
            redis: redis_client
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection"),
            create,
            client,
        });
    }
    let workers = Arc::new(workers);
    let keys = Arc::new(keys);
    closed_loop(concurrency, duration, move |n| {
        let workers = Arc::clone(&workers);
        let keys = Arc::clone(&keys);
        async move { replay(&workers[n % workers.len()], &keys, n).await }
    })
    .await
}

async fn replay(worker: &Worker, keys: &Keys, n: usize) {
    let request = request(n);
    let id = create_directly(&worker.create, n).await;
    let item = &request.items[0];
    let order = OrderId::from(id);
    let mut redis = worker.redis.clone();
    let reserved: (String, Vec<String>) =
        redis::Script::new(orderly_inventory::store::RESERVE_SCRIPT)
            .key(keys.reservation(&order))
            .key(keys.stock(&item.sku))
            .arg(RETENTION)
            .arg(&item.sku)
            .arg(item.quantity)
            .invoke_async(&mut redis)
            .await
            .expect("reserve");
    assert_eq!(reserved.0, "OK");
    let id_text = id.to_string();
    let at = transition(
        worker,
        id,
        1,
        "RESERVED",
        reserved_event(&id_text, &request),
    )
    .await;
    let payment_id = Uuid::now_v7();
    let paid = pay(worker, id, payment_id, &request).await;
    let confirmed = transition(
        worker,
        id,
        2,
        "CONFIRMED",
        confirmed_event(&id_text, &payment_id),
    )
    .await;
    let committed: (String, Vec<String>) = redis::Script::new(COMMIT_SCRIPT)
        .key(keys.reservation(&order))
        .key(keys.stock(&item.sku))
        .arg(format!("{}={}", item.sku, item.quantity))
        .arg(RETENTION)
        .invoke_async(&mut redis)
        .await
        .expect("commit");
    assert_eq!(committed.0, "OK");
    project(worker, id, payment_id, &request, [at, paid, confirmed]).await;
}

/// BEGIN, the version-guarded transition and its outbox row, COMMIT: one
/// round trip, as the saga's transaction sends them.
async fn transition(
    worker: &Worker,
    id: Uuid,
    version: i64,
    to: &str,
    event: OutboxRow,
) -> DateTime<Utc> {
    let client = &worker.client;
    let reason = "";
    let update_params: [&(dyn ToSql + Sync); 4] = [&id, &version, &to, &reason];
    let update = client.query_one(&worker.update, &update_params);
    let event_params = event.params();
    let outbox = client.execute(&worker.orders_outbox, &event_params);
    let ((), row, _, ()) = tokio::try_join!(
        biased;
        client.batch_execute("BEGIN"),
        update,
        outbox,
        client.batch_execute("COMMIT")
    )
    .expect("transition");
    row.get(0)
}

/// The payment row and its `PaymentSucceeded` outbox row, one round trip.
async fn pay(
    worker: &Worker,
    order: Uuid,
    payment: Uuid,
    request: &pb::CreateOrderRequest,
) -> DateTime<Utc> {
    let client = &worker.client;
    let item = &request.items[0];
    let amount = item.unit_price_minor * i64::from(item.quantity);
    let (status, reason, gateway_ref, attempts) = ("SUCCEEDED", "", format!("ref-{payment}"), 1i32);
    let params: [&(dyn ToSql + Sync); 9] = [
        &payment,
        &order,
        &status,
        &amount,
        &request.currency,
        &request.payment_method,
        &reason,
        &gateway_ref,
        &attempts,
    ];
    let insert = client.query_one(&worker.payment, &params);
    let event = succeeded_event(&order.to_string(), &payment, amount, &request.currency);
    let event_params = event.params();
    let outbox = client.execute(&worker.payments_outbox, &event_params);
    let ((), row, _, ()) = tokio::try_join!(
        biased;
        client.batch_execute("BEGIN"),
        insert,
        outbox,
        client.batch_execute("COMMIT")
    )
    .expect("payment");
    row.get(0)
}

/// The view's four upserts and timeline rows in one transaction.
async fn project(
    worker: &Worker,
    id: Uuid,
    payment: Uuid,
    request: &pb::CreateOrderRequest,
    [reserved, paid, confirmed]: [DateTime<Utc>; 3],
) {
    let client = &worker.client;
    let item = &request.items[0];
    let total = item.unit_price_minor * i64::from(item.quantity);
    let items = serde_json::json!([{
        "sku": item.sku, "quantity": item.quantity, "unit_price_minor": item.unit_price_minor
    }]);
    let none = (
        None::<&str>,
        None::<serde_json::Value>,
        None::<i64>,
        None::<DateTime<Utc>>,
    );
    let created_params: [&(dyn ToSql + Sync); 11] = [
        &id,
        &1i64,
        &"PENDING",
        &"",
        &reserved,
        &Some(request.customer_id.as_str()),
        &Some(items),
        &Some(request.currency.as_str()),
        &Some(total),
        &Some(request.payment_method.as_str()),
        &Some(reserved),
    ];
    let (v2, v3, reserved_s, confirmed_s, blank) = (2i64, 3i64, "RESERVED", "CONFIRMED", "");
    let reserved_params: [&(dyn ToSql + Sync); 11] = [
        &id,
        &v2,
        &reserved_s,
        &blank,
        &reserved,
        &none.0,
        &none.1,
        &none.0,
        &none.2,
        &none.0,
        &none.3,
    ];
    let confirmed_params: [&(dyn ToSql + Sync); 11] = [
        &id,
        &v3,
        &confirmed_s,
        &blank,
        &confirmed,
        &none.0,
        &none.1,
        &none.0,
        &none.2,
        &none.0,
        &none.3,
    ];
    let (succeeded, one) = ("SUCCEEDED", 1i64);
    let payment_params: [&(dyn ToSql + Sync); 4] = [&id, &payment, &succeeded, &one];
    let events = [
        (Uuid::now_v7(), "OrderCreated", 1i64, reserved),
        (Uuid::now_v7(), "OrderReserved", 2, reserved),
        (Uuid::now_v7(), "PaymentSucceeded", 1, paid),
        (Uuid::now_v7(), "OrderConfirmed", 3, confirmed),
    ];
    let params: Vec<[&(dyn ToSql + Sync); 5]> = events
        .iter()
        .map(|(event, kind, version, at)| -> [&(dyn ToSql + Sync); 5] {
            [&id, event, kind, version, at]
        })
        .collect();
    let timeline = futures::future::try_join_all(
        params
            .iter()
            .map(|params| client.execute(&worker.timeline, params)),
    );
    tokio::try_join!(
        biased;
        client.batch_execute("BEGIN"),
        client.execute(&worker.view_order, &created_params),
        client.execute(&worker.view_order, &reserved_params),
        client.execute(&worker.view_payment, &payment_params),
        client.execute(&worker.view_order, &confirmed_params),
        timeline,
        client.batch_execute("COMMIT")
    )
    .expect("project");
}

fn event(
    topic: &'static str,
    aggregate_type: &'static str,
    id: &str,
    version: u64,
    payload: Payload,
) -> OutboxRow {
    let meta = EventMeta {
        topic,
        partition_key: id,
        aggregate_type,
        aggregate_id: id,
        aggregate_version: version,
        occurred_at: Utc::now(),
        correlation_id: id,
        causation_id: "",
    };
    orderly::outbox::event(&meta, payload, &TraceContext::default())
}

fn reserved_event(id: &str, request: &pb::CreateOrderRequest) -> OutboxRow {
    let payload = Payload::OrderReserved(pb::OrderReserved {
        order_id: id.to_owned(),
        payment_method: request.payment_method.clone(),
        ..Default::default()
    });
    event(orderly::kafka::ORDER_TOPIC, "order", id, 2, payload)
}

fn confirmed_event(id: &str, payment: &Uuid) -> OutboxRow {
    let payload = Payload::OrderConfirmed(pb::OrderConfirmed {
        order_id: id.to_owned(),
        payment_id: payment.to_string(),
    });
    event(orderly::kafka::ORDER_TOPIC, "order", id, 3, payload)
}

fn succeeded_event(id: &str, payment: &Uuid, amount: i64, currency: &str) -> OutboxRow {
    let payload = Payload::PaymentSucceeded(pb::PaymentSucceeded {
        order_id: id.to_owned(),
        payment_id: payment.to_string(),
        amount: Some(pb::Money {
            currency: currency.to_owned(),
            amount_minor: amount,
        }),
    });
    event(
        orderly::kafka::PAYMENT_TOPIC,
        "payment",
        &payment.to_string(),
        1,
        payload,
    )
}

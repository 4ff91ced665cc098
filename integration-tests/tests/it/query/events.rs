//! The projector fed hand-made events straight on its topics (only the
//! query service runs): payments before orders, old events, a read waiting
//! for an order not projected yet (on the projecting replica or another),
//! listing and its page tokens, the
//! projection status and dead letters.

use std::time::{Duration, SystemTime};

use orderly::{
    kafka::{ORDER_TOPIC, PAYMENT_TOPIC},
    proto::v1::{
        self as pb, ListOrdersRequest, ListOrdersResponse, Money, OrderStatus, PaymentStatus,
        event_envelope::Payload,
    },
    status::violated_fields,
};
use orderly_integration_tests::{TestPlatform, TopicRecord, eventually};
use tonic::Code;
use uuid::Uuid;

use super::support::{
    envelope, order_events, produce, projection_status, query_view, reserved, until_caught_up,
};

fn confirmed(order_id: Uuid, payment_id: Uuid) -> Payload {
    Payload::OrderConfirmed(pb::OrderConfirmed {
        order_id: order_id.to_string(),
        payment_id: payment_id.to_string(),
    })
}

fn paid(order_id: Uuid, payment_id: Uuid, at: SystemTime) -> pb::EventEnvelope {
    envelope(
        "payment",
        payment_id,
        1,
        at,
        Payload::PaymentSucceeded(pb::PaymentSucceeded {
            payment_id: payment_id.to_string(),
            order_id: order_id.to_string(),
            amount: Some(Money {
                currency: "EUR".into(),
                amount_minor: 250,
            }),
        }),
    )
}

#[tokio::test]
async fn payments_arriving_before_their_order_give_the_same_view() {
    let platform = TestPlatform::builder().query().start().await;
    let at = SystemTime::now();
    let (early, usual) = (Uuid::now_v7(), Uuid::now_v7());
    let (early_payment, usual_payment) = (Uuid::now_v7(), Uuid::now_v7());
    let early_events = order_events(
        early,
        "c-early",
        1,
        at,
        &[reserved(early, 1), confirmed(early, early_payment)],
    );
    let usual_events = order_events(
        usual,
        "c-early",
        1,
        at,
        &[reserved(usual, 1), confirmed(usual, usual_payment)],
    );

    // The payment first: the order is not known yet.
    produce(
        &platform,
        PAYMENT_TOPIC,
        early,
        &[paid(early, early_payment, at)],
    )
    .await;
    until_caught_up(&platform).await;
    let missing = query_view(&platform, &early.to_string(), 0, Duration::from_secs(5))
        .await
        .expect_err("no order yet");
    assert_eq!(missing.code(), Code::NotFound);
    produce(&platform, ORDER_TOPIC, early, &early_events).await;

    // The usual way round.
    produce(&platform, ORDER_TOPIC, usual, &usual_events).await;
    until_caught_up(&platform).await;
    produce(
        &platform,
        PAYMENT_TOPIC,
        usual,
        &[paid(usual, usual_payment, at)],
    )
    .await;
    until_caught_up(&platform).await;

    let mut views = Vec::new();
    for id in [early, usual] {
        let response = query_view(&platform, &id.to_string(), 3, Duration::from_secs(30))
            .await
            .expect("GetOrder");
        assert!(response.current);
        views.push(response.order.expect("view"));
    }
    for view in &views {
        let order = view.order.as_ref().expect("order");
        assert_eq!(order.status(), OrderStatus::Confirmed);
        assert_eq!(order.version, 3);
        assert_eq!(order.total_minor, 250);
        assert_eq!(order.customer_id, "c-early");
        assert_eq!(view.payment_status(), PaymentStatus::Succeeded);
        assert_eq!(view.timeline.len(), 4, "{:?}", view.timeline);
    }
    // Apart from the ids, the two views are the same.
    let strip = |view: &pb::OrderView| {
        let mut view = view.clone();
        if let Some(order) = view.order.as_mut() {
            order.order_id.clear();
        }
        view
    };
    assert_eq!(strip(&views[0]), strip(&views[1]));
}

#[tokio::test]
async fn an_old_event_applied_late_never_moves_a_view_backwards() {
    let platform = TestPlatform::builder().query().start().await;
    let order = Uuid::now_v7();
    let events = order_events(
        order,
        "c-backwards",
        1,
        SystemTime::now(),
        &[reserved(order, 1)],
    );
    produce(&platform, ORDER_TOPIC, order, &events).await;
    let response = query_view(&platform, &order.to_string(), 2, Duration::from_secs(30))
        .await
        .expect("GetOrder");
    assert!(response.current);

    // The same OrderCreated again, as a new event (another id): the
    // runtime sees an old version and the view keeps RESERVED.
    let mut replayed = events[0].clone();
    replayed.event_id = Uuid::now_v7().to_string();
    produce(&platform, ORDER_TOPIC, order, &[replayed]).await;
    until_caught_up(&platform).await;
    let view = query_view(&platform, &order.to_string(), 0, Duration::from_secs(5))
        .await
        .expect("GetOrder")
        .order
        .expect("view");
    assert_eq!(view.order.expect("order").status(), OrderStatus::Reserved);
    assert_eq!(view.timeline.len(), 2);
}

async fn list(
    platform: &TestPlatform,
    request: ListOrdersRequest,
) -> Result<ListOrdersResponse, tonic::Status> {
    platform
        .query_client()
        .await
        .list_orders(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn list_orders_pages_are_complete_stable_and_filtered() {
    let platform = TestPlatform::builder().query().start().await;
    let base = SystemTime::now() - Duration::from_secs(3600);
    // Seven orders a minute apart (the odd ones confirmed), and one of
    // another customer.
    let mut ids = Vec::new();
    for i in 0..7u32 {
        let id = Uuid::now_v7();
        let at = base + Duration::from_secs(60 * u64::from(i));
        let then = if i % 2 == 1 {
            vec![reserved(id, 1), confirmed(id, Uuid::now_v7())]
        } else {
            Vec::new()
        };
        produce(
            &platform,
            ORDER_TOPIC,
            id,
            &order_events(id, "c-list", 1, at, &then),
        )
        .await;
        ids.push(id.to_string());
    }
    let other = Uuid::now_v7();
    produce(
        &platform,
        ORDER_TOPIC,
        other,
        &order_events(other, "c-other", 1, base, &[]),
    )
    .await;
    until_caught_up(&platform).await;

    // Three pages of three, newest first, each order once.
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list(
            &platform,
            ListOrdersRequest {
                customer_id: "c-list".into(),
                page_size: 3,
                page_token: token.clone(),
                ..ListOrdersRequest::default()
            },
        )
        .await
        .expect("ListOrders");
        pages += 1;
        listed.extend(
            page.orders
                .iter()
                .map(|v| v.order.as_ref().expect("order").order_id.clone()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "pagination ends");
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    assert_eq!(pages, 3);

    // The status filter, and a time range: [base + 2 min, base + 5 min).
    let confirmed = list(
        &platform,
        ListOrdersRequest {
            customer_id: "c-list".into(),
            status: OrderStatus::Confirmed.into(),
            ..ListOrdersRequest::default()
        },
    )
    .await
    .expect("ListOrders");
    let confirmed_ids: Vec<&str> = confirmed
        .orders
        .iter()
        .map(|v| v.order.as_ref().expect("order").order_id.as_str())
        .collect();
    assert_eq!(confirmed_ids, [&ids[5], &ids[3], &ids[1]]);
    let ranged = list(
        &platform,
        ListOrdersRequest {
            customer_id: "c-list".into(),
            created_after: Some((base + Duration::from_secs(120)).into()),
            created_before: Some((base + Duration::from_secs(300)).into()),
            ..ListOrdersRequest::default()
        },
    )
    .await
    .expect("ListOrders");
    let ranged_ids: Vec<&str> = ranged
        .orders
        .iter()
        .map(|v| v.order.as_ref().expect("order").order_id.as_str())
        .collect();
    assert_eq!(ranged_ids, [&ids[4], &ids[3], &ids[2]]);

    // A tampered token, or one used with another filter: INVALID_ARGUMENT.
    let first = list(
        &platform,
        ListOrdersRequest {
            customer_id: "c-list".into(),
            page_size: 2,
            ..ListOrdersRequest::default()
        },
    )
    .await
    .expect("ListOrders");
    let token = first.next_page_token;
    let mut tampered = token.clone().into_bytes();
    tampered[0] = if tampered[0] == b'7' { b'6' } else { b'7' };
    for (customer, page_token) in [
        ("c-list", String::from_utf8(tampered).expect("ascii")),
        ("c-other", token.clone()),
        ("c-list", "not-a-token".to_owned()),
    ] {
        let error = list(
            &platform,
            ListOrdersRequest {
                customer_id: customer.into(),
                page_size: 2,
                page_token,
                ..ListOrdersRequest::default()
            },
        )
        .await
        .expect_err("refused");
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        assert_eq!(violated_fields(&error), ["page_token"]);
    }
}

#[tokio::test]
async fn projection_status_reports_positions_lag_and_freshness() {
    let platform = TestPlatform::builder().query().start().await;
    let order = Uuid::now_v7();
    let at = SystemTime::now();
    produce(
        &platform,
        ORDER_TOPIC,
        order,
        &order_events(order, "c-status", 1, at, &[]),
    )
    .await;
    until_caught_up(&platform).await;
    let asked = SystemTime::now();
    let status = projection_status(&platform).await;
    let answered = SystemTime::now();

    assert_eq!(status.name, "orders");
    assert_eq!(status.partitions.len(), 6, "3 partitions of 2 topics");
    // The topics are the test's own and hold the one event produced.
    let ahead: i64 = status.partitions.iter().map(|p| p.high_watermark).sum();
    let committed: i64 = status.partitions.iter().map(|p| p.committed_offset).sum();
    assert_eq!((ahead, committed), (1, 1), "{status:?}");
    for p in &status.partitions {
        assert_eq!(p.lag, p.high_watermark - p.committed_offset, "{p:?}");
    }
    assert_eq!(
        status.total_lag,
        status.partitions.iter().map(|p| p.lag).sum::<i64>()
    );
    let applied = status.last_applied_at.expect("an event was applied");
    let occurred = status.last_event_occurred_at.expect("its time");
    // The database keeps microseconds.
    let occurred = SystemTime::try_from(occurred).expect("time");
    let skew = occurred.duration_since(at).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_millis(1), "{occurred:?} vs {at:?}");
    assert!(SystemTime::try_from(applied).expect("time") >= at);
    // The lag is the age of the newest applied event when asked: between
    // its age when the call went out and when the answer came back (the
    // database keeps microseconds, the figure is whole milliseconds).
    let age_ms = |then: SystemTime| {
        i64::try_from(
            then.duration_since(occurred)
                .unwrap_or_default()
                .as_millis(),
        )
        .expect("a short age")
    };
    let within = |lag: i64, asked: SystemTime, answered: SystemTime| {
        (age_ms(asked) - 1..=age_ms(answered) + 1).contains(&lag)
    };
    assert!(
        within(status.end_to_end_lag_ms, asked, answered),
        "lag {} ms, the event was {}-{} ms old",
        status.end_to_end_lag_ms,
        age_ms(asked),
        age_ms(answered)
    );

    // Asked again, it has grown with the time passed.
    let asked = SystemTime::now();
    let again = projection_status(&platform).await;
    let answered = SystemTime::now();
    assert!(
        within(again.end_to_end_lag_ms, asked, answered),
        "lag {} ms, the event was {}-{} ms old",
        again.end_to_end_lag_ms,
        age_ms(asked),
        age_ms(answered)
    );
}

#[tokio::test]
async fn a_read_with_a_token_waits_for_an_order_not_projected_yet() {
    let platform = TestPlatform::builder().query().start().await;
    let order = Uuid::now_v7();
    let events = order_events(order, "c-wake", 1, SystemTime::now(), &[reserved(order, 1)]);
    let id = order.to_string();
    let started = tokio::time::Instant::now();
    // The read starts before the events exist and is woken by the
    // projector's commit.
    let (response, ()) = tokio::join!(
        query_view(&platform, &id, 2, Duration::from_secs(30)),
        produce(&platform, ORDER_TOPIC, order, &events),
    );
    let response = response.expect("GetOrder waits for the view to appear");
    assert!(response.current);
    assert_eq!(
        response.order.expect("view").order.expect("order").version,
        2
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered when projected, not at the deadline"
    );
}

#[tokio::test]
async fn a_reader_on_one_replica_is_woken_by_the_projector_of_another() {
    let first = TestPlatform::builder().query().start().await;
    let kafka = first.kafka.as_ref().expect("the platform's Kafka").share();
    let second = TestPlatform::builder()
        .query()
        .database(first.db.clone())
        .kafka(kafka)
        .start()
        .await;
    let admin = first.db.client().await;
    eventually(
        "both replicas holding partitions",
        Duration::from_secs(30),
        || async {
            let owners: i64 = admin
                .query_one(
                    "SELECT count(DISTINCT owner) FROM query.leases \
                     WHERE owner IS NOT NULL AND expires_at > now()",
                    &[],
                )
                .await
                .expect("lease owners")
                .get(0);
            (owners == 2).then_some(())
        },
    )
    .await;
    // Orders on every partition, each read on the second replica before its
    // events exist: the first replica's projections reach those readers
    // only by its announcements.
    let orders: Vec<Uuid> = (0..24).map(|_| Uuid::now_v7()).collect();
    let started = tokio::time::Instant::now();
    let ids: Vec<String> = orders.iter().map(Uuid::to_string).collect();
    let reads = futures::future::join_all(
        ids.iter()
            .map(|id| query_view(&second, id, 2, Duration::from_secs(30))),
    );
    // In one go: one producer per order, each record awaited, is slow on a
    // busy machine, and the readers' deadline runs meanwhile.
    let writes = async {
        let records: Vec<TopicRecord> = orders
            .iter()
            .flat_map(|order| {
                let key = order.to_string();
                let events = order_events(
                    *order,
                    "c-replicas",
                    1,
                    SystemTime::now(),
                    &[reserved(*order, 1)],
                );
                events
                    .iter()
                    .map(|event| TopicRecord::of_event(&key, event))
                    .collect::<Vec<_>>()
            })
            .collect();
        let kafka = first.kafka.as_ref().expect("the platform's Kafka");
        kafka
            .produce_together(&kafka.config.topic(ORDER_TOPIC), &records)
            .await;
        started.elapsed()
    };
    let (responses, written) = tokio::join!(reads, writes);
    let late: Vec<String> = orders
        .iter()
        .zip(responses)
        .filter_map(|(order, response)| match response {
            Ok(response) if response.current => None,
            Ok(_) => Some(format!("{order}: not current")),
            Err(status) => Some(format!("{order}: {}", status.message())),
        })
        .collect();
    assert!(
        late.is_empty(),
        "{} of {} reads answered at their deadline (events written after {written:?}): {late:?}",
        late.len(),
        orders.len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "answered when projected, not at the deadline"
    );
}

#[tokio::test]
async fn a_malformed_event_is_dead_lettered_and_the_rest_flows() {
    let platform = TestPlatform::builder().query().start().await;
    let (bad, good) = (Uuid::now_v7(), Uuid::now_v7());
    let mut poison = order_events(bad, "c-poison", 1, SystemTime::now(), &[]);
    if let Some(Payload::OrderCreated(created)) = poison[0].payload.as_mut() {
        created.order_id = "not-a-uuid".into();
    }
    produce(&platform, ORDER_TOPIC, bad, &poison).await;
    // Keyed like the poison, so on its partition after it: a poison that
    // held up its partition would hold up the good order.
    produce(
        &platform,
        ORDER_TOPIC,
        bad,
        &order_events(good, "c-poison", 1, SystemTime::now(), &[]),
    )
    .await;

    let response = query_view(&platform, &good.to_string(), 1, Duration::from_secs(30))
        .await
        .expect("GetOrder");
    assert!(response.current, "the good order is projected");
    let letters = orderly_integration_tests::eventually(
        "the poison event in the dead letters",
        Duration::from_secs(30),
        || async {
            let letters = platform
                .dead_letter_client(orderly_integration_tests::Component::Query)
                .await
                .list_dead_letters(pb::ListDeadLettersRequest {
                    consumer: "query".into(),
                    ..pb::ListDeadLettersRequest::default()
                })
                .await
                .expect("ListDeadLetters")
                .into_inner()
                .dead_letters;
            (!letters.is_empty()).then_some(letters)
        },
    )
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].aggregate_id, bad.to_string());
    assert!(
        letters[0].error.contains("order_id"),
        "{}",
        letters[0].error
    );
}

#[tokio::test]
async fn get_order_reads_on_after_its_database_connections_are_cut() {
    let platform = TestPlatform::builder().query().start().await;
    let order = Uuid::now_v7();
    let events = order_events(order, "c-cut", 1, SystemTime::now(), &[]);
    produce(&platform, ORDER_TOPIC, order, &events).await;
    let id = order.to_string();
    query_view(&platform, &id, 1, Duration::from_secs(30))
        .await
        .expect("the view");
    // Many at once: they share (and pipeline on) a few connections.
    let reads = (0..64).map(|_| query_view(&platform, &id, 0, Duration::from_secs(10)));
    for read in futures::future::join_all(reads).await {
        read.expect("a concurrent read");
    }

    let admin = platform.db.client().await;
    let cut: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("cut the service's connections")
        .get(0);
    assert!(cut > 0, "the service had no connection to cut");
    // A read on a connection being cut may fail, as unavailable; then the
    // cut connections are replaced and every read succeeds again.
    eventually("twenty reads in a row", Duration::from_secs(15), || async {
        for _ in 0..20 {
            match query_view(&platform, &id, 0, Duration::from_secs(5)).await {
                Ok(response) => assert_eq!(
                    response.order.expect("view").order.expect("order").version,
                    1
                ),
                Err(status) if status.code() == Code::Unavailable => return None,
                Err(status) => panic!("a read failed otherwise than unavailable: {status:?}"),
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test]
async fn a_query_service_with_a_small_pool_still_projects_and_reads() {
    // Two connections: the lease rounds keep one, none is shared. Three:
    // one is shared, one is left for the projector.
    for pool_size in [2, 3] {
        let platform = TestPlatform::builder()
            .query_with(move |config| config.postgres.database_pool_size = pool_size)
            .start()
            .await;
        let order = Uuid::now_v7();
        let events = order_events(order, "c-small", 1, SystemTime::now(), &[]);
        produce(&platform, ORDER_TOPIC, order, &events).await;
        let id = order.to_string();
        let response = query_view(&platform, &id, 1, Duration::from_secs(30))
            .await
            .unwrap_or_else(|status| panic!("pool of {pool_size}: {status:?}"));
        assert!(response.current, "pool of {pool_size}");
        let reads = (0..16).map(|_| query_view(&platform, &id, 0, Duration::from_secs(10)));
        for read in futures::future::join_all(reads).await {
            read.unwrap_or_else(|status| panic!("pool of {pool_size}: {status:?}"));
        }
    }
}

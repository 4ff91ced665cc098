use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::Line;

const BOUND: Duration = Duration::from_secs(60);

const PENDING_DEADLINE: Duration = Duration::from_secs(900);

fn clock() -> Clock {
    Clock {
        now: at(10_000),
        bound: BOUND,
        retention: Duration::from_secs(3_600),
        pending_deadline: PENDING_DEADLINE,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid time")
}

/// An order created and last changed `age` seconds before the clock.
fn order(status: Status, age: i64) -> OrderRecord {
    OrderRecord {
        id: Uuid::nil(),
        customer_id: "c1".into(),
        status,
        currency: "EUR".into(),
        total_minor: 300,
        payment_method: "pm_ok".into(),
        reason: String::new(),
        version: 3,
        created_at: at(10_000 - age),
        updated_at: at(10_000 - age),
        items: vec![
            Line {
                sku: "B".into(),
                quantity: 1,
                unit_price_minor: 100,
            },
            Line {
                sku: "A".into(),
                quantity: 2,
                unit_price_minor: 100,
            },
        ],
    }
}

fn found(state: ReservationState) -> Reservation {
    Reservation::Found {
        state,
        items: vec![("A".into(), 2), ("B".into(), 1)],
    }
}

fn paid(state: PaymentState) -> PaymentRecord {
    PaymentRecord {
        state,
        amount_minor: 300,
        currency: "EUR".into(),
        version: if state == PaymentState::Refunded {
            2
        } else {
            1
        },
    }
}

fn view_of(order: &OrderRecord, payment: Option<&PaymentRecord>) -> ViewRecord {
    ViewRecord {
        customer_id: order.customer_id.clone(),
        status: order.status.as_str().into(),
        items: order.items.clone(),
        currency: order.currency.clone(),
        total_minor: order.total_minor,
        payment_method: order.payment_method.clone(),
        reason: order.reason.clone(),
        version: order.version,
        payment_status: payment.map_or("", |p| p.state.as_str()).into(),
        payment_version: payment.map_or(0, |p| p.version),
    }
}

fn kinds(
    order: &OrderRecord,
    reservation: Reservation,
    payment: Option<PaymentRecord>,
    view: Option<ViewRecord>,
) -> Vec<Kind> {
    let mut out = Vec::new();
    let facts = Facts {
        order,
        reservation: &reservation,
        payment: payment.as_ref(),
        view: view.as_ref(),
    };
    check(facts, &clock(), &mut out);
    out.into_iter().map(|d| d.kind).collect()
}

/// `kinds` with a view that matches the order and payment.
fn kinds_viewed(
    order: &OrderRecord,
    reservation: Reservation,
    payment: Option<PaymentRecord>,
) -> Vec<Kind> {
    let view = view_of(order, payment.as_ref());
    kinds(order, reservation, payment, Some(view))
}

#[test]
fn every_saga_outcome_is_clean() {
    let confirmed = order(Status::Confirmed, 120);
    let committed = found(ReservationState::Committed);
    let succeeded = Some(paid(PaymentState::Succeeded));
    assert_eq!(kinds_viewed(&confirmed, committed, succeeded), vec![]);
    let declined = order(Status::Cancelled, 120);
    let released = found(ReservationState::Released);
    let failed = Some(paid(PaymentState::Failed));
    assert_eq!(kinds_viewed(&declined, released.clone(), failed), vec![]);
    let refunded = Some(paid(PaymentState::Refunded));
    assert_eq!(kinds_viewed(&declined, released, refunded), vec![]);
    let rejected = order(Status::Rejected, 120);
    let refused = found(ReservationState::Rejected);
    assert_eq!(kinds_viewed(&rejected, refused, None), vec![]);
    let tombstoned = order(Status::Cancelled, 120);
    assert_eq!(
        kinds_viewed(&tombstoned, Reservation::Missing, None),
        vec![]
    );
}

#[test]
fn orders_in_flight_are_not_judged_before_the_bound() {
    let pending = order(Status::Pending, 5);
    assert_eq!(kinds(&pending, Reservation::Missing, None, None), vec![]);
    let reserved = order(Status::Reserved, 5);
    let committed = found(ReservationState::Committed);
    let succeeded = Some(paid(PaymentState::Succeeded));
    assert_eq!(kinds(&reserved, committed, succeeded.clone(), None), vec![]);
    // Just cancelled: its release and refund are on their way.
    let cancelled = order(Status::Cancelled, 5);
    let open = found(ReservationState::Reserved);
    assert_eq!(kinds(&cancelled, open, succeeded, None), vec![]);
}

#[test]
fn orders_past_the_bound_are_stuck() {
    let pending = order(Status::Pending, 61);
    assert_eq!(
        kinds_viewed(&pending, Reservation::Missing, None),
        vec![Kind::OrderStuck]
    );
    let reserved = order(Status::Reserved, 61);
    assert_eq!(
        kinds_viewed(&reserved, found(ReservationState::Reserved), None),
        vec![Kind::OrderStuck]
    );
}

#[test]
fn pending_orders_past_the_pending_deadline_are_overdue_instead_of_stuck() {
    let overdue = order(Status::Pending, 900);
    assert_eq!(
        kinds_viewed(&overdue, Reservation::Missing, None),
        vec![Kind::PendingOverdue]
    );
    let younger = order(Status::Pending, 899);
    assert_eq!(
        kinds_viewed(&younger, Reservation::Missing, None),
        vec![Kind::OrderStuck]
    );
    // RESERVED orders answer to the payment deadline, not this one.
    let reserved = order(Status::Reserved, 900);
    assert_eq!(
        kinds_viewed(&reserved, found(ReservationState::Reserved), None),
        vec![Kind::OrderStuck]
    );
    // Once the sweeper cancelled it, with a release tombstone: clean.
    let mut cancelled = order(Status::Cancelled, 900);
    cancelled.reason = "pending deadline passed".into();
    assert_eq!(
        kinds_viewed(&cancelled, found(ReservationState::Released), None),
        vec![]
    );
}

#[test]
fn the_pending_deadline_applies_even_below_the_bound() {
    // A lenient bound does not hide an order the sweeper missed.
    let clock = Clock {
        bound: Duration::from_secs(3_600),
        pending_deadline: Duration::from_secs(30),
        ..clock()
    };
    let pending = order(Status::Pending, 40);
    let view = view_of(&pending, None);
    let mut out = Vec::new();
    let facts = Facts {
        order: &pending,
        reservation: &Reservation::Missing,
        payment: None,
        view: Some(&view),
    };
    check(facts, &clock, &mut out);
    let kinds: Vec<Kind> = out.into_iter().map(|d| d.kind).collect();
    assert_eq!(kinds, vec![Kind::PendingOverdue]);
}

#[test]
fn reservations_must_match_the_final_status() {
    let confirmed = order(Status::Confirmed, 120);
    let succeeded = || Some(paid(PaymentState::Succeeded));
    assert_eq!(
        kinds_viewed(&confirmed, Reservation::Missing, succeeded()),
        vec![Kind::ReservationMissing]
    );
    assert_eq!(
        kinds_viewed(&confirmed, found(ReservationState::Reserved), succeeded()),
        vec![Kind::ReservationOpen]
    );
    assert_eq!(
        kinds_viewed(&confirmed, found(ReservationState::Released), succeeded()),
        vec![Kind::ReservationStateMismatch]
    );
    let cancelled = order(Status::Cancelled, 120);
    assert_eq!(
        kinds_viewed(&cancelled, found(ReservationState::Reserved), None),
        vec![Kind::ReservationOpen]
    );
    assert_eq!(
        kinds_viewed(&cancelled, found(ReservationState::Committed), None),
        vec![Kind::ReservationStateMismatch]
    );
    let other_items = Reservation::Found {
        state: ReservationState::Committed,
        items: vec![("A".into(), 3)],
    };
    assert_eq!(
        kinds_viewed(&confirmed, other_items, succeeded()),
        vec![Kind::ReservationItemsMismatch]
    );
    let corrupt = Reservation::Corrupt("bad state".into());
    assert_eq!(
        kinds_viewed(&confirmed, corrupt, succeeded()),
        vec![Kind::ReservationCorrupt]
    );
}

#[test]
fn expired_records_of_old_final_orders_are_not_missing() {
    let old = order(Status::Confirmed, 7_200);
    let succeeded = Some(paid(PaymentState::Succeeded));
    assert_eq!(kinds_viewed(&old, Reservation::Missing, succeeded), vec![]);
}

#[test]
fn payments_must_match_the_status() {
    let confirmed = order(Status::Confirmed, 120);
    let committed = || found(ReservationState::Committed);
    assert_eq!(
        kinds_viewed(&confirmed, committed(), None),
        vec![Kind::PaymentMissing]
    );
    assert_eq!(
        kinds_viewed(&confirmed, committed(), Some(paid(PaymentState::Failed))),
        vec![Kind::PaymentNotSucceeded]
    );
    let cancelled = order(Status::Cancelled, 120);
    let released = || found(ReservationState::Released);
    assert_eq!(
        kinds_viewed(&cancelled, released(), Some(paid(PaymentState::Succeeded))),
        vec![Kind::PaymentNotRefunded]
    );
    let rejected = order(Status::Rejected, 120);
    assert_eq!(
        kinds_viewed(
            &rejected,
            found(ReservationState::Rejected),
            Some(paid(PaymentState::Failed))
        ),
        vec![Kind::PaymentUnexpected]
    );
    let mut cheap = paid(PaymentState::Succeeded);
    cheap.amount_minor = 1;
    assert_eq!(
        kinds_viewed(&confirmed, committed(), Some(cheap)),
        vec![Kind::PaymentAmountMismatch]
    );
}

#[test]
fn views_must_equal_the_order() {
    let confirmed = order(Status::Confirmed, 120);
    let committed = || found(ReservationState::Committed);
    let succeeded = paid(PaymentState::Succeeded);
    assert_eq!(
        kinds(&confirmed, committed(), Some(succeeded.clone()), None),
        vec![Kind::ViewMissing]
    );
    let mut behind = view_of(&confirmed, Some(&succeeded));
    behind.version = 2;
    behind.status = "RESERVED".into();
    assert_eq!(
        kinds(
            &confirmed,
            committed(),
            Some(succeeded.clone()),
            Some(behind)
        ),
        vec![Kind::ViewMismatch]
    );
    let mut unpaid = view_of(&confirmed, Some(&succeeded));
    unpaid.payment_status = String::new();
    assert_eq!(
        kinds(&confirmed, committed(), Some(succeeded), Some(unpaid)),
        vec![Kind::ViewPaymentMismatch]
    );
}

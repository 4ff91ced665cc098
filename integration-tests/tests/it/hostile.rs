//! Hostile input and abusive clients. Every RPC of every service gets
//! random, huge, unicode and control-character strings, extreme and
//! negative numbers, repeated, missing and oversized lists (ids malformed
//! in most cases), and must answer OK or a code of its documented set
//! (docs/errors.md) — never UNKNOWN or INTERNAL, never a panic, never OK to
//! a value the contract calls invalid (`contract`) — with INVALID_ARGUMENT
//! naming the field, and keep serving. Oversized messages are refused, deadlines end waits, and
//! one connection cannot take the slots of others.
//!
//! The tests of a process share one platform with every component.
//! `PROPTEST_CASES` sets the cases per RPC (default 48).

mod contract;
mod dead_letter;
mod inventory;
mod limits;
mod order;
mod payment;
mod query;
mod relay;
mod strategies;
mod support;
mod verify;

use orderly_integration_tests::{TestPlatform, order_request};
use support::shared;

/// The id of a fresh valid order, for strategies to mix with hostile ids.
async fn known_order(platform: &TestPlatform) -> String {
    platform
        .order_client()
        .await
        .create_order(order_request("hostile-known"))
        .await
        .expect("a valid order")
        .into_inner()
        .order
        .expect("order")
        .order_id
}

#[test]
fn order_service_answers_hostile_input_with_documented_codes() {
    order::run();
}

#[test]
fn inventory_service_answers_hostile_input_with_documented_codes() {
    inventory::run();
}

#[test]
fn payment_service_answers_hostile_input_with_documented_codes() {
    payment::run();
}

#[test]
fn query_service_answers_hostile_input_with_documented_codes() {
    query::run();
}

#[test]
fn relay_admin_answers_hostile_input_with_documented_codes() {
    relay::run();
}

#[test]
fn dead_letter_service_answers_hostile_input_with_documented_codes() {
    dead_letter::run();
}

#[test]
fn verify_service_answers_hostile_input_with_documented_codes() {
    verify::run();
}

#[test]
fn oversized_messages_are_refused_with_out_of_range() {
    shared().block_on(limits::oversized_messages());
}

#[test]
fn lists_over_their_bound_are_invalid_argument() {
    shared().block_on(limits::lists_over_their_bound());
}

#[test]
fn waits_end_at_the_client_deadline_or_the_server_cap() {
    shared().block_on(limits::waits_end_at_the_deadline());
}

#[tokio::test]
async fn a_blocked_call_ends_at_the_client_deadline_with_deadline_exceeded() {
    limits::a_blocked_call_ends_at_the_client_deadline().await;
}

#[test]
fn one_connection_cannot_starve_another() {
    shared().block_on(limits::one_connection_cannot_starve_another());
}

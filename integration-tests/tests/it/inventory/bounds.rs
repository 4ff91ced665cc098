//! The order service and the inventory service share one set of item bounds
//! (`orderly::bounds`): every order the order domain accepts turns into
//! Reserve items the inventory domain accepts. Pure: no services needed.

use orderly_inventory::domain::validate_reserve;
use orderly_order::domain::{CreateOrder, NewOrder};
use proptest::prelude::*;

/// The order ids the order service assigns are UUIDs.
const ORDER_ID: &str = "0192f0c1-7a3b-7c2d-8e4f-5a6b7c8d9e0f";

/// An order request around `items`, every other field valid.
fn create_order(items: Vec<(String, u32, i64)>) -> CreateOrder {
    CreateOrder {
        customer_id: "cust-1".into(),
        items,
        currency: "EUR".into(),
        payment_method: "pm_ok".into(),
        idempotency_key: String::new(),
    }
}

/// The Reserve request the saga sends for an accepted order: one item per
/// order line, SKU and quantity as accepted.
fn reserve_items(order: &NewOrder) -> Vec<(&str, u32)> {
    order
        .items
        .iter()
        .map(|line| (line.sku.as_str(), line.quantity))
        .collect()
}

/// SKUs near and across every bound: valid ones, too long ones, empty ones,
/// forbidden ASCII (',' '=' ' ' '{') and non-ASCII characters.
fn any_sku() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._-]{1,64}",
        1 => "[A-Za-z0-9._-]{63,66}",
        1 => "[A-Za-z0-9._,={} é-]{0,8}",
        1 => any::<String>(),
    ]
}

fn any_quantity() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 1..=1000u32, 1 => 0..=1002u32, 1 => any::<u32>()]
}

fn any_lines() -> impl Strategy<Value = Vec<(String, u32, i64)>> {
    prop_oneof![
        4 => prop::collection::vec((any_sku(), any_quantity(), 0..10_000i64), 1..=8),
        1 => prop::collection::vec((any_sku(), any_quantity(), 0..10_000i64), 0..=101),
    ]
}

/// Lines within the bounds, duplicate SKUs included (Reserve merges them).
fn valid_lines() -> impl Strategy<Value = Vec<(String, u32, i64)>> {
    let sku = prop_oneof!["[A-Za-z0-9._-]{1,64}", Just("SKU-1".to_owned())];
    prop::collection::vec((sku, 1..=1000u32, 0..10_000i64), 1..=100)
}

proptest! {
    #[test]
    fn an_accepted_order_can_always_be_reserved(lines in any_lines()) {
        if let Ok(order) = create_order(lines).validate() {
            let items = reserve_items(&order);
            let reserve = validate_reserve(ORDER_ID, &items);
            prop_assert!(reserve.is_ok(), "{:?} refused: {:?}", items, reserve);
        }
    }

    #[test]
    fn orders_within_the_bounds_pass_both_services(lines in valid_lines()) {
        let order = create_order(lines).validate();
        prop_assert!(order.is_ok(), "{:?}", order);
        let order = order.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let items = reserve_items(&order);
        let reserve = validate_reserve(ORDER_ID, &items);
        prop_assert!(reserve.is_ok(), "{:?} refused: {:?}", items, reserve);
    }
}

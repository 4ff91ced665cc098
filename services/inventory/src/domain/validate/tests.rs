use super::*;
use crate::domain::MAX_ITEMS;

const ORDER: &str = "0192f0c1-7a3b-7c2d-8e4f-5a6b7c8d9e0f";

fn fields(violations: &Violations) -> Vec<&str> {
    violations.0.iter().map(|v| v.field.as_str()).collect()
}

#[test]
fn a_valid_reservation_merges_duplicates_and_sorts_by_sku() {
    let command = validate_reserve(ORDER, &[("B-2", 3), ("A.1", 1), ("B-2", 4)]).expect("valid");
    assert_eq!(command.order_id.to_string(), ORDER);
    let items: Vec<(&str, u32)> = command
        .items
        .iter()
        .map(|i| (i.sku.as_str(), i.quantity))
        .collect();
    assert_eq!(items, vec![("A.1", 1), ("B-2", 7)]);
}

#[test]
fn order_ids_are_canonicalised() {
    let upper = ORDER.to_uppercase();
    let id = validate_order_id(&upper).expect("valid");
    assert_eq!(id.to_string(), ORDER);
}

#[test]
fn every_bad_field_is_named() {
    let long = "x".repeat(65);
    let err = validate_reserve(
        "not-a-uuid",
        &[("ok", 0), ("has space", 1), (long.as_str(), 1001), ("", 5)],
    )
    .expect_err("invalid");
    assert_eq!(
        fields(&err),
        vec![
            "order_id",
            "items[0].quantity",
            "items[1].sku",
            "items[2].quantity",
            "items[2].sku",
            "items[3].sku"
        ]
    );
}

#[test]
fn item_count_is_bounded() {
    assert!(
        validate_reserve(ORDER, &[])
            .expect_err("empty")
            .names("items")
    );
    let many = vec![("A", 1); MAX_ITEMS + 1];
    let err = validate_reserve(ORDER, &many).expect_err("too many");
    assert_eq!(fields(&err), vec!["items"]);
    let max = vec![("A", 1); MAX_ITEMS];
    let command = validate_reserve(ORDER, &max).expect("100 items are fine");
    assert_eq!(command.items[0].quantity, 100);
}

#[test]
fn sku_bounds() {
    assert!(Sku::parse(&"a".repeat(64)).is_ok());
    assert!(Sku::parse(&"a".repeat(65)).is_err());
    assert!(Sku::parse("").is_err());
    assert!(Sku::parse("a,b").is_err());
    assert!(Sku::parse("a=b").is_err());
    assert!(Sku::parse("é").is_err());
    assert!(Sku::parse("Az09._-").is_ok());
}

#[test]
fn set_stock_bounds() {
    assert!(validate_set_stock("A", 0).is_ok());
    assert!(validate_set_stock("A", MAX_STOCK_QUANTITY).is_ok());
    assert!(
        validate_set_stock("A", -1)
            .expect_err("negative")
            .names("quantity")
    );
    assert!(
        validate_set_stock("A", MAX_STOCK_QUANTITY + 1)
            .expect_err("too big")
            .names("quantity")
    );
    let err = validate_set_stock("a b", -1).expect_err("both");
    assert_eq!(fields(&err), vec!["sku", "quantity"]);
}

#[test]
fn adjust_stock_bounds() {
    assert!(validate_adjust_stock("A", -5, "").is_ok());
    assert!(
        validate_adjust_stock("A", 0, "")
            .expect_err("zero")
            .names("delta")
    );
    assert!(
        validate_adjust_stock("A", i64::MIN, "")
            .expect_err("huge")
            .names("delta")
    );
}

#[test]
fn get_stock_bounds() {
    assert!(validate_get_stock(&[]).expect_err("empty").names("skus"));
    assert!(
        validate_get_stock(&["A"; MAX_SKUS_PER_READ + 1])
            .expect_err("too many")
            .names("skus")
    );
    let err = validate_get_stock(&["A", "b c"]).expect_err("bad sku");
    assert_eq!(fields(&err), vec!["skus[1]"]);
    let skus = validate_get_stock(&["B", "A"]).expect("valid");
    assert_eq!(skus[0].as_str(), "B");
}

#[test]
fn huge_quantities_of_one_sku_are_refused_without_overflow() {
    let violations = validate_reserve(ORDER, &[("A", u32::MAX), ("A", 1)]).expect_err("invalid");
    assert!(violations.names("items[0].quantity"), "{violations:?}");
}

#[test]
fn adjustment_request_ids_are_optional_and_bounded() {
    let (_, _, id) = validate_adjust_stock("A", 1, "").expect("valid");
    assert_eq!(id, None);
    let (_, _, id) = validate_adjust_stock("A", 1, "restock-42").expect("valid");
    assert_eq!(id.as_deref(), Some("restock-42"));
    for bad in ["has space".to_owned(), "x".repeat(129)] {
        let violations = validate_adjust_stock("A", 1, &bad).expect_err("invalid");
        assert!(violations.names("request_id"), "{violations:?}");
    }
}

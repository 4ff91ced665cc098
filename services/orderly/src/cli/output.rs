//! Tables and JSON for the client commands. Protobuf types do not derive
//! serde, so each message printed is mapped to JSON here, field by field,
//! with the proto's field names.

use comfy_table::{Table, presets::NOTHING};
use orderly::proto::v1::{Order, OrderStatus, StockLevel};
use prost_types::Timestamp;
use serde_json::{Value, json};

/// A borderless table with `header`, like `kubectl get`: easy to read and
/// to grep.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    if !header.is_empty() {
        table.set_header(header.to_vec());
    }
    table
}

/// Prints `table` without trailing spaces.
pub fn print_table(table: &Table) {
    // The preset pads every cell by one space; the first column's left
    // padding would indent the whole table.
    for line in table.lines() {
        let line = line.strip_prefix(' ').unwrap_or(&line);
        println!("{}", line.trim_end());
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// RFC 3339 in UTC with milliseconds, or empty when unset.
pub fn time(timestamp: Option<&Timestamp>) -> String {
    timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// JSON for a timestamp: the RFC 3339 string, or null when unset.
pub fn time_json(timestamp: Option<&Timestamp>) -> Value {
    match time(timestamp) {
        text if text.is_empty() => Value::Null,
        text => Value::String(text),
    }
}

/// An order status without its enum prefix: `CONFIRMED`.
pub fn status_name(status: i32) -> &'static str {
    OrderStatus::try_from(status)
        .unwrap_or(OrderStatus::Unspecified)
        .as_str_name()
        .trim_start_matches("ORDER_STATUS_")
}

/// Whether an order in `status` will not change any more.
pub fn is_final(status: i32) -> bool {
    matches!(
        OrderStatus::try_from(status),
        Ok(OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Cancelled)
    )
}

/// An order as JSON, with the proto's field names.
pub fn order_json(order: &Order) -> Value {
    json!({
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": status_name(order.status),
        "items": order.items.iter().map(|item| json!({
            "sku": item.sku,
            "quantity": item.quantity,
            "unit_price_minor": item.unit_price_minor,
        })).collect::<Vec<_>>(),
        "currency": order.currency,
        "total_minor": order.total_minor,
        "version": order.version,
        "reason": order.reason,
        "payment_method": order.payment_method,
        "created_at": time_json(order.created_at.as_ref()),
        "updated_at": time_json(order.updated_at.as_ref()),
    })
}

/// An order as a field list and an item table, or as JSON.
pub fn print_order(order: &Order, json: bool) {
    if json {
        print_json(&order_json(order));
        return;
    }
    let mut fields = table(&[]);
    fields.add_row(vec!["order", &order.order_id]);
    fields.add_row(vec!["customer", &order.customer_id]);
    fields.add_row(vec!["status", status_name(order.status)]);
    if !order.reason.is_empty() {
        fields.add_row(vec!["reason", &order.reason]);
    }
    let total = format!("{} {} (minor units)", order.total_minor, order.currency);
    fields.add_row(vec!["total", &total]);
    fields.add_row(vec!["payment", &order.payment_method]);
    fields.add_row(vec!["version", &order.version.to_string()]);
    fields.add_row(vec!["created", &time(order.created_at.as_ref())]);
    fields.add_row(vec!["updated", &time(order.updated_at.as_ref())]);
    print_table(&fields);
    println!();
    let mut items = table(&["SKU", "QUANTITY", "UNIT PRICE", "LINE TOTAL"]);
    for item in &order.items {
        let line = i64::from(item.quantity).saturating_mul(item.unit_price_minor);
        items.add_row(vec![
            item.sku.clone(),
            item.quantity.to_string(),
            item.unit_price_minor.to_string(),
            line.to_string(),
        ]);
    }
    print_table(&items);
}

/// A stock level as JSON.
pub fn level_json(level: &StockLevel) -> Value {
    json!({
        "sku": level.sku,
        "available": level.available,
        "reserved": level.reserved,
        "sold": level.sold,
    })
}

/// Stock levels as a table, or as `{"levels": [...]}`.
pub fn print_levels(levels: &[StockLevel], json: bool) {
    if json {
        print_json(&json!({ "levels": levels.iter().map(level_json).collect::<Vec<_>>() }));
        return;
    }
    let mut rows = table(&["SKU", "AVAILABLE", "RESERVED", "SOLD"]);
    for level in levels {
        rows.add_row(vec![
            level.sku.clone(),
            level.available.to_string(),
            level.reserved.to_string(),
            level.sold.to_string(),
        ]);
    }
    print_table(&rows);
}

/// A duration in milliseconds, short: `850 ms`, `12.3 s`, `4 min`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=119_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min", ms / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_lose_their_prefix() {
        assert_eq!(status_name(OrderStatus::Confirmed as i32), "CONFIRMED");
        assert_eq!(status_name(99), "UNSPECIFIED");
        assert!(is_final(OrderStatus::Cancelled as i32));
        assert!(!is_final(OrderStatus::Reserved as i32));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5_000_000,
        };
        assert_eq!(time(Some(&t)), "2023-11-14T22:13:20.005Z");
        assert_eq!(time_json(None), Value::Null);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(12_345), "12.3 s");
        assert_eq!(millis(600_000), "10 min");
    }
}

//! Request validation: every violated field is reported, named by its path
//! in the request (`items[3].quantity`), so a client can fix all at once.

use std::collections::BTreeMap;

use orderly::{bounds, status::Violations};

use super::{Item, MAX_SKUS_PER_READ, MAX_STOCK_QUANTITY, OrderId, Sku};

/// A valid Reserve request: duplicate SKUs merged, items sorted by SKU (the
/// canonical form the scripts record and compare replays against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveCommand {
    /// The order, idempotency key of the reservation.
    pub order_id: OrderId,
    /// 1-100 distinct SKUs with their merged quantities.
    pub items: Vec<Item>,
}

/// Checks an order id (field `order_id`).
pub fn validate_order_id(raw: &str) -> Result<OrderId, Violations> {
    let mut violations = Violations::default();
    let id = check_order_id(raw, &mut violations);
    violations.into_result(()).and_then(|()| id.ok_or_default())
}

/// Checks a Reserve request given as `(sku, quantity)` pairs.
pub fn validate_reserve(
    order_id: &str,
    items: &[(&str, u32)],
) -> Result<ReserveCommand, Violations> {
    let mut violations = Violations::default();
    let order_id = check_order_id(order_id, &mut violations);
    let mut merged: BTreeMap<Sku, u32> = BTreeMap::new();
    if let Some(problem) = bounds::item_count_problem(items.len()) {
        // Per-item checks of an oversized list would only add noise.
        violations.add("items", problem);
    } else {
        for (i, (sku, quantity)) in items.iter().enumerate() {
            let quantity_problem = bounds::quantity_problem(*quantity);
            if let Some(problem) = quantity_problem {
                violations.add(format!("items[{i}].quantity"), problem);
            }
            match Sku::parse(sku) {
                // Bounded quantities × at most MAX_ITEMS lines fit in u32;
                // an out-of-range one is never added (it is already refused).
                Ok(sku) if quantity_problem.is_none() => {
                    *merged.entry(sku).or_default() += quantity;
                }
                Ok(_) => {}
                Err(why) => violations.add(format!("items[{i}].sku"), why),
            }
        }
    }
    violations.into_result(())?;
    let order_id = order_id.ok_or_default()?;
    let items = merged
        .into_iter()
        .map(|(sku, quantity)| Item { sku, quantity })
        .collect();
    Ok(ReserveCommand { order_id, items })
}

/// Checks a SetStock request (fields `sku`, `quantity`).
pub fn validate_set_stock(sku: &str, quantity: i64) -> Result<(Sku, i64), Violations> {
    let mut violations = Violations::default();
    let sku = check_sku("sku", sku, &mut violations);
    if !(0..=MAX_STOCK_QUANTITY).contains(&quantity) {
        violations.add(
            "quantity",
            format!("must be between 0 and {MAX_STOCK_QUANTITY}"),
        );
    }
    violations.into_result(())?;
    Ok((sku.ok_or_default()?, quantity))
}

/// Checks an AdjustStock request (fields `sku`, `delta`, `request_id`);
/// an empty request id means none.
pub fn validate_adjust_stock(
    sku: &str,
    delta: i64,
    request_id: &str,
) -> Result<(Sku, i64, Option<String>), Violations> {
    let mut violations = Violations::default();
    let sku = check_sku("sku", sku, &mut violations);
    let request_id = match request_id {
        "" => None,
        id if id.len() > MAX_REQUEST_ID_LEN || !id.chars().all(|c| c.is_ascii_graphic()) => {
            violations.add(
                "request_id",
                format!("must be 1-{MAX_REQUEST_ID_LEN} printable ASCII characters without spaces"),
            );
            None
        }
        id => Some(id.to_owned()),
    };
    if delta == 0 || delta.unsigned_abs() > MAX_STOCK_QUANTITY.unsigned_abs() {
        violations.add(
            "delta",
            format!("must be non-zero with magnitude at most {MAX_STOCK_QUANTITY}"),
        );
    }
    violations.into_result(())?;
    Ok((sku.ok_or_default()?, delta, request_id))
}

/// Longest AdjustStock request id.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Checks a GetStock request (fields `skus`, `skus[i]`); keeps the order.
pub fn validate_get_stock(skus: &[&str]) -> Result<Vec<Sku>, Violations> {
    let mut violations = Violations::default();
    if skus.is_empty() || skus.len() > MAX_SKUS_PER_READ {
        violations.add("skus", format!("must hold 1-{MAX_SKUS_PER_READ} SKUs"));
        return Err(violations);
    }
    let parsed: Vec<Option<Sku>> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| check_sku(&format!("skus[{i}]"), sku, &mut violations))
        .collect();
    violations.into_result(())?;
    Ok(parsed.into_iter().flatten().collect())
}

fn check_order_id(raw: &str, violations: &mut Violations) -> Option<OrderId> {
    OrderId::parse(raw)
        .map_err(|why| violations.add("order_id", why))
        .ok()
}

fn check_sku(field: &str, raw: &str, violations: &mut Violations) -> Option<Sku> {
    Sku::parse(raw)
        .map_err(|why| violations.add(field, why))
        .ok()
}

/// A value that is present whenever no violation was recorded; turning a
/// (never expected) absence into an empty error keeps this panic-free.
trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, Violations>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, Violations> {
        self.ok_or_else(|| {
            let mut violations = Violations::default();
            violations.add("request", "is invalid");
            violations
        })
    }
}

#[cfg(test)]
mod tests;

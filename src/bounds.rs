//! The bounds of an order's items, shared by the order service (which accepts
//! orders) and the inventory service (which reserves their stock), so an
//! order the order service accepted can never fail Reserve validation.
//! Pure: no I/O.

/// Most lines (items) one order or reservation may have.
pub const MAX_ITEMS: usize = 100;
/// Most units of one line.
pub const MAX_QUANTITY: u32 = 1000;
/// Longest SKU, in characters (all ASCII, so also bytes).
pub const MAX_SKU_LEN: usize = 64;

/// Whether `c` may appear in a SKU: `[A-Za-z0-9._-]`. The set leaves out
/// `,` and `=` (the inventory scripts record items as `sku=qty,...`) and
/// braces (Redis hash tags), so a SKU can be embedded in keys and records
/// as is.
pub fn is_sku_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// What is wrong with `sku`, or `None` when it is valid.
pub fn sku_problem(sku: &str) -> Option<&'static str> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        Some("must be 1-64 characters")
    } else if !sku.chars().all(is_sku_char) {
        Some("must contain only A-Z, a-z, 0-9, '.', '_' and '-'")
    } else {
        None
    }
}

/// What is wrong with one line's `quantity`, or `None` when it is valid.
pub fn quantity_problem(quantity: u32) -> Option<&'static str> {
    (!(1..=MAX_QUANTITY).contains(&quantity)).then_some("must be 1-1000")
}

/// What is wrong with a number of lines, or `None` when it is valid.
pub fn item_count_problem(count: usize) -> Option<&'static str> {
    (!(1..=MAX_ITEMS).contains(&count)).then_some("must hold 1-100 items")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_bounds() {
        assert_eq!(sku_problem(&"a".repeat(MAX_SKU_LEN)), None);
        assert_eq!(sku_problem("Az09._-"), None);
        for bad in [
            String::new(),
            "a".repeat(MAX_SKU_LEN + 1),
            "a b".into(),
            "a,b".into(),
            "a=b".into(),
            "{a}".into(),
            "é".into(),
        ] {
            assert!(sku_problem(&bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn quantity_bounds() {
        assert_eq!(quantity_problem(1), None);
        assert_eq!(quantity_problem(MAX_QUANTITY), None);
        assert!(quantity_problem(0).is_some());
        assert!(quantity_problem(MAX_QUANTITY + 1).is_some());
        assert!(quantity_problem(u32::MAX).is_some());
    }

    #[test]
    fn item_count_bounds() {
        assert_eq!(item_count_problem(1), None);
        assert_eq!(item_count_problem(MAX_ITEMS), None);
        assert!(item_count_problem(0).is_some());
        assert!(item_count_problem(MAX_ITEMS + 1).is_some());
    }

    #[test]
    fn messages_state_the_constants() {
        let sku = sku_problem("").unwrap_or_default();
        assert!(sku.contains(&MAX_SKU_LEN.to_string()), "{sku}");
        let quantity = quantity_problem(0).unwrap_or_default();
        assert!(quantity.contains(&MAX_QUANTITY.to_string()), "{quantity}");
        let count = item_count_problem(0).unwrap_or_default();
        assert!(count.contains(&MAX_ITEMS.to_string()), "{count}");
    }
}

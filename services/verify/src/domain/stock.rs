//! Checking one SKU's counters: `available + reserved + sold == stocked`,
//! none negative, and `reserved` equal to the units its open reservations
//! hold.

use super::{Discrepancy, Kind};

/// A SKU's stock hash as the ledger holds it; a field that is absent is
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRecord {
    /// The SKU.
    pub sku: String,
    /// Units that can be reserved.
    pub available: Option<i64>,
    /// Units held by open reservations.
    pub reserved: Option<i64>,
    /// Units of committed reservations.
    pub sold: Option<i64>,
    /// Units ever stocked (set and adjusted), the counters' sum.
    pub stocked: Option<i64>,
}

/// Appends every discrepancy of one SKU to `out`; `open_reserved` is the sum
/// of the SKU's units over every open (RESERVED) reservation record.
pub fn check(record: &StockRecord, open_reserved: i64, out: &mut Vec<Discrepancy>) {
    let sku = record.sku.as_str();
    let available = record.available.unwrap_or(0);
    let reserved = record.reserved.unwrap_or(0);
    let sold = record.sold.unwrap_or(0);
    let negative: Vec<String> = [
        ("available", available),
        ("reserved", reserved),
        ("sold", sold),
    ]
    .into_iter()
    .filter(|(_, value)| *value < 0)
    .map(|(name, value)| format!("{name} = {value}"))
    .collect();
    if !negative.is_empty() {
        out.push(Discrepancy::sku(
            Kind::StockNegative,
            sku,
            negative.join(", "),
        ));
    }
    match record.stocked {
        None => out.push(Discrepancy::sku(
            Kind::StockedMissing,
            sku,
            format!(
                "no stocked total recorded (available {available} + reserved {reserved} + sold {sold}); \
                 set the SKU's stock once to record it"
            ),
        )),
        Some(stocked) if available + reserved + sold != stocked => out.push(Discrepancy::sku(
            Kind::StockUnbalanced,
            sku,
            format!(
                "available {available} + reserved {reserved} + sold {sold} = {} != stocked {stocked}",
                available + reserved + sold
            ),
        )),
        Some(_) => {}
    }
    if reserved != open_reserved {
        out.push(Discrepancy::sku(
            Kind::ReservedMismatch,
            sku,
            format!("reserved {reserved}, open reservations hold {open_reserved}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(available: i64, reserved: i64, sold: i64, stocked: Option<i64>) -> StockRecord {
        StockRecord {
            sku: "SKU-1".into(),
            available: Some(available),
            reserved: Some(reserved),
            sold: Some(sold),
            stocked,
        }
    }

    fn kinds(record: &StockRecord, open: i64) -> Vec<Kind> {
        let mut out = Vec::new();
        check(record, open, &mut out);
        out.into_iter().map(|d| d.kind).collect()
    }

    #[test]
    fn a_balanced_sku_is_clean() {
        assert!(kinds(&record(5, 2, 3, Some(10)), 2).is_empty());
    }

    #[test]
    fn each_broken_invariant_has_its_kind() {
        assert_eq!(
            kinds(&record(6, 2, 3, Some(10)), 2),
            vec![Kind::StockUnbalanced]
        );
        assert_eq!(kinds(&record(5, 2, 3, None), 2), vec![Kind::StockedMissing]);
        assert_eq!(
            kinds(&record(-1, 0, 11, Some(10)), 0),
            vec![Kind::StockNegative]
        );
        assert_eq!(
            kinds(&record(5, 2, 3, Some(10)), 1),
            vec![Kind::ReservedMismatch]
        );
    }
}

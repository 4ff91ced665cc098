//! Decoding reservation records as the scripts write them (HGETALL pairs);
//! public so that `orderly verify` reads the records as the service does.

use crate::{
    domain::{
        Item, OrderId, Outcome, Rejection, RejectionCode, Reservation, ReservationState, Sku,
    },
    error::Error,
};

/// The value of `name` in HGETALL output.
pub fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    fields
        .chunks_exact(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

/// The SKUs of an items field (`sku=qty,...`), in order.
pub fn item_skus(items: &str) -> impl Iterator<Item = &str> {
    items
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| part.split_once('=').map_or(part, |(sku, _)| sku))
}

/// Builds the domain record; anything unexpected is corrupt data.
pub fn decode(order_id: OrderId, fields: &[String]) -> Result<Reservation, Error> {
    let corrupt = |what: &str| Error::Internal(format!("reservation of order {order_id}: {what}"));
    let state = match field(fields, "state") {
        Some("RESERVED") => ReservationState::Reserved,
        Some("COMMITTED") => ReservationState::Committed,
        Some("RELEASED") => ReservationState::Released,
        Some("REJECTED") => ReservationState::Rejected,
        other => return Err(corrupt(&format!("bad state {other:?}"))),
    };
    let outcome = match field(fields, "outcome") {
        None => None,
        Some("RESERVED") => Some(Outcome::Reserved),
        Some("REJECTED") => Some(Outcome::Rejected),
        Some(other) => return Err(corrupt(&format!("bad outcome {other:?}"))),
    };
    let items = field(fields, "items")
        .unwrap_or_default()
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (sku, quantity) = part.split_once('=').ok_or_else(|| corrupt("bad items"))?;
            Ok(Item {
                sku: Sku::parse(sku).map_err(|_| corrupt("bad sku"))?,
                quantity: quantity.parse().map_err(|_| corrupt("bad quantity"))?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let rejection = match field(fields, "code") {
        None => None,
        Some(code) => Some(Rejection {
            code: match code {
                "UNKNOWN_SKU" => RejectionCode::UnknownSku,
                "INSUFFICIENT_STOCK" => RejectionCode::InsufficientStock,
                "ALREADY_RELEASED" => RejectionCode::AlreadyReleased,
                other => return Err(corrupt(&format!("bad rejection code {other:?}"))),
            },
            reason: field(fields, "reason").unwrap_or_default().to_owned(),
            sku: field(fields, "sku").unwrap_or_default().to_owned(),
            shortfall: field(fields, "shortfall")
                .unwrap_or("0")
                .parse()
                .map_err(|_| corrupt("bad shortfall"))?,
        }),
    };
    Ok(Reservation {
        order_id,
        state,
        items,
        outcome,
        rejection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn decodes_a_rejected_record() {
        let fields = strings(&[
            "state",
            "REJECTED",
            "outcome",
            "REJECTED",
            "items",
            "A=2,B=1",
            "code",
            "INSUFFICIENT_STOCK",
            "reason",
            "short",
            "sku",
            "A",
            "shortfall",
            "1",
        ]);
        let record = decode(OrderId::from(uuid::Uuid::nil()), &fields).expect("valid");
        assert_eq!(record.items.len(), 2);
        assert_eq!(record.rejection.map(|r| r.shortfall), Some(1));
        assert_eq!(item_skus("A=2,B=1").collect::<Vec<_>>(), vec!["A", "B"]);
        assert_eq!(item_skus("").count(), 0);
    }

    #[test]
    fn corrupt_records_are_internal_errors() {
        let fields = strings(&["state", "LIMBO"]);
        let error = decode(OrderId::from(uuid::Uuid::nil()), &fields).expect_err("corrupt");
        assert!(matches!(error, Error::Internal(_)));
    }
}

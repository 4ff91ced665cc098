//! Validation of client requests (every violation collected, so a client
//! learns about all bad fields at once) and of the events asking for a
//! charge.

use orderly::status::Violations;
use uuid::Uuid;

use super::ChargeRequest;

/// Longest refund reason, in characters.
pub const MAX_REASON_LEN: usize = 256;
/// Longest payment method token (the order service enforces the same).
const MAX_METHOD_LEN: usize = 64;

/// Parses an order id from a request field.
pub fn parse_order_id(field: &str, raw: &str) -> Result<Uuid, Violations> {
    let mut v = Violations::default();
    let id = check_uuid(&mut v, field, raw);
    v.into_result(id.unwrap_or_default())
}

fn check_uuid(v: &mut Violations, field: &str, raw: &str) -> Option<Uuid> {
    let parsed = Uuid::parse_str(raw).ok();
    if parsed.is_none() {
        v.add(
            field,
            "must be a UUID such as 0190f1b2-7c3a-7d4e-8f00-123456789abc",
        );
    }
    parsed
}

/// A refund request as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct RefundCommand {
    /// Raw order id.
    pub order_id: String,
    /// Free text; empty means a default reason.
    pub reason: String,
}

impl RefundCommand {
    /// The reason recorded when the client gives none.
    pub const DEFAULT_REASON: &'static str = "refunded on request";

    /// Checks both fields; returns the order id and the reason to record.
    pub fn validate(self) -> Result<(Uuid, String), Violations> {
        let mut v = Violations::default();
        let order_id = check_uuid(&mut v, "order_id", &self.order_id);
        if self.reason.chars().count() > MAX_REASON_LEN {
            v.add(
                "reason",
                format!("must be at most {MAX_REASON_LEN} characters"),
            );
        }
        let reason = if self.reason.is_empty() {
            Self::DEFAULT_REASON.to_owned()
        } else {
            self.reason
        };
        v.into_result((order_id.unwrap_or_default(), reason))
    }
}

/// An event whose content cannot be what its producer validated: replaying
/// it would fail the same way, so it is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event: {0}")]
pub struct MalformedEvent(pub String);

impl ChargeRequest {
    /// The charge an `OrderReserved` event asks for; `amount` is its
    /// (currency, minor units), `None` when the event carries none.
    pub fn from_event(
        order_id: &str,
        amount: Option<(&str, i64)>,
        payment_method: &str,
    ) -> Result<Self, MalformedEvent> {
        let order_id = Uuid::parse_str(order_id)
            .map_err(|_| MalformedEvent(format!("order_id {order_id:?} is not a UUID")))?;
        let (currency, amount_minor) =
            amount.ok_or_else(|| MalformedEvent(format!("order {order_id} has no amount")))?;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(MalformedEvent(format!(
                "order {order_id}: currency {currency:?} is not an ISO 4217 code"
            )));
        }
        if amount_minor < 0 {
            return Err(MalformedEvent(format!(
                "order {order_id}: negative amount {amount_minor}"
            )));
        }
        let method_ok = !payment_method.is_empty()
            && payment_method.len() <= MAX_METHOD_LEN
            && payment_method
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !method_ok {
            return Err(MalformedEvent(format!(
                "order {order_id}: payment method {payment_method:?} is not a token"
            )));
        }
        Ok(Self {
            order_id,
            amount_minor,
            currency: currency.to_owned(),
            payment_method: payment_method.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "0190f1b2-7c3a-7d4e-8f00-123456789abc";

    fn fields(command: RefundCommand) -> Vec<String> {
        let error = command.validate().expect_err("invalid");
        error.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_refund_names_every_bad_field() {
        let command = RefundCommand {
            order_id: "nope".into(),
            reason: "x".repeat(MAX_REASON_LEN + 1),
        };
        assert_eq!(fields(command), vec!["order_id", "reason"]);
    }

    #[test]
    fn a_refund_reason_is_counted_in_characters() {
        let command = RefundCommand {
            order_id: ORDER.into(),
            reason: "é".repeat(MAX_REASON_LEN),
        };
        let (_, reason) = command.validate().expect("256 characters are allowed");
        assert_eq!(reason.chars().count(), MAX_REASON_LEN);
    }

    #[test]
    fn an_empty_refund_reason_gets_the_default() {
        let command = RefundCommand {
            order_id: ORDER.into(),
            reason: String::new(),
        };
        let (id, reason) = command.validate().expect("valid");
        assert_eq!(id.to_string(), ORDER);
        assert_eq!(reason, RefundCommand::DEFAULT_REASON);
    }

    #[test]
    fn order_ids_must_be_uuids() {
        assert!(parse_order_id("order_id", "").is_err());
        assert!(parse_order_id("order_id", ORDER).is_ok());
    }

    #[test]
    fn a_well_formed_event_becomes_a_charge() {
        let charge = ChargeRequest::from_event(ORDER, Some(("EUR", 2599)), "pm_ok").expect("valid");
        assert_eq!(charge.order_id.to_string(), ORDER);
        assert_eq!(
            (charge.amount_minor, charge.currency.as_str()),
            (2599, "EUR")
        );
    }

    #[test]
    fn malformed_events_are_refused() {
        type Case<'a> = (&'a str, Option<(&'a str, i64)>, &'a str);
        let cases: [Case<'_>; 6] = [
            ("not-a-uuid", Some(("EUR", 1)), "pm_ok"),
            (ORDER, None, "pm_ok"),
            (ORDER, Some(("eur", 1)), "pm_ok"),
            (ORDER, Some(("EUR", -1)), "pm_ok"),
            (ORDER, Some(("EUR", 1)), ""),
            (ORDER, Some(("EUR", 1)), "pm ok"),
        ];
        for (order_id, amount, method) in cases {
            assert!(
                ChargeRequest::from_event(order_id, amount, method).is_err(),
                "{order_id} {amount:?} {method:?}"
            );
        }
    }
}

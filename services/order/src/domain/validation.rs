//! Validation of client input (DESIGN §7 bounds). Every violation is
//! collected, so a client learns about all bad fields at once.

use orderly::{bounds, status::Violations};
use uuid::Uuid;

use super::{LineItem, NewOrder};

// The item bounds live in the kit, shared with inventory's Reserve
// validation, so an accepted order can always be reserved.
pub use orderly::bounds::{MAX_ITEMS, MAX_QUANTITY};
/// Highest unit price, in minor units; keeps every total far from overflow.
const MAX_UNIT_PRICE_MINOR: i64 = 1_000_000_000_000;
const MAX_ID_LEN: usize = 64;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
const MAX_REASON_LEN: usize = 256;

/// Active ISO 4217 alphabetic codes (funds and precious metals excluded).
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB \
EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY \
KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR \
MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF \
SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS \
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG";

/// A create-order command as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct CreateOrder {
    /// Raw customer id.
    pub customer_id: String,
    /// Raw lines: (sku, quantity, unit price in minor units).
    pub items: Vec<(String, u32, i64)>,
    /// Raw currency code.
    pub currency: String,
    /// Raw payment method token.
    pub payment_method: String,
    /// Raw idempotency key; empty means none.
    pub idempotency_key: String,
}

impl CreateOrder {
    /// Checks every field and computes the total.
    pub fn validate(self) -> Result<NewOrder, Violations> {
        let mut v = Violations::default();
        check_token(&mut v, "customer_id", &self.customer_id, MAX_ID_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
        });
        check_token(
            &mut v,
            "payment_method",
            &self.payment_method,
            MAX_ID_LEN,
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'),
        );
        if !is_iso_4217(&self.currency) {
            v.add("currency", "must be an ISO 4217 code such as EUR or USD");
        }
        let idempotency_key = match self.idempotency_key.as_str() {
            "" => None,
            key if key.len() > MAX_IDEMPOTENCY_KEY_LEN
                || !key.chars().all(|c| c.is_ascii_graphic()) =>
            {
                v.add(
                    "idempotency_key",
                    format!("must be 1-{MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters without spaces"),
                );
                None
            }
            key => Some(key.to_owned()),
        };
        if let Some(problem) = bounds::item_count_problem(self.items.len()) {
            v.add("items", format!("{problem}, got {}", self.items.len()));
        }
        let mut total: i64 = 0;
        // Past the limit, per-line messages would only bury the real problem.
        let lines = if self.items.len() > MAX_ITEMS {
            &[][..]
        } else {
            &self.items[..]
        };
        for (i, (sku, quantity, price)) in lines.iter().enumerate() {
            if let Some(problem) = bounds::sku_problem(sku) {
                v.add(format!("items[{i}].sku"), problem);
            }
            let quantity_problem = bounds::quantity_problem(*quantity);
            let quantity_ok = quantity_problem.is_none();
            if let Some(problem) = quantity_problem {
                v.add(format!("items[{i}].quantity"), problem);
            }
            if !(0..=MAX_UNIT_PRICE_MINOR).contains(price) {
                v.add(
                    format!("items[{i}].unit_price_minor"),
                    format!("must be 0-{MAX_UNIT_PRICE_MINOR} minor units"),
                );
            } else if quantity_ok {
                // Bounded quantity × bounded price × 100 lines fits in i64;
                // an out-of-range line never reaches the sum.
                total += i64::from(*quantity) * price;
            }
        }
        let items = lines
            .iter()
            .map(|(sku, quantity, price)| LineItem {
                sku: sku.clone(),
                quantity: *quantity,
                unit_price_minor: *price,
            })
            .collect();
        v.into_result(NewOrder {
            customer_id: self.customer_id,
            items,
            currency: self.currency,
            payment_method: self.payment_method,
            idempotency_key,
            total_minor: total,
        })
    }
}

/// Parses an order id from a request field.
pub fn parse_order_id(field: &str, raw: &str) -> Result<Uuid, Violations> {
    Uuid::parse_str(raw).map_err(|_| {
        let mut v = Violations::default();
        v.add(
            field,
            "must be a UUID such as 0190f1b2-7c3a-7d4e-8f00-123456789abc",
        );
        v
    })
}

/// Checks a cancellation reason's length.
pub fn validate_cancel_reason(reason: &str) -> Result<(), Violations> {
    let mut v = Violations::default();
    if reason.chars().count() > MAX_REASON_LEN {
        v.add(
            "reason",
            format!("must be at most {MAX_REASON_LEN} characters"),
        );
    }
    v.into_result(())
}

fn check_token(
    v: &mut Violations,
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) {
    if value.is_empty() || value.len() > max || !value.chars().all(allowed) {
        v.add(
            field,
            format!("must be 1-{max} characters of the allowed set"),
        );
    }
}

fn is_iso_4217(code: &str) -> bool {
    code.len() == 3 && ISO_4217.split_ascii_whitespace().any(|known| known == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> CreateOrder {
        CreateOrder {
            customer_id: "cust-1".into(),
            items: vec![("SKU-1".into(), 2, 1250), ("SKU-2".into(), 1, 99)],
            currency: "EUR".into(),
            payment_method: "pm_ok".into(),
            idempotency_key: "key-1".into(),
        }
    }

    fn fields(command: CreateOrder) -> Vec<String> {
        let error = command.validate().expect_err("invalid");
        error.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_valid_order_gets_its_total() {
        let order = valid().validate().expect("valid");
        assert_eq!(order.total_minor, 2 * 1250 + 99);
        assert_eq!(order.idempotency_key.as_deref(), Some("key-1"));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = fn(&mut CreateOrder);
        let cases: Vec<(Mutation, &str)> = vec![
            (|c| c.customer_id.clear(), "customer_id"),
            (|c| c.customer_id = "a b".into(), "customer_id"),
            (|c| c.currency = "eur".into(), "currency"),
            (|c| c.currency = "XYZ".into(), "currency"),
            (|c| c.payment_method = "pm ok".into(), "payment_method"),
            (|c| c.idempotency_key = "k".repeat(129), "idempotency_key"),
            (|c| c.items.clear(), "items"),
            (|c| c.items[1].0 = "bad sku".into(), "items[1].sku"),
            (|c| c.items[0].0 = "S".repeat(65), "items[0].sku"),
            (|c| c.items[0].1 = 0, "items[0].quantity"),
            (|c| c.items[0].1 = 1001, "items[0].quantity"),
            (|c| c.items[1].2 = -1, "items[1].unit_price_minor"),
        ];
        for (mutate, field) in cases {
            let mut command = valid();
            mutate(&mut command);
            assert_eq!(fields(command), vec![field.to_owned()]);
        }
    }

    #[test]
    fn too_many_items_is_one_violation() {
        let mut command = valid();
        command.items = vec![("A".into(), 1, 1); 10_000];
        assert_eq!(fields(command), vec!["items".to_owned()]);
    }

    #[test]
    fn huge_quantities_are_refused_without_overflow() {
        let mut command = valid();
        command.items = vec![("A".into(), u32::MAX, MAX_UNIT_PRICE_MINOR); MAX_ITEMS];
        let fields = fields(command);
        assert_eq!(fields.len(), MAX_ITEMS);
        assert!(
            fields.iter().all(|f| f.ends_with(".quantity")),
            "{fields:?}"
        );
    }

    #[test]
    fn the_largest_order_does_not_overflow() {
        let mut command = valid();
        command.items = vec![("A".into(), MAX_QUANTITY, MAX_UNIT_PRICE_MINOR); MAX_ITEMS];
        let order = command.validate().expect("valid");
        assert_eq!(order.total_minor, 100 * 1000 * MAX_UNIT_PRICE_MINOR);
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = valid().validate().expect("valid");
        let mut other = valid();
        other.items[0].1 = 3;
        let b = other.validate().expect("valid");
        assert_ne!(a.request_fingerprint(), b.request_fingerprint());
        assert_eq!(
            a.request_fingerprint(),
            valid().validate().expect("valid").request_fingerprint()
        );
    }

    #[test]
    fn order_ids_must_be_uuids() {
        assert!(parse_order_id("order_id", "nope").is_err());
        assert!(parse_order_id("order_id", "0190f1b2-7c3a-7d4e-8f00-123456789abc").is_ok());
    }
}

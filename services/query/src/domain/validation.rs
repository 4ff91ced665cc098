//! Validation of client requests; every violation is collected, so a client
//! learns about all bad fields at once.

use chrono::{DateTime, Utc};
use orderly::status::Violations;
use uuid::Uuid;

use super::{ListFilter, OrderStatus};

/// Largest ListOrders page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The page size when the client asks for 0.
const DEFAULT_PAGE_SIZE: u32 = 20;
/// Longest customer id (the order service enforces the same).
const MAX_CUSTOMER_LEN: usize = 64;

/// Parses an order id from a request field.
pub fn parse_order_id(field: &str, raw: &str) -> Result<Uuid, Violations> {
    let mut v = Violations::default();
    let id = Uuid::parse_str(raw).ok();
    if id.is_none() {
        v.add(
            field,
            "must be a UUID such as 0190f1b2-7c3a-7d4e-8f00-123456789abc",
        );
    }
    v.into_result(id.unwrap_or_default())
}

/// A ListOrders request as the client sent it, before validation.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// Raw customer id.
    pub customer_id: String,
    /// The status filter; `Err(value)` for a value no status has.
    pub status: Result<Option<OrderStatus>, i32>,
    /// 0 means the default.
    pub page_size: u32,
    /// Lower bound of the creation time, inclusive.
    pub created_after: Option<DateTime<Utc>>,
    /// Upper bound of the creation time, exclusive.
    pub created_before: Option<DateTime<Utc>>,
}

impl Default for ListRequest {
    fn default() -> Self {
        Self {
            customer_id: String::new(),
            status: Ok(None),
            page_size: 0,
            created_after: None,
            created_before: None,
        }
    }
}

impl ListRequest {
    /// Checks every field; returns the filter and the page size.
    pub fn validate(self) -> Result<(ListFilter, u32), Violations> {
        let mut v = Violations::default();
        let customer = &self.customer_id;
        if customer.is_empty()
            || customer.chars().count() > MAX_CUSTOMER_LEN
            || !customer
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            v.add(
                "customer_id",
                format!("must be 1-{MAX_CUSTOMER_LEN} characters of [A-Za-z0-9._:-]"),
            );
        }
        let status = self.status.unwrap_or_else(|value| {
            v.add("status", format!("{value} is not an OrderStatus"));
            None
        });
        if self.page_size > MAX_PAGE_SIZE {
            v.add(
                "page_size",
                format!("must be at most {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"),
            );
        }
        if let (Some(after), Some(before)) = (self.created_after, self.created_before)
            && after >= before
        {
            v.add("created_before", "must be later than created_after");
        }
        let page_size = if self.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.page_size
        };
        let filter = ListFilter {
            customer_id: self.customer_id,
            status,
            created_after: self.created_after,
            created_before: self.created_before,
        };
        v.into_result((filter, page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_named() {
        let request = ListRequest {
            customer_id: "bad customer".into(),
            status: Err(42),
            page_size: 101,
            created_after: DateTime::from_timestamp(20, 0),
            created_before: DateTime::from_timestamp(10, 0),
        };
        let violations = request.validate().expect_err("invalid");
        for field in ["customer_id", "status", "page_size", "created_before"] {
            assert!(violations.names(field), "{field}: {violations}");
        }
    }

    #[test]
    fn page_size_zero_means_the_default() {
        let request = ListRequest {
            customer_id: "c-1".into(),
            ..ListRequest::default()
        };
        let (_, size) = request.validate().expect("valid");
        assert_eq!(size, DEFAULT_PAGE_SIZE);
    }
}

//! What the contract (the proto comments and docs/errors.md) says a field
//! must be, written out here on its own rather than borrowed from the
//! services: each function returns why a value is invalid, empty when it is
//! not. An RPC answering OK to a request with any such objection fails the
//! property ([`super::support::verdict`]).

/// Objections to a request: one line per bad field.
pub type Objections = Vec<String>;

/// `order_id` and the like: a UUID (any of its usual spellings).
pub fn uuid(field: &str, raw: &str, out: &mut Objections) {
    if uuid::Uuid::try_parse(raw).is_err() {
        out.push(format!("{field} {raw:?} is not a UUID"));
    }
}

/// A SKU: 1-64 characters of `[A-Za-z0-9._-]`.
pub fn sku(field: &str, raw: &str, out: &mut Objections) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if raw.is_empty() || raw.chars().count() > 64 || !raw.chars().all(allowed) {
        out.push(format!("{field} {raw:?} is not a SKU"));
    }
}

/// A customer id: 1-64 of letters, digits and `._:-`.
pub fn customer_id(raw: &str, out: &mut Objections) {
    token(
        "customer_id",
        raw,
        64,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'),
        out,
    );
}

/// Units of one line: 1-1000.
pub fn quantity(field: &str, quantity: u32, out: &mut Objections) {
    if !(1..=1_000).contains(&quantity) {
        out.push(format!("{field} {quantity} is outside 1-1000"));
    }
}

/// A list of lines or SKUs: 1-100 entries.
pub fn lines(field: &str, count: usize, out: &mut Objections) {
    if !(1..=100).contains(&count) {
        out.push(format!("{field} holds {count} entries, not 1-100"));
    }
}

/// A token of 1-`max` characters of `allowed`.
pub fn token(field: &str, raw: &str, max: usize, allowed: fn(char) -> bool, out: &mut Objections) {
    if raw.is_empty() || raw.chars().count() > max || !raw.chars().all(allowed) {
        out.push(format!("{field} {raw:?} is not 1-{max} allowed characters"));
    }
}

/// An optional key: empty, or 1-128 printable ASCII characters without
/// spaces.
pub fn optional_key(field: &str, raw: &str, out: &mut Objections) {
    if !raw.is_empty() && (raw.len() > 128 || !raw.chars().all(|c| c.is_ascii_graphic())) {
        out.push(format!("{field} {raw:?} is not 1-128 printable characters"));
    }
}

/// Free text of at most 256 characters.
pub fn reason(field: &str, raw: &str, out: &mut Objections) {
    if raw.chars().count() > 256 {
        out.push(format!("{field} is over 256 characters"));
    }
}

/// A number within `range`.
pub fn within<T: PartialOrd + std::fmt::Debug>(
    field: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    out: &mut Objections,
) {
    if !range.contains(&value) {
        out.push(format!("{field} {value:?} is outside {range:?}"));
    }
}

/// A currency: an ISO 4217 code is three capital letters (which three the
/// service knows; anything else is invalid for sure).
pub fn currency(field: &str, raw: &str, out: &mut Objections) {
    if raw.len() != 3 || !raw.chars().all(|c| c.is_ascii_uppercase()) {
        out.push(format!("{field} {raw:?} is not an ISO 4217 code"));
    }
}

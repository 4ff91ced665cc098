//! Conventions for turning failures into gRPC statuses (DESIGN §7): field
//! violations become INVALID_ARGUMENT with `google.rpc.BadRequest` details.
//! Each crate's `From<Error> for Status` is the one place codes are chosen;
//! these helpers keep the details uniform.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid request field: its path (`items[2].quantity`) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `items[0].sku`.
    pub field: String,
    /// What is wrong, e.g. "must be between 1 and 1000".
    pub description: String,
}

/// Every violation found in one request; never empty when returned as an
/// error.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", summary(.0))]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    /// Records that `field` is invalid because of `description`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// `Ok(value)` when nothing was recorded, else these violations.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Both values, or the violations of either or both together, so one
    /// answer names every bad field.
    pub fn both<A, B>(a: Result<A, Self>, b: Result<B, Self>) -> Result<(A, B), Self> {
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (a, b) => {
                let mut violations = a.err().unwrap_or_default();
                violations.0.extend(b.err().unwrap_or_default().0);
                Err(violations)
            }
        }
    }

    /// Whether `field` has a violation (tests use it).
    pub fn names(&self, field: &str) -> bool {
        self.0.iter().any(|v| v.field == field)
    }
}

/// Most violations one status reports. A status travels in response
/// headers, which clients cap (16 KiB by default in hyper): a request with
/// a hundred bad lines must not make an answer the client cannot read.
pub const MAX_REPORTED_VIOLATIONS: usize = 20;

/// Longest client text [`quoted`] repeats, in characters.
const MAX_QUOTED_CHARS: usize = 64;

fn summary(violations: &[FieldViolation]) -> String {
    let mut text = violations
        .iter()
        .take(MAX_REPORTED_VIOLATIONS)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    let more = violations.len().saturating_sub(MAX_REPORTED_VIOLATIONS);
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

/// `text` from a request, quoted for a status message and cut to 64
/// characters: echoed whole, a value as large as the message limit would
/// make a status header no client reads.
pub fn quoted(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{head:?}… ({} bytes)", text.len())
    }
}

impl From<Violations> for Status {
    fn from(violations: Violations) -> Self {
        let message = violations.to_string();
        let details = ErrorDetails::with_bad_request(
            violations
                .0
                .into_iter()
                .take(MAX_REPORTED_VIOLATIONS)
                .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                .collect::<Vec<_>>(),
        );
        Status::with_error_details(Code::InvalidArgument, message, details)
    }
}

/// The canonical upper-case name of a gRPC code, as grpcurl, the docs and
/// the metrics' `code` label spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The field names of a status's `BadRequest` details (empty when none);
/// clients and tests use it to see which fields were rejected.
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_become_invalid_argument_with_field_details() {
        let mut violations = Violations::default();
        violations.add("items[0].quantity", "must be between 1 and 1000");
        let status = Status::from(violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), vec!["items[0].quantity"]);
        assert!(status.message().contains("items[0].quantity"));
    }

    #[test]
    fn a_status_reports_a_bounded_number_of_violations() {
        let mut violations = Violations::default();
        for i in 0..300 {
            violations.add(format!("items[{i}].sku"), "must be 1-64 characters");
        }
        let status = Status::from(violations);
        assert_eq!(violated_fields(&status).len(), MAX_REPORTED_VIOLATIONS);
        assert!(
            status.message().ends_with("; and 280 more"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn quoted_client_text_is_cut() {
        assert_eq!(quoted("orders"), "\"orders\"");
        let long = quoted(&"é".repeat(1_000_000));
        assert!(long.len() < 200, "{long}");
        assert!(long.ends_with("(2000000 bytes)"), "{long}");
    }
}

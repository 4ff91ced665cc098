//! Conversions between the database's timestamps and protobuf's.

use chrono::{DateTime, Utc};

/// Converts a UTC timestamp to `google.protobuf.Timestamp`.
pub fn to_timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Always below 1e9, so it fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

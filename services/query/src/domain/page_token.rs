//! ListOrders page tokens: where the next page starts, bound to the filter
//! it was issued for and signed with HMAC-SHA256, so a client can neither
//! forge a position nor reuse a token with another filter.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::OrderStatus;

/// Which orders a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// The customer.
    pub customer_id: String,
    /// Only orders in this state; `None`: any.
    pub status: Option<OrderStatus>,
    /// Only orders created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only orders created before this time.
    pub created_before: Option<DateTime<Utc>>,
}

/// The last order of a page, in the listing's order (created_at DESC,
/// order_id DESC): the next page starts strictly after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Its creation time.
    pub created_at: DateTime<Utc>,
    /// Its id (the tie-break between orders created in the same
    /// microsecond).
    pub order_id: Uuid,
}

/// Why a page token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this service issued (malformed, or altered).
    #[error("is not a valid page token")]
    Invalid,
    /// Issued for another customer, status or time range.
    #[error("was issued for a different filter")]
    OtherFilter,
}

/// Issues and checks page tokens with one secret.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

const VERSION: &str = "v1";

impl PageTokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    /// A token for the page after `cursor` of `filter`.
    pub fn issue(&self, filter: &ListFilter, cursor: Cursor) -> String {
        let body = format!(
            "{VERSION}\n{}\n{}\n{}",
            filter_text(filter),
            cursor.created_at.timestamp_micros(),
            cursor.order_id
        );
        format!(
            "{}.{}",
            hex::encode(body.as_bytes()),
            hex::encode(hmac_sha256(&self.key, body.as_bytes()))
        )
    }

    /// The cursor a token carries, if this service issued it for `filter`.
    pub fn open(&self, token: &str, filter: &ListFilter) -> Result<Cursor, TokenError> {
        let (body, mac) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let body = hex::decode(body).map_err(|_| TokenError::Invalid)?;
        let mac = hex::decode(mac).map_err(|_| TokenError::Invalid)?;
        // `ct_eq` answers false at once for another length, which reveals
        // nothing: every valid tag has the same length.
        if !bool::from(mac.ct_eq(&hmac_sha256(&self.key, &body))) {
            return Err(TokenError::Invalid);
        }
        let body = String::from_utf8(body).map_err(|_| TokenError::Invalid)?;
        // The filter text has a fixed number of lines (its fields cannot
        // contain a newline: customer ids are validated first).
        let mut lines = body.split('\n');
        if lines.next() != Some(VERSION) {
            return Err(TokenError::Invalid);
        }
        let issued_for: Vec<&str> = lines.by_ref().take(4).collect();
        if issued_for.join("\n") != filter_text(filter) {
            return Err(TokenError::OtherFilter);
        }
        let micros: i64 = lines
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or(TokenError::Invalid)?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or(TokenError::Invalid)?;
        let order_id = lines
            .next()
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or(TokenError::Invalid)?;
        Ok(Cursor {
            created_at,
            order_id,
        })
    }
}

/// The filter as four lines.
fn filter_text(filter: &ListFilter) -> String {
    let time = |at: Option<DateTime<Utc>>| {
        at.map_or_else(|| "-".to_owned(), |at| at.timestamp_micros().to_string())
    };
    format!(
        "{}\n{}\n{}\n{}",
        filter.customer_id,
        filter.status.map_or("-", OrderStatus::as_str),
        time(filter.created_after),
        time(filter.created_before)
    )
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (a longer one is hashed first), so
    // building it cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> ListFilter {
        ListFilter {
            customer_id: "c-1".into(),
            status: Some(OrderStatus::Confirmed),
            created_after: DateTime::from_timestamp(1_700_000_000, 0),
            created_before: None,
        }
    }

    fn cursor() -> Cursor {
        Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_123_456_789).expect("time"),
            order_id: Uuid::now_v7(),
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_token_round_trips() {
        let tokens = PageTokens::new("secret");
        let cursor = cursor();
        let token = tokens.issue(&filter(), cursor);
        assert_eq!(tokens.open(&token, &filter()), Ok(cursor));
    }

    #[test]
    fn an_altered_token_is_invalid() {
        let tokens = PageTokens::new("secret");
        let token = tokens.issue(&filter(), cursor());
        let mut bytes = token.into_bytes();
        bytes[3] = if bytes[3] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(bytes).expect("ascii");
        assert_eq!(tokens.open(&altered, &filter()), Err(TokenError::Invalid));
        assert_eq!(tokens.open("garbage", &filter()), Err(TokenError::Invalid));
        let other_key = PageTokens::new("other").issue(&filter(), cursor());
        assert_eq!(tokens.open(&other_key, &filter()), Err(TokenError::Invalid));
    }

    #[test]
    fn malformed_tokens_are_invalid_not_a_panic() {
        let tokens = PageTokens::new("secret");
        let token = tokens.issue(&filter(), cursor());
        let (body, mac) = token.split_once('.').expect("body.mac");
        for bad in [
            String::new(),
            ".".to_owned(),
            format!("{body}."),
            format!(".{mac}"),
            format!("{body}.{}", &mac[..mac.len() - 1]),
            format!("{body}.{}", &mac[..mac.len() - 2]),
            format!("{body}.{mac}00"),
            format!("{}.{mac}", &body[..body.len() - 1]),
            format!("{body}.{mac}.{mac}"),
            format!("{body}.é{}", &mac[2..]),
            format!("{body}.zz{}", &mac[2..]),
            "ÿÿ.ÿÿ".to_owned(),
        ] {
            assert_eq!(
                tokens.open(&bad, &filter()),
                Err(TokenError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_token_is_bound_to_its_filter() {
        let tokens = PageTokens::new("secret");
        let token = tokens.issue(&filter(), cursor());
        let other = ListFilter {
            status: None,
            ..filter()
        };
        assert_eq!(tokens.open(&token, &other), Err(TokenError::OtherFilter));
    }
}

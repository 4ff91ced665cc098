//! Payment states and the one transition between them (DESIGN §6.3).
//!
//! The protobuf enum also has PENDING, but no row is written before the
//! gateway answers, so a stored payment is never pending: while the charge
//! is retried the order simply has no payment yet.

use std::fmt;

/// Where a stored payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Charged.
    Succeeded,
    /// Declined by the gateway. Terminal.
    Failed,
    /// Charged, then refunded. Terminal.
    Refunded,
}

impl PaymentStatus {
    /// Every state, for exhaustive tests.
    pub const ALL: [PaymentStatus; 3] = [Self::Succeeded, Self::Failed, Self::Refunded];

    /// Whether the machine allows `self → to`.
    pub fn can_become(self, to: PaymentStatus) -> bool {
        matches!((self, to), (Self::Succeeded, Self::Refunded))
    }

    /// Whether no transition leaves this state.
    pub fn is_terminal(self) -> bool {
        Self::ALL.iter().all(|to| !self.can_become(*to))
    }

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Refunded => "REFUNDED",
        }
    }

    /// Parses a stored name.
    pub fn from_db(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::{self, *};

    #[test]
    fn only_a_succeeded_payment_can_be_refunded() {
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    (from, to) == (Succeeded, Refunded),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn failed_and_refunded_are_terminal() {
        let terminal: Vec<_> = PaymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Failed, Refunded]);
    }

    #[test]
    fn stored_names_round_trip() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::from_db(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::from_db("PENDING"), None);
    }
}

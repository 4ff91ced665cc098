//! Order states and the transitions between them (DESIGN §3).

use std::fmt;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted; stock not yet reserved.
    Pending,
    /// Stock reserved; waiting for payment.
    Reserved,
    /// Paid and committed. Terminal.
    Confirmed,
    /// Stock could not be reserved. Terminal.
    Rejected,
    /// Cancelled. Terminal.
    Cancelled,
}

impl OrderStatus {
    /// Every state, for exhaustive tests.
    pub const ALL: [OrderStatus; 5] = [
        Self::Pending,
        Self::Reserved,
        Self::Confirmed,
        Self::Rejected,
        Self::Cancelled,
    ];

    /// Whether the machine allows `self → to`.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Reserved)
                | (Pending, Rejected)
                | (Pending, Cancelled)
                | (Reserved, Confirmed)
                | (Reserved, Cancelled)
        )
    }

    /// Whether no transition leaves this state.
    pub fn is_terminal(self) -> bool {
        Self::ALL.iter().all(|to| !self.can_become(*to))
    }

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Reserved => "RESERVED",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a stored name.
    pub fn from_db(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::{self, *};

    #[test]
    fn only_the_designed_transitions_are_allowed() {
        let allowed = [
            (Pending, Reserved),
            (Pending, Rejected),
            (Pending, Cancelled),
            (Reserved, Confirmed),
            (Reserved, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_are_confirmed_rejected_cancelled() {
        let terminal: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Confirmed, Rejected, Cancelled]);
    }

    #[test]
    fn stored_names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_db(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::from_db("SHIPPED"), None);
    }
}

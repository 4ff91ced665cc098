//! The payment aggregate: its states, the refund transition and the
//! validation of requests and of the events that ask for a charge. Pure: no
//! I/O, no clock, no proto types.

mod payment;
mod status;
mod validation;

pub use payment::{
    ChargeOutcome, ChargeRequest, NewPayment, Payment, Refund, RefundPlan, TransitionError,
};
pub use status::PaymentStatus;
pub use validation::{MAX_REASON_LEN, MalformedEvent, RefundCommand, parse_order_id};

//! The order aggregate: its states, transitions and the validation of new
//! orders. Pure: no I/O, no clock, no proto types.

mod order;
mod status;
mod validation;

pub use order::{LineItem, NewOrder, Order, Transition, TransitionError};
pub use status::OrderStatus;
pub use validation::{
    CreateOrder, MAX_ITEMS, MAX_QUANTITY, parse_order_id, validate_cancel_reason,
};

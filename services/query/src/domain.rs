//! The read model: an order's view and the changes events make to it, the
//! list filter and its signed page tokens, and request validation. Pure: no
//! I/O, no clock, no proto types.

mod change;
mod page_token;
mod validation;
mod view;

pub use change::{Change, ChangeKind, Created, OrderChange, PaymentChange};
pub use page_token::{Cursor, ListFilter, PageTokens, TokenError};
pub use validation::{ListRequest, MAX_PAGE_SIZE, parse_order_id};
pub use view::{Item, OrderStatus, OrderView, PaymentStatus, TimelineEntry};

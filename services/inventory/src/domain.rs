//! The inventory domain: SKUs, order ids, stock levels, reservation records
//! and the validation of every request. Pure: no I/O.

mod reservation;
mod validate;

use std::fmt;

use uuid::Uuid;

pub use reservation::{Outcome, Rejection, RejectionCode, Reservation, ReservationState};
pub use validate::{
    ReserveCommand, validate_adjust_stock, validate_get_stock, validate_order_id, validate_reserve,
    validate_set_stock,
};

/// Longest SKU accepted (the order bounds of the kit, shared with the order
/// service, so every accepted order can be reserved).
pub const MAX_SKU_LEN: usize = orderly::bounds::MAX_SKU_LEN;
/// Largest quantity of one reservation item.
pub const MAX_ITEM_QUANTITY: u32 = orderly::bounds::MAX_QUANTITY;
/// Most items in one reservation request.
pub const MAX_ITEMS: usize = orderly::bounds::MAX_ITEMS;
/// Most SKUs in one stock read.
pub const MAX_SKUS_PER_READ: usize = 100;
/// Largest absolute available quantity, and largest |delta| of one adjustment.
pub const MAX_STOCK_QUANTITY: i64 = 1_000_000_000;

/// A stock-keeping unit: 1-64 characters of `[A-Za-z0-9._-]`, so it can be
/// embedded in Redis keys and the scripts' item lists (`sku=qty,...`) as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sku(String);

impl Sku {
    /// Checks the format; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match orderly::bounds::sku_problem(raw) {
            Some(problem) => Err(problem),
            None => Ok(Self(raw.to_owned())),
        }
    }

    /// The SKU text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order's id, the idempotency key of its reservation. Displayed in the
/// canonical lowercase hyphenated form, so differently spelled copies of one
/// UUID address the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderId(Uuid);

impl OrderId {
    /// Parses a UUID in any of its usual spellings.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        Uuid::try_parse(raw).map(Self).map_err(|_| "must be a UUID")
    }
}

impl From<Uuid> for OrderId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A quantity of one SKU in a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The SKU.
    pub sku: Sku,
    /// Units; after merging duplicates it may exceed [`MAX_ITEM_QUANTITY`].
    pub quantity: u32,
}

/// A SKU's counters; `available + reserved + sold` is the total stocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The SKU.
    pub sku: Sku,
    /// Units that can be reserved.
    pub available: i64,
    /// Units held by open reservations.
    pub reserved: i64,
    /// Units of committed reservations.
    pub sold: i64,
}

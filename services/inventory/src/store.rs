//! Stock and reservations in Redis. Every change is one Lua script from
//! `lua/` (atomic, so nothing is read-modify-written from Rust), invoked by
//! SHA with a reload on NOSCRIPT (`redis::Script::invoke_async`).
//!
//! Key layout, all under one hash tag so every script is valid on Redis
//! Cluster: `{<prefix>}:stock:<sku>` is a hash with fields `available`,
//! `reserved`, `sold` and `stocked` (their sum, kept by the stock admin
//! scripts); `{<prefix>}:res:<order_id>` is the order's
//! reservation record (see `lua/reserve.lua` for its fields). A finished
//! record (COMMITTED, RELEASED, REJECTED) expires after the configured
//! retention; an open RESERVED one never does.

mod connections;
pub mod record;

use std::{
    fmt,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use deadpool_redis::Pool;
use redis::Script;

use self::connections::Connections;
use crate::{
    domain::{OrderId, Reservation, ReserveCommand, Sku, StockLevel},
    error::Error,
    metrics::InventoryMetrics,
};

/// Source of the reserve script (public so benchmarks can call it raw).
pub const RESERVE_SCRIPT: &str = include_str!("../../../lua/reserve.lua");
const COMMIT_SCRIPT: &str = include_str!("../../../lua/commit.lua");
const RELEASE_SCRIPT: &str = include_str!("../../../lua/release.lua");
const SET_STOCK_SCRIPT: &str = include_str!("../../../lua/set_stock.lua");
const ADJUST_STOCK_SCRIPT: &str = include_str!("../../../lua/adjust_stock.lua");
const GET_STOCK_SCRIPT: &str = include_str!("../../../lua/get_stock.lua");

/// How long an AdjustStock request id is remembered: retries come within
/// seconds; a day covers a client that retries after an outage.
const ADJUSTMENT_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Builds the service's Redis keys from the configured prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// Keys under `{prefix}`. A prefix containing `{` or `}` would change
    /// the hash tag and split the keys across cluster slots, so it is refused.
    pub fn new(prefix: &str) -> Result<Self, Error> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(Error::Config(orderly::config::ConfigError::invalid(
                "REDIS_KEY_PREFIX",
                "must be non-empty and contain neither '{' nor '}'",
            )));
        }
        Ok(Self {
            tag: format!("{{{prefix}}}"),
        })
    }

    /// The stock hash of `sku`.
    pub fn stock(&self, sku: &str) -> String {
        format!("{}:stock:{sku}", self.tag)
    }

    /// The idempotency marker of an AdjustStock request id.
    pub fn adjustment(&self, request_id: &str) -> String {
        format!("{}:adj:{request_id}", self.tag)
    }

    /// The reservation record of `order_id`.
    pub fn reservation(&self, order_id: &OrderId) -> String {
        format!("{}:res:{order_id}", self.tag)
    }
}

/// The scripts, hashed once; Redis caches them by SHA after the first call.
struct Scripts {
    reserve: Script,
    commit: Script,
    release: Script,
    set_stock: Script,
    adjust_stock: Script,
    get_stock: Script,
}

/// Inventory storage: shared Redis connections, the key layout and the
/// scripts. Cloning is cheap and shares them.
#[derive(Clone)]
pub struct Store {
    connections: Arc<Connections>,
    keys: Keys,
    scripts: Arc<Scripts>,
    metrics: InventoryMetrics,
    /// Whole seconds (at least 1) a finished reservation record is kept.
    retention_secs: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.keys)
            .field("retention_secs", &self.retention_secs)
            .finish()
    }
}

/// A script's reply: a status word and the record's fields (HGETALL).
type RecordReply = (String, Vec<String>);

impl Store {
    /// A store on `pool`; connections open lazily, so Redis may be down.
    /// Finished reservation records are kept for `retention` (rounded down
    /// to whole seconds, at least one). Every script call is timed into
    /// `metrics`.
    pub fn new(pool: Pool, keys: Keys, retention: Duration, metrics: InventoryMetrics) -> Self {
        let scripts = Scripts {
            reserve: Script::new(RESERVE_SCRIPT),
            commit: Script::new(COMMIT_SCRIPT),
            release: Script::new(RELEASE_SCRIPT),
            set_stock: Script::new(SET_STOCK_SCRIPT),
            adjust_stock: Script::new(ADJUST_STOCK_SCRIPT),
            get_stock: Script::new(GET_STOCK_SCRIPT),
        };
        Self {
            connections: Arc::new(Connections::new(pool)),
            keys,
            scripts: Arc::new(scripts),
            metrics,
            retention_secs: retention.as_secs().max(1),
        }
    }

    /// Sets `sku`'s available units to `quantity`.
    pub async fn set_stock(&self, sku: &Sku, quantity: i64) -> Result<StockLevel, Error> {
        let mut lent = self.connections.get().await?;
        let mut invocation = self.scripts.set_stock.key(self.keys.stock(sku.as_str()));
        invocation.arg(quantity);
        let reply: redis::RedisResult<(String, i64, i64, i64)> = self
            .timed("set_stock", invocation.invoke_async(&mut lent.conn))
            .await;
        let reply = self.connections.settle(&lent, reply)?;
        level(sku, reply)
    }

    /// Adds `delta` to `sku`'s available units, refusing to leave 0..10^12.
    /// With a `request_id`, a repeat of the same request changes nothing.
    pub async fn adjust_stock(
        &self,
        sku: &Sku,
        delta: i64,
        request_id: Option<&str>,
    ) -> Result<StockLevel, Error> {
        let mut lent = self.connections.get().await?;
        let mut invocation = self.scripts.adjust_stock.key(self.keys.stock(sku.as_str()));
        invocation.arg(delta);
        if let Some(id) = request_id {
            invocation
                .key(self.keys.adjustment(id))
                .arg(ADJUSTMENT_MEMORY.as_secs());
        }
        let reply: redis::RedisResult<(String, i64, i64, i64)> = self
            .timed("adjust_stock", invocation.invoke_async(&mut lent.conn))
            .await;
        let reply = self.connections.settle(&lent, reply)?;
        if reply.0 == "MISMATCH" {
            return Err(Error::AlreadyExists(format!(
                "request_id {:?} was already used with another sku or delta",
                request_id.unwrap_or_default()
            )));
        }
        if reply.0 == "OUT_OF_RANGE" {
            return Err(Error::FailedPrecondition(format!(
                "adjusting sku {sku} by {delta} would leave available stock ({}) outside 0..10^12",
                reply.1
            )));
        }
        level(sku, reply)
    }

    /// Reads the levels of `skus` in one snapshot; unknown SKUs are left out.
    pub async fn get_stock(&self, skus: &[Sku]) -> Result<Vec<StockLevel>, Error> {
        let mut lent = self.connections.get().await?;
        let mut invocation = self.scripts.get_stock.prepare_invoke();
        for sku in skus {
            invocation.key(self.keys.stock(sku.as_str()));
        }
        let values = self
            .timed("get_stock", invocation.invoke_async(&mut lent.conn))
            .await;
        let values: Vec<i64> = self.connections.settle(&lent, values)?;
        if values.len() != skus.len() * 4 {
            return Err(Error::Internal(
                "get_stock replied with a wrong length".into(),
            ));
        }
        Ok(skus
            .iter()
            .zip(values.chunks_exact(4))
            .filter(|(_, v)| v[0] == 1)
            .map(|(sku, v)| StockLevel {
                sku: sku.clone(),
                available: v[1],
                reserved: v[2],
                sold: v[3],
            })
            .collect())
    }

    /// Reserves the command's items, or records why not; a replay returns
    /// the record of the first call. Use [`Reservation::into_reserve_answer`]
    /// for the outcome.
    pub async fn reserve(&self, command: &ReserveCommand) -> Result<Reservation, Error> {
        let mut lent = self.connections.get().await?;
        let mut invocation = self.scripts.reserve.prepare_invoke();
        invocation
            .key(self.keys.reservation(&command.order_id))
            .arg(self.retention_secs);
        for item in &command.items {
            invocation
                .key(self.keys.stock(item.sku.as_str()))
                .arg(item.sku.as_str())
                .arg(item.quantity);
        }
        let reply = self
            .timed("reserve", invocation.invoke_async(&mut lent.conn))
            .await;
        let (status, fields): RecordReply = self.connections.settle(&lent, reply)?;
        let record = record::decode(command.order_id, &fields)?;
        match status.as_str() {
            "OK" => Ok(record),
            "MISMATCH" => Err(Error::AlreadyExists(format!(
                "order {} was already reserved with different items",
                command.order_id
            ))),
            other => Err(unexpected("reserve", other)),
        }
    }

    /// Commits the order's reservation (RESERVED → COMMITTED).
    pub async fn commit(&self, order_id: OrderId) -> Result<Reservation, Error> {
        let (status, fields) = self
            .transition("commit", &self.scripts.commit, order_id)
            .await?;
        match status.as_str() {
            "OK" => record::decode(order_id, &fields),
            "NOT_FOUND" => Err(Error::NotFound(order_id.to_string())),
            "CONFLICT" => {
                let record = record::decode(order_id, &fields)?;
                Err(Error::FailedPrecondition(format!(
                    "order {order_id} cannot be committed: its reservation is {:?}",
                    record.state
                )))
            }
            other => Err(unexpected("commit", other)),
        }
    }

    /// Releases the order's reservation, or records a tombstone.
    pub async fn release(&self, order_id: OrderId) -> Result<Reservation, Error> {
        let (status, fields) = self
            .transition("release", &self.scripts.release, order_id)
            .await?;
        match status.as_str() {
            "OK" => record::decode(order_id, &fields),
            "CONFLICT" => Err(Error::FailedPrecondition(format!(
                "order {order_id} is committed; sold units cannot be released"
            ))),
            other => Err(unexpected("release", other)),
        }
    }

    /// Reads the order's reservation record.
    pub async fn get_reservation(&self, order_id: OrderId) -> Result<Reservation, Error> {
        let mut lent = self.connections.get().await?;
        let reply = redis::cmd("HGETALL")
            .arg(self.keys.reservation(&order_id))
            .query_async(&mut lent.conn)
            .await;
        let fields: Vec<String> = self.connections.settle(&lent, reply)?;
        if fields.is_empty() {
            return Err(Error::NotFound(order_id.to_string()));
        }
        record::decode(order_id, &fields)
    }

    /// Runs commit or release. Their stock keys are in the record, and a
    /// script must be given every key it touches, so a first call without
    /// them may answer NEED_KEYS with the record; recorded items never
    /// change, so the second call cannot ask again.
    async fn transition(
        &self,
        name: &'static str,
        script: &Script,
        order_id: OrderId,
    ) -> Result<RecordReply, Error> {
        let mut lent = self.connections.get().await?;
        let mut items = String::new();
        for _ in 0..2 {
            let mut invocation = script.key(self.keys.reservation(&order_id));
            invocation.arg(&items).arg(self.retention_secs);
            for sku in record::item_skus(&items) {
                invocation.key(self.keys.stock(sku));
            }
            let reply = self
                .timed(name, invocation.invoke_async(&mut lent.conn))
                .await;
            let (status, fields): RecordReply = self.connections.settle(&lent, reply)?;
            if status != "NEED_KEYS" {
                return Ok((status, fields));
            }
            items = record::field(&fields, "items")
                .unwrap_or_default()
                .to_owned();
        }
        Err(Error::Internal(format!(
            "the items of order {order_id} changed between two script calls"
        )))
    }

    /// Awaits one script call, timing it as `script` (a failed call too:
    /// a slow timeout is what the histogram is for).
    async fn timed<T>(&self, script: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let reply = call.await;
        self.metrics.script(script, started.elapsed());
        reply
    }
}

fn level(
    sku: &Sku,
    (status, available, reserved, sold): (String, i64, i64, i64),
) -> Result<StockLevel, Error> {
    // REPLAY: an adjustment request seen before; the levels are current.
    if status != "OK" && status != "REPLAY" {
        return Err(unexpected("stock", &status));
    }
    Ok(StockLevel {
        sku: sku.clone(),
        available,
        reserved,
        sold,
    })
}

fn unexpected(script: &str, status: &str) -> Error {
    Error::Internal(format!(
        "{script} script replied with unknown status {status:?}"
    ))
}

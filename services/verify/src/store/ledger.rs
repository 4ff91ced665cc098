//! Reading the inventory ledger in Redis, with the inventory service's own
//! key layout and record decoding. Reads only: SCAN for the SKUs and the
//! reservation records, pipelines of HMGET/HGETALL for batches of keys.

use std::collections::{HashMap, HashSet};

use deadpool_redis::{Connection, Pool};
use orderly::{config::redact_secrets, redis::RedisConfig};
use orderly_inventory::{
    domain::OrderId,
    store::{Keys, record},
};
use uuid::Uuid;

use crate::{
    domain::{Reservation, stock::StockRecord},
    error::Error,
};

/// Keys asked of SCAN per round trip. SCAN walks the whole keyspace, the
/// other tenants' keys included, so a large page keeps the round trips few
/// on a shared Redis (each page is a millisecond or two of Redis time).
const SCAN_COUNT: usize = 10_000;

/// What the reservation records hold, summed.
#[derive(Debug, Default)]
pub struct OpenReservations {
    /// Units held per SKU by RESERVED records.
    pub units: HashMap<String, i64>,
    /// The orders with a RESERVED record (few: only orders in flight).
    pub orders: HashSet<Uuid>,
    /// Reservation records seen, in any state.
    pub records: u64,
}

/// The inventory ledger, read-only.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    keys: Keys,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("prefix", &self.prefix)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// A ledger reader on the inventory's Redis; connects lazily.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        let keys = Keys::new(&config.redis_key_prefix).map_err(|e| match e {
            orderly_inventory::Error::Config(e) => Error::Config(e),
            other => Error::Redis(other.to_string()),
        })?;
        Ok(Self {
            pool: orderly::redis::pool(config)?,
            keys,
            prefix: config.redis_key_prefix.clone(),
            url: redact_secrets(&config.redis_url),
        })
    }

    /// One page of the keys matching `pattern`, and the cursor of the next.
    async fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        conn: &mut Connection,
    ) -> Result<(u64, Vec<String>), Error> {
        self.run(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT),
            conn,
        )
        .await
    }

    /// Sums every open reservation record, by SKU.
    pub async fn open_reservations(&self) -> Result<OpenReservations, Error> {
        let mut conn = self.connection().await?;
        let pattern = self.pattern("res");
        let mut open = OpenReservations::default();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = self.scan(cursor, &pattern, &mut conn).await?;
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET").arg(key).arg("state").arg("items");
            }
            let records: Vec<(Option<String>, Option<String>)> =
                self.run_pipe(&pipe, keys.len(), &mut conn).await?;
            for (key, (state, items)) in keys.iter().zip(records) {
                open.records += 1;
                if state.as_deref() != Some("RESERVED") {
                    continue;
                }
                let order = key
                    .rsplit(':')
                    .next()
                    .and_then(|id| Uuid::try_parse(id).ok());
                if let Some(order) = order {
                    open.orders.insert(order);
                }
                for (sku, quantity) in parse_items(items.as_deref().unwrap_or_default()) {
                    *open.units.entry(sku.to_owned()).or_default() += quantity;
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(open);
            }
        }
    }

    /// Every SKU's stock hash.
    pub async fn stock(&self) -> Result<Vec<StockRecord>, Error> {
        let mut conn = self.connection().await?;
        let pattern = self.pattern("stock");
        let marker = self.keys.stock("");
        let mut records = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = self.scan(cursor, &pattern, &mut conn).await?;
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET")
                    .arg(key)
                    .arg("available")
                    .arg("reserved")
                    .arg("sold")
                    .arg("stocked");
            }
            let levels: Vec<[Option<i64>; 4]> = self.run_pipe(&pipe, keys.len(), &mut conn).await?;
            for (key, [available, reserved, sold, stocked]) in keys.iter().zip(levels) {
                records.push(StockRecord {
                    sku: key.strip_prefix(&marker).unwrap_or(key).to_owned(),
                    available,
                    reserved,
                    sold,
                    stocked,
                });
            }
            cursor = next;
            if cursor == 0 {
                records.sort_by(|a, b| a.sku.cmp(&b.sku));
                return Ok(records);
            }
        }
    }

    /// The reservation records of `ids`, in the same order, in one pipeline.
    pub async fn reservations(&self, ids: &[Uuid]) -> Result<Vec<Reservation>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL")
                .arg(self.keys.reservation(&OrderId::from(*id)));
        }
        let records: Vec<Vec<String>> = self.run_pipe(&pipe, ids.len(), &mut conn).await?;
        Ok(ids
            .iter()
            .zip(records)
            .map(|(id, fields)| decode(*id, &fields))
            .collect())
    }

    /// `{prefix}:<what>:*`, with the prefix's glob characters escaped.
    fn pattern(&self, what: &str) -> String {
        let mut escaped = String::new();
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        format!("{{{escaped}}}:{what}:*")
    }

    async fn connection(&self) -> Result<Connection, Error> {
        self.pool
            .get()
            .await
            .map_err(|e| self.failure(orderly_inventory::Error::from(e)))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        conn: &mut Connection,
    ) -> Result<T, Error> {
        cmd.query_async(conn)
            .await
            .map_err(|e| self.failure(orderly_inventory::Error::from(e)))
    }

    /// Runs a pipeline of `commands` replies; Redis refuses an empty one
    /// (a SCAN round may match no key).
    async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
        commands: usize,
        conn: &mut Connection,
    ) -> Result<Vec<T>, Error> {
        if commands == 0 {
            return Ok(Vec::new());
        }
        pipe.query_async(conn)
            .await
            .map_err(|e| self.failure(orderly_inventory::Error::from(e)))
    }

    /// Classifies a Redis failure as the inventory service does.
    fn failure(&self, error: orderly_inventory::Error) -> Error {
        match error {
            orderly_inventory::Error::Unavailable(why) => Error::RedisUnavailable {
                url: self.url.clone(),
                why,
            },
            other => Error::Redis(other.to_string()),
        }
    }
}

/// The `sku=qty,...` items field; malformed parts are skipped.
fn parse_items(items: &str) -> impl Iterator<Item = (&str, i64)> {
    items.split(',').filter_map(|part| {
        let (sku, quantity) = part.split_once('=')?;
        Some((sku, quantity.parse().ok()?))
    })
}

fn decode(id: Uuid, fields: &[String]) -> Reservation {
    if fields.is_empty() {
        return Reservation::Missing;
    }
    match record::decode(OrderId::from(id), fields) {
        Ok(found) => Reservation::Found {
            state: found.state,
            items: found
                .items
                .into_iter()
                .map(|item| (item.sku.as_str().to_owned(), i64::from(item.quantity)))
                .collect(),
        },
        Err(error) => Reservation::Corrupt(error.to_string()),
    }
}

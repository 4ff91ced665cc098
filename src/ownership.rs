//! Partition ownership: the replicas of a group (a consumer, later the
//! relay) share its slots (partition numbers, outbox buckets) under leases
//! in Postgres, a fair share each, and every write an owner makes is fenced
//! by the epoch it was granted.
//!
//! - **Members.** Each replica renews a row in `<schema>.lease_members`
//!   every third of the lease TTL; one whose row expired is not counted.
//! - **Fair share.** With `P` slots and `N` live members, `P mod N` members
//!   may hold `⌈P/N⌉` slots and the rest `⌊P/N⌋`; the larger quotas go to
//!   the members already holding the most, so joining or leaving moves only
//!   the slots that must move. A member over its quota releases its highest
//!   slots (after stopping their work); one under it claims free slots.
//! - **Leases and epochs.** A slot's row in `<schema>.leases` names its
//!   owner and the epoch (incremented on every claim). A lease lives as long
//!   as its owner's member row: a slot whose owner stopped renewing that row
//!   is free. So a round writes only the member row, never a lease row that
//!   effect transactions hold `FOR SHARE`, and cannot queue behind them on
//!   a busy database. Expiry is a liveness device only: safety comes from
//!   the epoch.
//! - **Fencing.** Every effect transaction checks, with `FOR SHARE` on the
//!   slot's row, that the slot is still owned by this member at the granted
//!   epoch ([`Fence`]); a claim updates that row, so either the claim comes
//!   first and the check fails (nothing commits), or the check comes first
//!   and the claim waits for the commit. A deposed, frozen or partitioned
//!   owner can never commit.
//! - **Bounded loss.** A member that cannot renew (its database connection
//!   is cut or half-open) treats its grants as void once `ttl` has passed
//!   since the start of its last successful renewal, which is never later
//!   than the database's own expiry; another member then takes over.

mod quota;

use std::{
    sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering},
    time::Duration,
};

use deadpool_postgres::{GenericClient, Pool};
use tokio::time::Instant;
use uuid::Uuid;

pub use self::quota::fair_share;

/// One slot held at an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The slot (a partition number, a bucket).
    pub slot: i32,
    /// The epoch it was granted at; a later claim by anyone raises it.
    pub epoch: i64,
}

/// What fences one write: the slot must still be owned by `member` at
/// `epoch`. Passed as SQL parameters to a statement that checks it.
#[derive(Debug, Clone)]
pub struct Fence {
    /// The lease group.
    pub group: String,
    /// The owning member.
    pub member: Uuid,
    /// The slot and epoch granted.
    pub grant: Grant,
}

/// The outcome of one round of renewing and claiming.
#[derive(Debug, Clone)]
pub struct Round {
    /// Every slot this member owns now (renewed or newly claimed).
    pub owned: Vec<Grant>,
    /// Owned slots over this member's fair share: stop their work, then
    /// [`Membership::release`] them.
    pub surplus: Vec<Grant>,
    /// Until when the grants may be used without another round.
    pub valid_until: Instant,
    /// Whether this member holds fewer than its fair share: the rest are
    /// still held by others, who release them once their work on them
    /// stops. A member may then run its next round sooner, to take them as
    /// soon as they come free.
    pub wanting: bool,
}

/// The channel on which members tell the others of their group that the
/// shares changed (the payload is the group's name); see
/// [`Membership::tell_shares_changed`].
pub const SHARES_CHANNEL: &str = "orderly_lease_shares";

/// How many rounds a member under its fair share (see [`Round::wanting`])
/// makes per usual round.
const WANTING_ROUNDS: u32 = 10;

/// A round's outcome: owned, surplus, and whether under the fair share.
type Shares = (Vec<Grant>, Vec<Grant>, bool);

/// Who owns one slot, for operators.
#[derive(Debug, Clone)]
pub struct SlotOwner {
    /// The slot.
    pub slot: i32,
    /// The owning member, if any.
    pub owner: Option<Uuid>,
    /// Where the owner runs (pod or host name and process id).
    pub instance: Option<String>,
    /// The slot's epoch.
    pub epoch: i64,
    /// Whether the owner's lease is live (an expired one is free to take).
    pub live: bool,
    /// Why the owner holds a partition of the slot back, if it does.
    pub held: Option<String>,
}

/// A round could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// No connection could be had.
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("database error: {}", crate::postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The round took longer than half a lease; says where it was.
    #[error("lease round timed out {0}")]
    TimedOut(&'static str),
}

/// The statements of one schema.
#[derive(Debug, Clone)]
struct Sql {
    ensure_slots: String,
    heartbeat: String,
    renew: String,
    members: String,
    claim: String,
    release: String,
    leave: String,
    forget_members: String,
    set_held: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let sql = |text: &str| text.replace("{schema}", schema);
        Self {
            ensure_slots: sql(include_str!("ownership/ensure_slots.sql")),
            heartbeat: sql(include_str!("ownership/heartbeat.sql")),
            renew: sql(include_str!("ownership/renew.sql")),
            members: sql(include_str!("ownership/members.sql")),
            claim: sql(include_str!("ownership/claim.sql")),
            release: sql(include_str!("ownership/release.sql")),
            leave: sql(include_str!("ownership/leave.sql")),
            forget_members: sql(include_str!("ownership/forget_members.sql")),
            set_held: sql(include_str!("ownership/set_held.sql")),
        }
    }
}

/// This replica's membership in one lease group.
#[derive(Debug)]
pub struct Membership {
    pool: Pool,
    group: String,
    member: Uuid,
    instance: String,
    ttl: Duration,
    sql: Sql,
    /// Slot count already ensured in the table (0: not yet).
    ensured: AtomicI32,
    rounds: AtomicU64,
    /// Whether the current round has its connection (a round that times
    /// out says which part was slow: the pool or the statements).
    connected: AtomicBool,
    /// The connection rounds run on, kept out of the pool between rounds:
    /// a busy replica's work can hold every other connection of the pool,
    /// and a round waiting behind it would let the leases lapse. A failed
    /// round gives it back; the next takes a fresh one.
    session: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
}

impl Membership {
    /// A new member of `group`, whose tables live in `schema`; nothing is
    /// written until the first [`round`](Self::round).
    pub fn new(pool: Pool, schema: &str, group: impl Into<String>, ttl: Duration) -> Self {
        Self {
            pool,
            group: group.into(),
            member: Uuid::now_v7(),
            instance: instance_name(),
            ttl,
            sql: Sql::new(schema),
            ensured: AtomicI32::new(0),
            rounds: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            session: tokio::sync::Mutex::default(),
        }
    }

    /// The pool its rounds use.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// This member's id.
    pub fn member(&self) -> Uuid {
        self.member
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// How often rounds should run: three per lease, so one late round
    /// does not lose it.
    pub fn round_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// When to run the round after `round`: the usual interval, or a tenth
    /// of it while the member is under its fair share with the rest still
    /// held by others, which release them once their work on them stops
    /// (so the member takes them within a few hundred milliseconds, not up
    /// to a round later, while their work waits for an owner).
    pub fn next_round_in(&self, round: &Round) -> Duration {
        if round.wanting {
            self.soonest_round_in()
        } else {
            self.round_interval()
        }
    }

    /// The shortest pause between two rounds: a member told that the
    /// shares changed (another joined under its share, or released slots)
    /// rounds again no sooner than this after its last round, so members
    /// telling each other cannot make rounds run back to back.
    pub fn soonest_round_in(&self) -> Duration {
        self.round_interval() / WANTING_ROUNDS
    }

    /// Tells the group's members listening on [`SHARES_CHANNEL`] that the
    /// shares changed (this member is under its share, released slots or
    /// left), so they round again soon rather than at their next interval.
    /// A hint only, on a pooled connection and bounded by
    /// [`Self::soonest_round_in`] (a late hint is of no use): a failure is
    /// logged at debug level, and the rounds on the interval still decide.
    pub async fn tell_shares_changed(&self) {
        self.hint(SHARES_CHANNEL, &self.group).await;
    }

    /// Sends `payload` on `channel` as [`Self::tell_shares_changed`] sends
    /// its news, for members that listen for it elsewhere (the relays, on
    /// their outbox channel).
    pub async fn hint(&self, channel: &str, payload: &str) {
        let tell = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            let statement = client
                .prepare_cached(include_str!("ownership/hint.sql"))
                .await
                .map_err(|e| crate::postgres::describe(&e))?;
            client
                .execute(&statement, &[&channel, &payload])
                .await
                .map_err(|e| crate::postgres::describe(&e))
        };
        let told = tokio::time::timeout(self.soonest_round_in(), tell)
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()));
        if let Err(error) = told {
            tracing::debug!(group = %self.group, %error, "cannot tell the other members the shares changed");
        }
    }

    /// The fence of a grant of this member.
    pub fn fence(&self, grant: Grant) -> Fence {
        Fence {
            group: self.group.clone(),
            member: self.member,
            grant,
        }
    }

    /// Renews this member and its leases, and claims free slots up to its
    /// fair share of `slots`; one transaction, bounded by half a lease.
    pub async fn round(&self, slots: i32) -> Result<Round, OwnershipError> {
        let started = Instant::now();
        self.connected.store(false, Ordering::Relaxed);
        let round = tokio::time::timeout(self.ttl / 2, self.round_inner(slots))
            .await
            .map_err(|_| {
                OwnershipError::TimedOut(if self.connected.load(Ordering::Relaxed) {
                    "in its statements (waiting for locks or a busy server)"
                } else {
                    "waiting for a database connection from the pool"
                })
            })??;
        let (owned, surplus, wanting) = round;
        Ok(Round {
            owned,
            surplus,
            valid_until: started + self.ttl,
            wanting,
        })
    }

    async fn round_inner(&self, slots: i32) -> Result<Shares, OwnershipError> {
        let mut session = self.session.lock().await;
        let mut client = match session.take() {
            Some(client) => client,
            None => self.pool.get().await?,
        };
        self.connected.store(true, Ordering::Relaxed);
        let round = self.round_on(&mut client, slots).await;
        if round.is_ok() {
            *session = Some(client);
        }
        round
    }

    async fn round_on(
        &self,
        client: &mut deadpool_postgres::Object,
        slots: i32,
    ) -> Result<Shares, OwnershipError> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let tx = client.transaction().await?;
        if self.ensured.load(Ordering::Relaxed) != slots {
            let statement = tx.prepare_cached(&self.sql.ensure_slots).await?;
            tx.execute(&statement, &[&self.group, &slots]).await?;
        }
        let statement = tx.prepare_cached(&self.sql.heartbeat).await?;
        tx.execute(
            &statement,
            &[&self.group, &self.member, &self.instance, &ttl_ms],
        )
        .await?;
        let mut owned = grants(&tx, &self.sql.renew, &[&self.group, &self.member]).await?;
        let statement = tx.prepare_cached(&self.sql.members).await?;
        let members: Vec<(Uuid, i64, i64)> = tx
            .query(&statement, &[&self.group])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let total = members.first().map_or(0, |m| m.2);
        let counts: Vec<(Uuid, i64)> = members.iter().map(|m| (m.0, m.1)).collect();
        let quota = fair_share(&counts, total, self.member);
        let held = i64::try_from(owned.len()).unwrap_or(i64::MAX);
        if held < quota {
            let claimed = grants(
                &tx,
                &self.sql.claim,
                &[&self.group, &self.member, &(quota - held)],
            )
            .await?;
            owned.extend(claimed);
        }
        if self
            .rounds
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(100)
        {
            let statement = tx.prepare_cached(&self.sql.forget_members).await?;
            tx.execute(&statement, &[&self.group]).await?;
        }
        tx.commit().await?;
        self.ensured.store(slots, Ordering::Relaxed);
        owned.sort_by_key(|g| g.slot);
        let keep = usize::try_from(quota.max(0)).unwrap_or(usize::MAX);
        let surplus = owned.iter().skip(keep).copied().collect();
        let wanting = owned.len() < keep;
        Ok((owned, surplus, wanting))
    }

    /// Gives `slots` back (their work has stopped); whoever is under its
    /// share takes them at its next round.
    pub async fn release(&self, slots: &[i32]) -> Result<(), OwnershipError> {
        if slots.is_empty() {
            return Ok(());
        }
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.sql.release).await?;
        client
            .execute(&statement, &[&self.group, &self.member, &slots])
            .await?;
        Ok(())
    }

    /// Records on the slot's lease why its owner holds a partition back
    /// (`None`: reading normally again), so any replica can tell operators.
    pub async fn set_held(&self, grant: Grant, held: Option<&str>) -> Result<(), OwnershipError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.sql.set_held).await?;
        client
            .execute(
                &statement,
                &[&self.group, &grant.slot, &self.member, &grant.epoch, &held],
            )
            .await?;
        Ok(())
    }

    /// Leaves the group (clean stop): releases `slots` and the member row,
    /// so the others share them out at their next round, not after a TTL.
    pub async fn leave(&self, slots: &[i32]) -> Result<(), OwnershipError> {
        self.release(slots).await?;
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(&self.sql.leave).await?;
        client
            .execute(&statement, &[&self.group, &self.member])
            .await?;
        Ok(())
    }
}

async fn grants(
    tx: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Grant>, OwnershipError> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx
        .query(&statement, params)
        .await?
        .iter()
        .map(|row| Grant {
            slot: row.get(0),
            epoch: row.get(1),
        })
        .collect())
}

/// Who owns each slot of `group` (tables in `schema`).
pub async fn owners(
    client: &impl GenericClient,
    schema: &str,
    group: &str,
) -> Result<Vec<SlotOwner>, tokio_postgres::Error> {
    let sql = include_str!("ownership/owners.sql").replace("{schema}", schema);
    let rows = client.query(&sql, &[&group]).await?;
    Ok(rows
        .iter()
        .map(|row| SlotOwner {
            slot: row.get(0),
            owner: row.get(1),
            instance: row.get(2),
            epoch: row.get(3),
            live: row.get(4),
            held: row.get(5),
        })
        .collect())
}

/// Where this process runs, as operators know it: the pod or host name
/// and the process id.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}/{}", std::process::id())
}

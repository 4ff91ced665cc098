//! A source's buckets held under leases (`orderly::ownership`): a keeper
//! task renews and claims them every third of the lease, and at once when
//! another relay says the shares changed; the relay loop publishes only
//! what the latest grant lets it.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use orderly::ownership::{Grant, Membership};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::SourceState;
use crate::store::{self, Fence};

/// The lease group of the relays in each source's schema.
pub const RELAY_GROUP: &str = "orderly-relay";

/// What the last successful round granted.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Every bucket owned, at the epoch granted.
    pub owned: Vec<Grant>,
    /// Owned buckets over this relay's fair share: finish their rows, then
    /// release them.
    pub surplus: Vec<i32>,
    /// Until when the grants may be used without another round.
    pub valid_until: Instant,
}

impl Lease {
    /// Nothing granted (before the first round).
    pub fn none() -> Self {
        Self {
            owned: Vec::new(),
            surplus: Vec::new(),
            valid_until: Instant::now(),
        }
    }
}

/// Renews and claims the source's buckets until `stop`, publishing each
/// round's grant on `grants`. A failed round changes nothing: the last
/// grant runs out at its `valid_until`, which stops publishing.
pub async fn keep(
    state: Arc<SourceState>,
    membership: Arc<Membership>,
    grants: watch::Sender<Lease>,
    stop: CancellationToken,
) {
    let mut buckets = None;
    let mut failing = false;
    while !stop.is_cancelled() {
        let started = Instant::now();
        let mut pause = membership.round_interval();
        let outcome = match buckets {
            Some(count) => membership.round(count).await.map_err(|e| e.to_string()),
            None => match bucket_count(&membership).await {
                Ok(count) => {
                    buckets = Some(count);
                    continue;
                }
                Err(error) => Err(error),
            },
        };
        match outcome {
            Ok(round) => {
                pause = membership.next_round_in(&round);
                if round.wanting {
                    // The holders would notice this relay only at their
                    // next rounds, up to an interval away. Told on a task of
                    // its own: a pooled connection may be slow to come, and
                    // the rounds must not wait for one.
                    let (source, membership) = (state.name.clone(), membership.clone());
                    tokio::spawn(async move {
                        super::tell_shares_changed(&source, &membership).await;
                    });
                }
                if failing {
                    tracing::info!(source = %state.name, "relay leases renewed again");
                    failing = false;
                }
                let lease = Lease {
                    owned: round.owned,
                    surplus: round.surplus.iter().map(|g| g.slot).collect(),
                    valid_until: round.valid_until,
                };
                state.set_owned(&lease.owned);
                // The relay loop hears of a change of buckets, or of grants
                // usable again after they ran out; a plain renewal only moves
                // `valid_until` (waking the loop each round would end its
                // wait for notifications every few seconds).
                grants.send_if_modified(|current| {
                    let news = current.owned != lease.owned
                        || current.surplus != lease.surplus
                        || Instant::now() >= current.valid_until;
                    *current = lease;
                    news
                });
            }
            Err(error) => {
                // Logged once per streak; the grant runs out on its own.
                if !failing {
                    tracing::warn!(source = %state.name, %error, "cannot renew the relay's bucket leases");
                    failing = true;
                }
                if Instant::now() >= grants.borrow().valid_until {
                    state.set_owned(&[]);
                    // Told once: the loop lets go of what it held for the
                    // buckets (their wake-up locks), which others may own now.
                    grants.send_if_modified(|current| {
                        let had = !current.owned.is_empty();
                        current.owned.clear();
                        current.surplus.clear();
                        had
                    });
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
            // Another relay joined, released or left: round again now, or
            // as soon as the spacing between rounds allows.
            () = state.shares_changed.notified() => {
                let soonest = started + membership.soonest_round_in();
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep_until(soonest) => {}
                }
            }
        }
    }
}

async fn bucket_count(membership: &Membership) -> Result<i32, String> {
    let client = membership.pool().get().await.map_err(|e| e.to_string())?;
    store::bucket_count(&client)
        .await
        .map_err(|e| e.to_string())
}

/// The relay loop's view of its buckets: the latest grant, minus buckets it
/// released or found lost since (until a round confirms it).
#[derive(Debug)]
pub struct Buckets {
    group: String,
    member: uuid::Uuid,
    grants: watch::Receiver<Lease>,
    /// Buckets released or found lost, at the epoch they were held at: a
    /// grant still listing one at that epoch predates the finding.
    given_up: HashMap<i32, i64>,
}

impl Buckets {
    /// Follows the grants of `membership`'s keeper.
    pub fn new(membership: &Membership, grants: watch::Receiver<Lease>) -> Self {
        Self {
            group: membership.group().to_owned(),
            member: membership.member(),
            grants,
            given_up: HashMap::new(),
        }
    }

    /// Waits for the next grant.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.grants.changed().await
    }

    /// The buckets owned now, at their epochs; none once the grant ran out.
    pub fn owned(&self) -> Vec<Grant> {
        let lease = self.grants.borrow();
        if Instant::now() >= lease.valid_until {
            return Vec::new();
        }
        lease
            .owned
            .iter()
            .filter(|g| self.given_up.get(&g.slot) != Some(&g.epoch))
            .copied()
            .collect()
    }

    /// Owned buckets to hand over (over the fair share).
    pub fn surplus(&self) -> HashSet<i32> {
        let owned: HashSet<i32> = self.owned().iter().map(|g| g.slot).collect();
        let lease = self.grants.borrow();
        lease
            .surplus
            .iter()
            .filter(|slot| owned.contains(slot))
            .copied()
            .collect()
    }

    /// The buckets to read rows from: owned and not being handed over.
    pub fn readable(&self) -> Vec<i32> {
        let surplus = self.surplus();
        self.owned()
            .iter()
            .map(|g| g.slot)
            .filter(|slot| !surplus.contains(slot))
            .collect()
    }

    /// Whether `bucket` is owned now.
    pub fn owns(&self, bucket: i32) -> bool {
        self.owned().iter().any(|g| g.slot == bucket)
    }

    /// The fence for writes to the owned buckets' rows.
    pub fn fence(&self) -> Fence {
        Fence {
            group: self.group.clone(),
            member: self.member,
            grants: self.owned(),
        }
    }

    /// Stops using `slots` until a round grants them again: they were
    /// released (their work stopped and the release written), or a fenced
    /// write found them taken by another relay.
    pub fn give_up(&mut self, slots: &[i32]) {
        let owned = self.owned();
        for grant in owned.iter().filter(|g| slots.contains(&g.slot)) {
            self.given_up.insert(grant.slot, grant.epoch);
        }
    }
}

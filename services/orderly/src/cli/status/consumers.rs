//! The consumers section of `orderly status`: for each consumer of each
//! component, which replica owns each partition (its instance and the
//! lease's epoch), whether the lease is live, and why a partition is held
//! back, if it is. Asked of each component's DeadLetterService, which reads
//! the leases from the database, so any replica answers for all of them.

use orderly::proto::v1::{ConsumerStatus, GetConsumerStatusRequest, PartitionOwner};
use serde_json::{Value, json};

use super::super::{
    Common,
    dead_letters::{self, Component},
    output::{print_table, table},
    rpc,
};

/// The consumers of one component, or why it did not say (`None`: it runs
/// no consumer).
pub struct Owners {
    component: Component,
    answer: Result<Option<Vec<ConsumerStatus>>, String>,
}

/// Asks `component` who owns its consumers' partitions; a failure becomes
/// the answer, never an error.
pub async fn fetch(common: &Common, component: Component) -> Owners {
    let answer = async {
        let mut client = dead_letters::client(common, component).await?;
        let request = GetConsumerStatusRequest {
            consumer: String::new(),
        };
        match client.get_consumer_status(request).await {
            Ok(response) => Ok(Some(response.into_inner().consumers)),
            Err(status) if dead_letters::not_served(&status) => Ok(None),
            Err(status) => Err(anyhow::anyhow!(rpc::describe(&status))),
        }
    }
    .await
    .map_err(|e: anyhow::Error| format!("{e:#}"));
    Owners { component, answer }
}

/// The state of a partition's lease: `live`, `expired` (its owner stopped
/// renewing; any replica may take it) or `free` (released, or never taken).
fn lease(owner: &PartitionOwner) -> &'static str {
    if owner.live {
        "live"
    } else if owner.owner_member.is_empty() {
        "free"
    } else {
        "expired"
    }
}

/// The partitions of `consumer` that no replica reads now.
fn without_live_owner(consumer: &ConsumerStatus) -> Vec<i32> {
    consumer
        .partitions
        .iter()
        .filter(|p| !p.live)
        .map(|p| p.partition)
        .collect()
}

fn partition_json(owner: &PartitionOwner) -> Value {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    json!({
        "partition": owner.partition,
        "owner_instance": text(&owner.owner_instance),
        "owner_member": text(&owner.owner_member),
        "epoch": owner.epoch,
        "live": owner.live,
        "lease": lease(owner),
        "held": text(&owner.held),
    })
}

/// The JSON of one component's consumers; `None` when it runs none.
pub fn to_json(owners: &Owners) -> Option<Value> {
    let name = owners.component.name();
    match &owners.answer {
        Ok(None) => None,
        Ok(Some(consumers)) => Some(json!({
            "component": name,
            "consumers": consumers.iter().map(|c| json!({
                "consumer": c.consumer,
                "lease_group": c.lease_group,
                "partitions": c.partitions.iter().map(partition_json).collect::<Vec<_>>(),
                "without_live_owner": without_live_owner(c),
            })).collect::<Vec<_>>(),
        })),
        Err(error) => Some(json!({ "component": name, "error": error })),
    }
}

/// Prints one row per partition, then a line for each consumer with a
/// partition no replica reads (or no partitions yet).
pub fn print(all: &[Owners]) {
    let mut rows = table(&[
        "PARTITION OWNERS",
        "CONSUMER",
        "PARTITION",
        "OWNER",
        "EPOCH",
        "LEASE",
        "HELD",
    ]);
    let mut notes = Vec::new();
    for owners in all {
        let component = owners.component.name();
        match &owners.answer {
            Ok(None) => {}
            Ok(Some(consumers)) => {
                for consumer in consumers {
                    for p in &consumer.partitions {
                        let owner = match (p.owner_instance.as_str(), p.owner_member.as_str()) {
                            ("", "") => "-",
                            ("", member) => member,
                            (instance, _) => instance,
                        };
                        rows.add_row(vec![
                            component.to_owned(),
                            consumer.consumer.clone(),
                            p.partition.to_string(),
                            owner.to_owned(),
                            p.epoch.to_string(),
                            lease(p).to_owned(),
                            p.held.clone(),
                        ]);
                    }
                    notes.extend(note(component, consumer));
                }
            }
            Err(error) => {
                rows.add_row(vec![component, "-", "-", "-", "-", "DOWN", ""]);
                notes.push(format!("{component}: partition owners DOWN ({error})"));
            }
        }
    }
    print_table(&rows);
    for line in notes {
        println!("{line}");
    }
}

/// What an operator should know about `consumer` beyond its rows.
fn note(component: &str, consumer: &ConsumerStatus) -> Option<String> {
    let name = &consumer.consumer;
    if consumer.partitions.is_empty() {
        return Some(format!(
            "{component}/{name}: no partition leases yet (no replica has found its topics)"
        ));
    }
    let unowned = without_live_owner(consumer);
    if unowned.is_empty() {
        return None;
    }
    let list: Vec<String> = unowned.iter().map(i32::to_string).collect();
    Some(format!(
        "{component}/{name}: no live owner for partition{} {}: nothing reads {} until a replica takes {} at its next lease round",
        if unowned.len() == 1 { "" } else { "s" },
        list.join(", "),
        if unowned.len() == 1 { "it" } else { "them" },
        if unowned.len() == 1 { "it" } else { "them" },
    ))
}

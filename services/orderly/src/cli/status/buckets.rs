//! The relay buckets section of `orderly status`: for each outbox source,
//! which relay replica publishes which buckets and what waits in them, one
//! row per owner (the JSON lists every bucket). Read from RelayAdmin, which
//! reads the leases and backlogs from the database, so any replica answers
//! for all of them.

use orderly::proto::v1::{RelayBucket, SourceStatus};
use serde_json::{Value, json};

use super::super::output::{millis, print_table, table};

/// The state of a bucket's lease: `live`, `expired` (its owner stopped
/// renewing; any relay may take it) or `free` (released, or never taken).
fn lease(bucket: &RelayBucket) -> &'static str {
    if bucket.live {
        "live"
    } else if bucket.owner_member.is_empty() {
        "free"
    } else {
        "expired"
    }
}

/// The JSON of a source's buckets.
pub fn to_json(source: &SourceStatus) -> Value {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    json!(
        source
            .buckets
            .iter()
            .map(|b| json!({
                "bucket": b.bucket,
                "owner_instance": text(&b.owner_instance),
                "owner_member": text(&b.owner_member),
                "epoch": b.epoch,
                "lease": lease(b),
                "backlog": b.backlog,
                "oldest_unpublished_age_ms": b.oldest_unpublished_age_ms,
            }))
            .collect::<Vec<_>>()
    )
}

/// `0-3,8,10-11`: a sorted list of buckets, runs folded.
fn ranges(buckets: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < buckets.len() {
        let start = buckets[i];
        let mut end = start;
        while i + 1 < buckets.len() && buckets[i + 1] == end + 1 {
            i += 1;
            end = buckets[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Prints one row per source and owner (buckets without a live owner under
/// `-`).
pub fn print(sources: &[SourceStatus]) {
    let mut rows = table(&["RELAY BUCKETS", "OWNER", "BUCKETS", "BACKLOG", "OLDEST"]);
    for source in sources {
        let mut owners: Vec<(String, Vec<&RelayBucket>)> = Vec::new();
        for bucket in &source.buckets {
            let owner = if !bucket.live {
                "-".to_owned()
            } else if bucket.owner_instance.is_empty() {
                bucket.owner_member.clone()
            } else {
                bucket.owner_instance.clone()
            };
            match owners.iter_mut().find(|(name, _)| *name == owner) {
                Some((_, list)) => list.push(bucket),
                None => owners.push((owner, vec![bucket])),
            }
        }
        for (owner, buckets) in owners {
            let numbers: Vec<u32> = buckets.iter().map(|b| b.bucket).collect();
            let backlog: u64 = buckets.iter().map(|b| b.backlog).sum();
            let oldest = buckets
                .iter()
                .map(|b| b.oldest_unpublished_age_ms)
                .max()
                .unwrap_or(0);
            rows.add_row(vec![
                source.name.clone(),
                owner,
                ranges(&numbers),
                backlog.to_string(),
                if backlog == 0 {
                    "-".to_owned()
                } else {
                    millis(oldest)
                },
            ]);
        }
    }
    print_table(&rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_buckets_are_folded() {
        assert_eq!(ranges(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(ranges(&[5]), "5");
        assert_eq!(ranges(&[]), "");
    }
}

//! Deleting a test's topics from the shared broker once the test is done
//! with them: the broker keeps every topic in memory for as long as it
//! runs, and its cost per record grows with them.
//!
//! Not while a consumer of this process may still fetch them: tansu 0.6.0
//! answers a fetch of a deleted topic with a leader hint that has neither
//! topic id nor name, and librdkafka 2.12 dereferences the missing name and
//! takes the whole process down (SIGSEGV). So the deletion waits until the
//! test's components are gone; see [`crate::test_end`].

use std::time::Duration;

use orderly::kafka::KafkaConfig;
use rdkafka::{
    admin::{AdminClient, AdminOptions},
    client::{Client, ClientContext, DefaultClientContext},
    error::KafkaResult,
    types::RDKafkaErrorCode,
};

use crate::test_end::{on_own_thread, run_at_test_end};

/// How long one broker call (a listing, a deletion) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a test's end waits for its topics to go before it moves on
/// (leaving them, and saying so).
const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

/// Rounds of listing and deleting: a component still stopping while its
/// topics go may create one again (the relay does after a failed delivery).
const ROUNDS: usize = 3;

/// Deletes every topic under a test's prefix when dropped, components'
/// topics (dead-letter topics and the like) included, once the test's
/// components are gone (see [`crate::test_end`]).
#[derive(Debug)]
pub(super) struct TopicCleanup(pub(super) KafkaConfig);

impl Drop for TopicCleanup {
    fn drop(&mut self) {
        let config = self.0.clone();
        run_at_test_end(move || delete_or_report(config));
    }
}

/// Deletes the prefix's topics on a thread of its own (the caller may be a
/// runtime's thread, which must not block on the admin client's futures),
/// waiting up to [`CLEANUP_DEADLINE`]; a failure is reported, never raised.
fn delete_or_report(config: KafkaConfig) {
    let prefix = config.kafka_topic_prefix.clone();
    // The admin client polls on a thread of its own, so its futures need
    // no runtime.
    let result = on_own_thread("topic-cleanup", CLEANUP_DEADLINE, move || {
        delete_prefix(&config)
    });
    if let Err(error) = result {
        eprintln!("the test topics {prefix}* are left on the broker: {error}");
    }
}

/// Deletes every topic whose name starts with `config`'s prefix, until the
/// broker lists none. Blocks.
fn delete_prefix(config: &KafkaConfig) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config
        .client_config()
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let options = AdminOptions::new()
        .request_timeout(Some(CALL_TIMEOUT))
        .operation_timeout(Some(CALL_TIMEOUT));
    for _ in 0..ROUNDS {
        let names = topics_with_prefix(admin.inner(), &config.kafka_topic_prefix)
            .map_err(|e| format!("list topics: {e}"))?;
        if names.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = futures::executor::block_on(admin.delete_topics(&names, &options))
            .map_err(|e| format!("delete topics: {e}"))?;
        for result in results {
            match result {
                // Gone already: what was wanted.
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((name, code)) => return Err(format!("delete {name}: {code}")),
            }
        }
    }
    Err(format!("topics came back {ROUNDS} times"))
}

/// The names of the broker's topics that start with `prefix`. Blocks.
pub(super) fn topics_with_prefix<C: ClientContext>(
    client: &Client<C>,
    prefix: &str,
) -> KafkaResult<Vec<String>> {
    let metadata = client.fetch_metadata(None, CALL_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .map(|topic| topic.name())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

//! The harness's test databases on the shared Postgres: each is dropped
//! once its test is done with it, and never while the test's components
//! may still use it.

use std::time::Duration;

use orderly_integration_tests::{TestDatabase, TestPlatform, last_seen, run_as_a_test};

/// Long enough for a test's end to drop its database on a busy machine.
const WAIT: Duration = Duration::from_secs(30);

/// Whether database `name` exists on the shared server, asked through a
/// connection of `probe`'s (another test database).
async fn exists(probe: &TestDatabase, name: &str) -> bool {
    probe
        .client()
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .expect("pg_database")
        .get(0)
}

#[test]
fn a_tests_database_goes_when_its_thread_ends_after_its_components() {
    // A test of its own, as libtest runs one: a thread running a
    // current-thread runtime, which its components share.
    let name = run_as_a_test(|| async {
        let db = TestDatabase::create().await;
        let name = db.name.clone();
        let platform = TestPlatform::builder().database(db).order().start().await;
        let probe = TestDatabase::create().await;
        drop(platform);
        // The order service's pool lives on this runtime until it is
        // dropped: the database stays meanwhile.
        assert!(exists(&probe, &name).await, "dropped under its components");
        name
    });
    run_as_a_test(move || async move {
        let probe = TestDatabase::create().await;
        let left = last_seen(WAIT, || async { Some(exists(&probe, &name).await) }, |e| !e).await;
        assert_eq!(left, Some(false), "the test database {name} is left behind");
    });
}

//! Plans that stay index lookups whatever the statistics: a consumer's
//! transactions plan the acknowledgement's version update as a lookup per
//! aggregate even on a table that looked empty when the plan was made, and
//! the owner of slot 0 analyzes the bookkeeping tables as they grow.

use orderly_integration_tests::eventually;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{WAIT, setup};

const ACK: &str = include_str!("../../../../src/consumer/store/ack.sql");
const INDEX_PLANS: &str = include_str!("../../../../src/consumer/store/index_plans.sql");

/// The generic plan of the acknowledgement on the (empty) versions table
/// of `orders`, made inside a transaction that ran `settings` first.
async fn generic_ack_plan(db: &mut tokio_postgres::Client, settings: &str) -> String {
    let tx = db.transaction().await.expect("begin");
    tx.batch_execute(settings).await.expect("settings");
    tx.batch_execute(&format!(
        "SET LOCAL plan_cache_mode = force_generic_plan; PREPARE ack AS {}",
        ACK.replace("{schema}", "orders")
    ))
    .await
    .expect("prepare the acknowledgement");
    let rows = tx
        .query(
            "EXPLAIN EXECUTE ack('c', 't', 0, 1, 'g', '00000000-0000-0000-0000-000000000001', 1, '{}', '{a}', '{0}', '{1}', \
             '00000000-0000-0000-0000-000000000000', true, NULL)",
            &[],
        )
        .await
        .expect("explain");
    tx.batch_execute("DEALLOCATE ack")
        .await
        .expect("deallocate");
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_consumer_transaction_plans_the_version_update_as_index_lookups_on_a_table_that_looked_empty()
 {
    let setup = setup().await;
    let mut db = setup.db.client().await;
    db.batch_execute("ANALYZE orders.aggregate_versions")
        .await
        .expect("analyze the empty table");
    // Without the settings, the planner scans the table it believes empty
    // (the plan a growing table kept until its next analyze).
    let plain = generic_ack_plan(&mut db, "SELECT 1").await;
    assert!(
        plain.contains("Seq Scan on aggregate_versions"),
        "the planner's own choice on an empty table:\n{plain}"
    );
    let plan = generic_ack_plan(&mut db, INDEX_PLANS).await;
    assert!(
        !plan.contains("Seq Scan on aggregate_versions") && !plan.contains("Hash Join"),
        "a scan of the versions table in a consumer's transaction:\n{plan}"
    );
    assert!(
        plan.contains("Index Scan using aggregate_versions_pkey on aggregate_versions"),
        "no lookup of the versions by key:\n{plan}"
    );
}

#[tokio::test]
async fn the_owner_of_slot_0_analyzes_the_versions_table_as_it_grows() {
    let setup = setup().await;
    let shutdown = CancellationToken::new();
    let _consumer = setup.spawn(&shutdown);
    // Enough aggregates for several pages of versions.
    let ids: Vec<String> = (0..1_000).map(|_| Uuid::now_v7().to_string()).collect();
    let events: Vec<(&str, u64, Uuid)> = ids
        .iter()
        .map(|id| (id.as_str(), 1, Uuid::now_v7()))
        .collect();
    setup.produce(&events).await;
    let db = setup.db.client().await;
    // Manual analyzes only (autovacuum's are counted apart); the counter is
    // reported when the analyzing session goes idle.
    eventually("the versions table to be analyzed", WAIT, || async {
        let analyzed: i64 = db
            .query_one(
                "SELECT analyze_count FROM pg_stat_user_tables \
                 WHERE schemaname = 'orders' AND relname = 'aggregate_versions'",
                &[],
            )
            .await
            .expect("statistics")
            .get(0);
        (analyzed > 0).then_some(())
    })
    .await;
    shutdown.cancel();
}

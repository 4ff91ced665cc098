-- The server drops this session within about 25 s of losing the relay
-- (e.g. a network partition, where no FIN or RST ever arrives), which ends
-- whatever it holds (a mark's share lock on its leases); the OS default
-- would be hours.
-- Keepalives cover an idle session; tcp_user_timeout covers one with
-- unacknowledged data in flight (NOTIFYs, results), where keepalives never
-- fire and retransmission alone would take about 15 minutes.
SET tcp_keepalives_idle = 10;
SET tcp_keepalives_interval = 5;
SET tcp_keepalives_count = 3;
SET tcp_user_timeout = 25000;
-- Marks and prunes need no flush to disk before the relay moves on: a mark
-- lost in a database crash only makes those rows publish again, which
-- at-least-once delivery allows. This takes an fsync off every batch.
SET synchronous_commit = off;
-- Every statement of this session reads the outbox by an index, in id order
-- or by id. Without statistics (a table just filled, not yet analysed) the
-- planner read the whole backlog with a bitmap scan, sorted it and kept one
-- batch: 80 ms per batch at 100 000 rows, so a large backlog drained ten
-- times slower than a small one. The ordered index scan stops at the batch.
SET enable_bitmapscan = off;
SET enable_seqscan = off;
-- Plan each statement once. The relay's statements are index lookups
-- whose best plan does not depend on their parameters, and planning them
-- again for every call (as a custom plan) cost more than running them: at
-- 100 orders/s, 0.2 ms of planning against 0.1 ms of execution per read,
-- and a mark's planning as much as its execution. The rows in flight are
-- left out with NOT IN over a subquery, which a generic plan tests with a
-- hash (`id <> ALL($2)` compared each row with every id in flight, which
-- made more batches in flight slower: 16 batches of 500, 3 600 rows/s).
SET plan_cache_mode = force_generic_plan;

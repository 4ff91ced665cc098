-- The oldest unpublished rows of the outbox, in commit-independent id
-- order. No id watermark: a transaction that took a lower id but committed
-- later is still picked up, because its row is unpublished whenever it
-- appears.
-- The rows in flight (being produced, or delivered and still being marked)
-- are left out by reading only the gaps between their runs of consecutive
-- ids ($2 after, $3 before; one index range scan each) and, past the last
-- run the relay lists, by NOT IN over the rest ($4), tested with a hash,
-- also in the generic plan this session uses. Walking the rows in flight
-- instead made a read of 1 000 rows take 5 ms with 4 000 in flight and
-- 10 ms with 8 000, against 0.8 ms by the gaps.
-- Set-aside rows are left out, and so is every later row of their key: an
-- order's events never pass one of its own that was set aside
-- (not_behind_set_aside.sql).
-- A relay that owns only some buckets reads only those ($5): store.rs
-- splices that filter in; a relay owning every bucket reads without it.
-- Two statements rather than one with the bucket filter always on: with
-- it, a relay owning every bucket drained a 100 000-row backlog at 23 000
-- events/s against 31 000-32 500 without (two runs each, alternated).
-- (With it, a read walks, in id order, the rows of the buckets owned
-- elsewhere, their rows in flight included; an index on (bucket, id) would
-- avoid that, but the planner then chose it for the marks' updates by id
-- too, and a 100 000-row backlog drained eight times slower.)
SELECT r.id, r.bucket, r.topic, r.partition_key, r.payload, r.headers
FROM unnest($2::bigint[], $3::bigint[]) AS gap(after, before)
CROSS JOIN LATERAL (
    SELECT id, bucket, topic, partition_key, payload, headers
    FROM {outbox} AS o
    WHERE published_at IS NULL
      AND set_aside_at IS NULL
      {of_buckets}
      AND id > gap.after AND id < gap.before
      AND id NOT IN (SELECT unnest($4::bigint[]))
      AND {not_behind_set_aside}
    ORDER BY id
    LIMIT $1
) AS r
ORDER BY r.id
LIMIT $1

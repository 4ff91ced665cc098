-- Like fetch_all.sql, but only of the buckets $5 this relay owns, when
-- other relays own the others. Two statements rather than one with the
-- bucket filter always on: with it, a relay owning every bucket drained a
-- 100 000-row backlog at 23 000 events/s against 31 000-32 500 without
-- (two runs each, alternated). (It walks, in id order, the rows of the
-- buckets owned elsewhere that come first; an index on (bucket, id) would
-- avoid that, but the planner then chose it for the marks' updates by id
-- too, and a 100 000-row backlog drained eight times slower.)
SELECT r.id, r.bucket, r.topic, r.partition_key, r.payload, r.headers
FROM unnest($2::bigint[], $3::bigint[]) AS gap(after, before)
CROSS JOIN LATERAL (
    SELECT id, bucket, topic, partition_key, payload, headers
    FROM {outbox} AS o
    WHERE published_at IS NULL
      AND set_aside_at IS NULL
      AND bucket = ANY($5::integer[])
      AND id > gap.after AND id < gap.before
      AND id NOT IN (SELECT unnest($4::bigint[]))
      AND {not_behind_set_aside}
    ORDER BY id
    LIMIT $1
) AS r
ORDER BY r.id
LIMIT $1

-- Like fetch_all.sql, but only of the buckets this relay owns, when other
-- relays own the others. The buckets are written into the statement's
-- text ({buckets}), so it is planned for them each time and reads
-- outbox_unpublished_bucket rather than walking, in id order, the rows of
-- buckets owned elsewhere (a peer's backlog, or a dead peer's until its
-- buckets are taken over).
SELECT id, bucket, topic, partition_key, payload, headers
FROM {outbox} AS o
WHERE published_at IS NULL
  AND set_aside_at IS NULL
  AND bucket IN ({buckets})
  AND id NOT IN (SELECT unnest($2::bigint[]))
  AND NOT EXISTS (
      SELECT 1
      FROM {outbox} AS aside
      WHERE aside.set_aside_at IS NOT NULL
        AND aside.published_at IS NULL
        AND aside.partition_key = o.partition_key
        AND aside.id < o.id
  )
ORDER BY id
LIMIT $1

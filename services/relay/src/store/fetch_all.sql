-- The oldest unpublished rows of the whole outbox (this relay owns every
-- bucket), in commit-independent id order. No id watermark: a transaction
-- that took a lower id but committed later is still picked up, because its
-- row is unpublished whenever it appears. $2 holds rows in flight (being
-- produced, or delivered and still being marked); NOT IN over a subquery
-- is tested with a hash, also in the generic plan this session uses.
-- Set-aside rows are left out, and so is every later row of their key: an
-- order's events never pass one of its own that was set aside. (The probe
-- uses the small partial index outbox_set_aside.)
SELECT id, bucket, topic, partition_key, payload, headers
FROM {outbox} AS o
WHERE published_at IS NULL
  AND set_aside_at IS NULL
  AND id NOT IN (SELECT unnest($2::bigint[]))
  AND (
      -- Evaluated once per read: with no row set aside (the usual case)
      -- the per-row probe below is skipped.
      NOT (SELECT EXISTS (
          SELECT 1 FROM {outbox}
          WHERE set_aside_at IS NOT NULL AND published_at IS NULL
      ))
      OR NOT EXISTS (
          SELECT 1
          FROM {outbox} AS aside
          WHERE aside.set_aside_at IS NOT NULL
            AND aside.published_at IS NULL
            AND aside.partition_key = o.partition_key
            AND aside.id < o.id
      )
  )
ORDER BY id
LIMIT $1

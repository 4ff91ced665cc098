-- The oldest unpublished rows of the whole outbox (this relay owns every
-- bucket), in commit-independent id order. No id watermark: a transaction
-- that took a lower id but committed later is still picked up, because its
-- row is unpublished whenever it appears. $2 holds rows in flight (being
-- produced, or delivered and still being marked); NOT IN over a subquery
-- is tested with a hash, also in the generic plan this session uses.
-- Set-aside rows are left out, and so is every later row of their key: an
-- order's events never pass one of its own that was set aside
-- (not_behind_set_aside.sql).
SELECT id, bucket, topic, partition_key, payload, headers
FROM {outbox} AS o
WHERE published_at IS NULL
  AND set_aside_at IS NULL
  AND id NOT IN (SELECT unnest($2::bigint[]))
  AND {not_behind_set_aside}
ORDER BY id
LIMIT $1

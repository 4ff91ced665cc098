-- The oldest unpublished rows, in commit-independent id order. No id
-- watermark: a transaction that took a lower id but committed later is
-- still picked up, because its row is unpublished whenever it appears.
-- $2 holds the previous batch, delivered but still being marked.
SELECT id, topic, partition_key, payload, headers
FROM {outbox}
WHERE published_at IS NULL
  AND id <> ALL($2::bigint[])
ORDER BY id
LIMIT $1

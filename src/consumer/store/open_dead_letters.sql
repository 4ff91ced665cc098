-- Open dead letters of a consumer to requeue: the ids given, or all ($2 empty).
SELECT id, topic, "partition", "offset", record_key, payload, headers
FROM {schema}.dead_letters
WHERE consumer = $1 AND requeued_at IS NULL
  AND (cardinality($2::bigint[]) = 0 OR id = ANY ($2))
ORDER BY id

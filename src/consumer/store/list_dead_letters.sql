-- A consumer's dead letters, newest first; open ones only unless $2.
SELECT id, consumer, topic, "partition", "offset", record_key, event_id, event_type,
       aggregate_id, aggregate_version, error, dead_lettered_at, requeued_at,
       requeue_attempts
FROM {schema}.dead_letters
WHERE consumer = $1 AND ($2 OR requeued_at IS NULL)
ORDER BY id DESC
LIMIT $3

-- The oldest $1 set-aside rows, each with the count of later unpublished
-- rows of its key (one pass over the backlog, hashed against the few
-- set-aside rows).
WITH aside AS (
    SELECT id, event_id, event_type, topic, partition_key, attempts,
           last_error, created_at, set_aside_at
    FROM {outbox}
    WHERE set_aside_at IS NOT NULL AND published_at IS NULL
    ORDER BY id
    LIMIT $1
)
SELECT aside.id, aside.event_id::text AS event_id, aside.event_type, aside.topic,
       aside.partition_key, aside.attempts, aside.last_error, aside.created_at,
       aside.set_aside_at, count(behind.id)::bigint AS waiting_behind
FROM aside
LEFT JOIN {outbox} AS behind
       ON behind.partition_key = aside.partition_key
      AND behind.published_at IS NULL
      AND behind.id > aside.id
GROUP BY aside.id, aside.event_id, aside.event_type, aside.topic, aside.partition_key,
         aside.attempts, aside.last_error, aside.created_at, aside.set_aside_at
ORDER BY aside.id

-- Counts one refused attempt against each row ($1 ids, $2 the broker's
-- reasons) and sets aside a row that reached $3 attempts. Only rows still
-- in line are touched, so a row is set aside (and reported) once.
UPDATE {outbox} AS o
SET attempts = o.attempts + 1,
    last_error = failed.error,
    set_aside_at = CASE WHEN o.attempts + 1 >= $3 THEN now() END
FROM unnest($1::bigint[], $2::text[]) AS failed(id, error)
WHERE o.id = failed.id
  AND o.published_at IS NULL
  AND o.set_aside_at IS NULL
RETURNING o.id, o.event_id::text AS event_id, o.event_type, o.topic,
          o.partition_key, o.attempts, o.set_aside_at IS NOT NULL AS set_aside

-- Counts one refused attempt against each row ($1 ids, $2 the broker's
-- reasons, $8 their buckets as read, checked against the rows) and sets
-- aside a row that reached $3 attempts. Only rows still in line are
-- touched, so a row is set aside (and reported) once; and only in the
-- buckets this relay still owns ($4 buckets, $5 epochs, lease group $6,
-- member $7), like marks, and filtered on the array's side like them.
WITH fence AS (
    SELECT l.slot
    FROM {schema}.leases AS l
    JOIN unnest($4::integer[], $5::bigint[]) AS g(slot, epoch)
      ON g.slot = l.slot AND g.epoch = l.epoch
    WHERE l.lease_group = $6 AND l.owner = $7
    FOR SHARE OF l
)
UPDATE {outbox} AS o
SET attempts = o.attempts + 1,
    last_error = failed.error,
    set_aside_at = CASE WHEN o.attempts + 1 >= $3 THEN now() END
FROM unnest($1::bigint[], $2::text[], $8::integer[]) AS failed(id, error, bucket)
WHERE failed.bucket IN (SELECT slot FROM fence)
  AND o.id = failed.id
  AND o.bucket = failed.bucket
  AND o.published_at IS NULL
  AND o.set_aside_at IS NULL
RETURNING o.id, o.event_id::text AS event_id, o.event_type, o.topic,
          o.partition_key, o.attempts, o.set_aside_at IS NOT NULL AS set_aside

-- Deletes at most $2 published rows older than $1 seconds; the caller
-- repeats while full batches come back.
DELETE FROM {outbox}
WHERE id IN (
    SELECT id
    FROM {outbox}
    WHERE published_at IS NOT NULL
      AND published_at < now() - make_interval(secs => $1::float8)
    ORDER BY published_at
    LIMIT $2
)

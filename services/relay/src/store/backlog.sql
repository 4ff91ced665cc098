-- Unpublished rows and the age of the oldest one, in milliseconds.
SELECT count(*)::bigint AS backlog,
       COALESCE(
           (EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)) * 1000)::bigint,
           0
       ) AS oldest_age_ms
FROM {outbox}
WHERE published_at IS NULL

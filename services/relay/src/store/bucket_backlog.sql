-- Unpublished rows per bucket (set-aside ones included) and the age of
-- each bucket's oldest, in milliseconds; buckets with none are left out.
SELECT bucket,
       count(*)::bigint AS backlog,
       (EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)) * 1000)::bigint AS oldest_age_ms
FROM {outbox}
WHERE published_at IS NULL
GROUP BY bucket
ORDER BY bucket

-- Unpublished rows (set-aside ones and those waiting behind them included),
-- the set-aside ones alone, the rows held behind them, and the age of the
-- oldest unpublished row in milliseconds. One pass over the backlog, hashed
-- against the first set-aside row of each key (there are few).
WITH aside AS (
    SELECT partition_key, min(id) AS first_id
    FROM {outbox}
    WHERE set_aside_at IS NOT NULL AND published_at IS NULL
    GROUP BY partition_key
)
SELECT count(*)::bigint AS backlog,
       (count(*) FILTER (WHERE o.set_aside_at IS NOT NULL))::bigint AS set_aside,
       (count(*) FILTER (WHERE o.set_aside_at IS NULL AND o.id > aside.first_id))::bigint AS held,
       COALESCE(
           (EXTRACT(EPOCH FROM clock_timestamp() - min(o.created_at)) * 1000)::bigint,
           0
       ) AS oldest_age_ms
FROM {outbox} AS o
LEFT JOIN aside ON aside.partition_key = o.partition_key
WHERE o.published_at IS NULL

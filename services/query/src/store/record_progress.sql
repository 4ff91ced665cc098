-- When the projector last applied an event of a partition, and when that
-- event happened.
INSERT INTO query.projection_progress
    (consumer, topic, "partition", last_applied_at, last_occurred_at)
VALUES ($1, $2, $3, now(), $4)
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET last_applied_at = EXCLUDED.last_applied_at,
    last_occurred_at = GREATEST(query.projection_progress.last_occurred_at,
                                EXCLUDED.last_occurred_at)

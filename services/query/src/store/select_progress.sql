-- When a consumer last applied an event, and when the newest applied event
-- happened.
SELECT max(last_applied_at), max(last_occurred_at)
FROM query.projection_progress
WHERE consumer = $1

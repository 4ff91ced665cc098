-- Adds an event to its order's timeline, once.
INSERT INTO {timeline} (order_id, event_id, event_type, version, occurred_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING

-- The timelines of the given orders, each oldest first.
SELECT order_id, event_type, version, occurred_at
FROM {timeline}
WHERE order_id = ANY ($1)
ORDER BY order_id, occurred_at, event_id

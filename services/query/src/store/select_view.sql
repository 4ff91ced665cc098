-- One order's view with its timeline, oldest first, in one round trip:
-- the timeline's columns come as arrays (empty when it has no entry).
SELECT v.order_id, v.customer_id, v.status, v.items, v.currency, v.total_minor,
       v.payment_method, v.reason, v.version, v.created_at, v.updated_at,
       v.payment_status, v.payment_version,
       t.event_types, t.versions, t.occurred_at
FROM {views} AS v
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(event_type ORDER BY occurred_at, event_id), '{}') AS event_types,
           coalesce(array_agg(version ORDER BY occurred_at, event_id), '{}') AS versions,
           coalesce(array_agg(occurred_at ORDER BY occurred_at, event_id), '{}') AS occurred_at
    FROM {timeline}
    WHERE order_id = v.order_id
) AS t
WHERE v.order_id = $1

-- Applies an order event to its view. What OrderCreated says ($6-$11) is
-- filled in whenever it comes; the state ($3 status, $4 reason, $5 time)
-- moves only forward: when the event's version $2 is newer than the view's.
INSERT INTO {views} AS v
    (order_id, version, status, reason, updated_at, customer_id, items, currency,
     total_minor, payment_method, created_at)
VALUES ($1, $2, $3, $4, $5, COALESCE($6::text, ''), COALESCE($7::jsonb, '[]'::jsonb),
        COALESCE($8::text, ''), COALESCE($9::bigint, 0), COALESCE($10::text, ''),
        $11::timestamptz)
ON CONFLICT (order_id) DO UPDATE SET
    status = CASE WHEN EXCLUDED.version > v.version THEN EXCLUDED.status ELSE v.status END,
    reason = CASE WHEN EXCLUDED.version > v.version THEN EXCLUDED.reason ELSE v.reason END,
    updated_at = CASE WHEN EXCLUDED.version > v.version THEN EXCLUDED.updated_at
                      ELSE v.updated_at END,
    version = GREATEST(v.version, EXCLUDED.version),
    customer_id = COALESCE($6::text, v.customer_id),
    items = COALESCE($7::jsonb, v.items),
    currency = COALESCE($8::text, v.currency),
    total_minor = COALESCE($9::bigint, v.total_minor),
    payment_method = COALESCE($10::text, v.payment_method),
    created_at = COALESCE($11::timestamptz, v.created_at)

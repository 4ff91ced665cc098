-- A batch's order parts, one row per order (its newest state in the batch,
-- and what OrderCreated said when the batch had it: $11 is then set), with
-- the rules of apply_order.sql: the state moves only forward.
INSERT INTO {views} AS v
    (order_id, version, status, reason, updated_at, customer_id, items, currency,
     total_minor, payment_method, created_at)
SELECT o.id, o.version, o.status, o.reason, o.updated_at, COALESCE(o.customer_id, ''),
       COALESCE(o.items, '[]'::jsonb), COALESCE(o.currency, ''), COALESCE(o.total_minor, 0),
       COALESCE(o.payment_method, ''), o.created_at
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
            $7::jsonb[], $8::text[], $9::bigint[], $10::text[], $11::timestamptz[])
    AS o(id, version, status, reason, updated_at, customer_id, items, currency, total_minor,
         payment_method, created_at)
ON CONFLICT (order_id) DO UPDATE SET
    status = CASE WHEN EXCLUDED.version > v.version THEN EXCLUDED.status ELSE v.status END,
    reason = CASE WHEN EXCLUDED.version > v.version THEN EXCLUDED.reason ELSE v.reason END,
    updated_at = CASE WHEN EXCLUDED.version > v.version THEN EXCLUDED.updated_at
                      ELSE v.updated_at END,
    version = GREATEST(v.version, EXCLUDED.version),
    customer_id = CASE WHEN EXCLUDED.created_at IS NULL THEN v.customer_id
                       ELSE EXCLUDED.customer_id END,
    items = CASE WHEN EXCLUDED.created_at IS NULL THEN v.items ELSE EXCLUDED.items END,
    currency = CASE WHEN EXCLUDED.created_at IS NULL THEN v.currency ELSE EXCLUDED.currency END,
    total_minor = CASE WHEN EXCLUDED.created_at IS NULL THEN v.total_minor
                       ELSE EXCLUDED.total_minor END,
    payment_method = CASE WHEN EXCLUDED.created_at IS NULL THEN v.payment_method
                          ELSE EXCLUDED.payment_method END,
    created_at = COALESCE(EXCLUDED.created_at, v.created_at)

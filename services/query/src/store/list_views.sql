-- A customer's orders, newest first (created_at DESC, order_id DESC), after
-- the cursor ($5, $6) when given; orders known only from a payment that
-- arrived early are not listed.
SELECT order_id, customer_id, status, items, currency, total_minor, payment_method, reason,
       version, created_at, updated_at, payment_status, payment_version
FROM {views}
WHERE customer_id = $1 AND version > 0 AND created_at IS NOT NULL
  AND ($2::text = '' OR status = $2::text)
  AND ($3::timestamptz IS NULL OR created_at >= $3::timestamptz)
  AND ($4::timestamptz IS NULL OR created_at < $4::timestamptz)
  AND ($5::timestamptz IS NULL OR (created_at, order_id) < ($5::timestamptz, $6::uuid))
ORDER BY created_at DESC, order_id DESC
LIMIT $7

-- One order's view.
SELECT order_id, customer_id, status, items, currency, total_minor, payment_method, reason,
       version, created_at, updated_at, payment_status, payment_version
FROM {views}
WHERE order_id = $1

-- The query views of a chunk of orders.
SELECT order_id, customer_id, status, items, currency, total_minor,
       payment_method, reason, version, payment_status, payment_version
FROM query.order_views
WHERE order_id = ANY($1)

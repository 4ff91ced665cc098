SELECT id, request_digest
FROM orders.orders
WHERE customer_id = $1 AND idempotency_key = $2

-- A new order; does nothing when the customer already used the idempotency key.
INSERT INTO orders.orders
    (id, customer_id, status, currency, total_minor, payment_method, version,
     idempotency_key, request_digest, traceparent, tracestate)
VALUES ($1, $2, 'PENDING', $3, $4, $5, 1, $6, $7, $8, $9)
ON CONFLICT ON CONSTRAINT orders_idempotency DO NOTHING
RETURNING created_at

-- A payment the gateway decided; does nothing when the order already has one
-- (a redelivered or concurrently handled OrderReserved).
INSERT INTO payments.payments
    (id, order_id, status, amount_minor, currency, payment_method, reason,
     gateway_ref, attempts, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)
ON CONFLICT (order_id) DO NOTHING
RETURNING created_at

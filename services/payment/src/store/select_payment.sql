SELECT id, order_id, status, amount_minor, currency, payment_method, reason,
       gateway_ref, attempts, version, created_at, updated_at
FROM payments.payments
WHERE order_id = $1

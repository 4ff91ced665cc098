-- SUCCEEDED -> REFUNDED, applied only if nobody changed the payment since it
-- was read.
UPDATE payments.payments
SET status = 'REFUNDED', reason = $3, version = version + 1, updated_at = now()
WHERE order_id = $1 AND version = $2 AND status = 'SUCCEEDED'
RETURNING updated_at

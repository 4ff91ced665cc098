-- A transition, applied only if nobody changed the order since it was read.
UPDATE orders.orders
SET status = $3, reason = $4, version = version + 1, updated_at = now()
WHERE id = $1 AND version = $2
RETURNING updated_at

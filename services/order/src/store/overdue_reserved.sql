-- RESERVED orders past the payment deadline, claimed by this transaction;
-- rows another replica is sweeping are skipped.
SELECT id
FROM orders.orders
WHERE status = 'RESERVED' AND updated_at < now() - make_interval(secs => $1)
ORDER BY updated_at
LIMIT $2
FOR UPDATE SKIP LOCKED

-- RESERVED orders past the payment deadline, claimed by this transaction;
-- rows another replica is sweeping are skipped. With the trace context of
-- the request that created each, which the cancellation continues.
SELECT id, traceparent, tracestate
FROM orders.orders
WHERE status = 'RESERVED' AND updated_at < now() - make_interval(secs => $1)
ORDER BY updated_at
LIMIT $2
FOR UPDATE SKIP LOCKED

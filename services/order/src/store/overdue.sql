-- Orders in status $1 (PENDING or RESERVED) unchanged for longer than $2
-- seconds, oldest first, claimed by this transaction; rows another replica
-- is sweeping are skipped. With the trace context of the request that
-- created each, which the cancellation continues.
--
-- The IN list repeats the predicate of index orders_open: the status is a
-- parameter, so the plan cached for this statement may be a generic one,
-- and only a predicate written out lets such a plan use the partial index
-- (without it, a generic plan scans the whole table).
SELECT id, traceparent, tracestate
FROM orders.orders
WHERE status = $1
  AND status IN ('PENDING', 'RESERVED')
  AND updated_at < now() - make_interval(secs => $2)
ORDER BY updated_at
LIMIT $3
FOR UPDATE SKIP LOCKED

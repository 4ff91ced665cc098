-- Wakes the source's active relay (whichever replica holds the lock) and
-- tells it rows were put back in line; sent when the transaction commits.
SELECT pg_notify('orderly_outbox', $1::text || ':retry')

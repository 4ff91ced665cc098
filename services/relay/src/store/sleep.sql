-- Takes the wake-up lock of each bucket ($1) before the relay waits for
-- notifications (see migration V14). Any refused means a writer that did
-- not notify, since this relay was reading, has not committed yet: the
-- relay then lets go of all of them and reads on.
SELECT coalesce(bool_and(pg_try_advisory_lock(public.orderly_outbox_wake_key('{schema}', b))), true)
FROM unnest($1::integer[]) AS b

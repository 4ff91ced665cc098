-- The lock of one consumer ($1: its group name). Session-level: it is held
-- until released or until the session ends, so it dies with its process.
SELECT pg_try_advisory_lock(hashtext('orderly_consumer:' || $1::text))

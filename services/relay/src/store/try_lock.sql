-- Session-level: held until released or until this connection ends, so a
-- relay that dies frees its source for a standby.
SELECT pg_try_advisory_lock(hashtext('orderly_relay:' || $1::text))

-- Sends $1 (`<source>:<news>`) to the relays of the source, listening on
-- the outbox channel (CHANNEL in store.rs), when the statement's
-- transaction commits: `:retry` wakes the active relay to read rows put
-- back in line; `:shares` has every relay run its next lease round at once
-- (or as soon as its last one allows), so buckets move in a round trip.
SELECT pg_notify('orderly_outbox', $1)

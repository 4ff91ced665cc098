-- Tells the source's other relays that the shares of its buckets changed
-- ($1: `<source>:shares`): this relay joined under its share, released
-- buckets or left. Each hearer runs its next lease round at once (or as
-- soon as its last one allows), so buckets move in a round trip rather than
-- at the holder's next scheduled round. Sent when the statement's
-- transaction commits.
SELECT pg_notify('orderly_outbox', $1)

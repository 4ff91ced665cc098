-- Tells every replica's wake-up listener which orders' views changed ($2:
-- payloads of comma-separated order ids on channel $1). Sent on its own,
-- after the projector's commits: it writes nothing, so it commits at once.
SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload

-- Moves a partition's position to $4, backwards too (its log was recreated
-- or truncated). Fenced like save_offset; $8 is unused (NULL), so both take
-- the same parameters.
WITH fence AS (
    SELECT 1 FROM {schema}.leases
    WHERE lease_group = $5 AND slot = $3 AND owner = $6 AND epoch = $7
    FOR SHARE
)
INSERT INTO {schema}.consumer_offsets (consumer, topic, "partition", next_offset, last_event_id)
SELECT $1, $2, $3, $4, $8::uuid FROM fence
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET next_offset = EXCLUDED.next_offset, last_event_id = NULL, updated_at = now()

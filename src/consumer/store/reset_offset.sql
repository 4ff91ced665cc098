-- Moves a partition's position to $4, backwards too (its log was
-- recreated), and forgets the event id saved with the old position.
-- Fenced: only while member $6 owns the partition's slot at epoch $7 (FOR
-- SHARE holds off a claim until this transaction ends), so no row is
-- written (0 rows) once another replica took the partition. Forward saves
-- go with each transaction's acknowledgements (ack.sql).
WITH fence AS (
    SELECT 1 FROM {schema}.leases
    WHERE lease_group = $5 AND slot = $3 AND owner = $6 AND epoch = $7
    FOR SHARE
)
INSERT INTO {schema}.consumer_offsets (consumer, topic, "partition", next_offset, last_event_id)
SELECT $1, $2, $3, $4, NULL FROM fence
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET next_offset = EXCLUDED.next_offset,
    last_event_id = NULL,
    updated_at = now()

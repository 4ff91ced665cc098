-- Records that every record of the partition before $4 is handled ($8: the
-- event id of the record at $4 - 1, when it has one); never moves backwards
-- unless $9 (the log was recreated). Fenced: only while member $6 owns the
-- partition's slot at epoch $7 (FOR SHARE holds off a claim until this
-- transaction ends), so no row is written (0 rows) once another replica
-- took the partition.
WITH fence AS (
    SELECT 1 FROM {schema}.leases
    WHERE lease_group = $5 AND slot = $3 AND owner = $6 AND epoch = $7
    FOR SHARE
)
INSERT INTO {schema}.consumer_offsets (consumer, topic, "partition", next_offset, last_event_id)
SELECT $1, $2, $3, $4, $8::uuid FROM fence
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET last_event_id = CASE
        WHEN $9 OR EXCLUDED.next_offset >= {schema}.consumer_offsets.next_offset
        THEN EXCLUDED.last_event_id
        ELSE {schema}.consumer_offsets.last_event_id
    END,
    next_offset = CASE
        WHEN $9 THEN EXCLUDED.next_offset
        ELSE GREATEST({schema}.consumer_offsets.next_offset, EXCLUDED.next_offset)
    END,
    updated_at = now()

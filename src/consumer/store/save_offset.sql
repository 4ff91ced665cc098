-- Records that every record of the partition before $4 is handled; never
-- moves backwards. Fenced: only while member $6 owns the partition's slot
-- at epoch $7 (FOR SHARE holds off a claim until this transaction ends), so
-- no row is written (0 rows) once another replica took the partition.
WITH fence AS (
    SELECT 1 FROM {schema}.leases
    WHERE lease_group = $5 AND slot = $3 AND owner = $6 AND epoch = $7
    FOR SHARE
)
INSERT INTO {schema}.consumer_offsets (consumer, topic, "partition", next_offset)
SELECT $1, $2, $3, $4 FROM fence
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET next_offset = GREATEST({schema}.consumer_offsets.next_offset, EXCLUDED.next_offset),
    updated_at = now()

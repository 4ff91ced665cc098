-- Records that every record of the partition before $4 is handled; never
-- moves backwards.
INSERT INTO {schema}.consumer_offsets (consumer, topic, "partition", next_offset)
VALUES ($1, $2, $3, $4)
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET next_offset = GREATEST({schema}.consumer_offsets.next_offset, EXCLUDED.next_offset),
    updated_at = now()

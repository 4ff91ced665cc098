-- Where the bulk load got to in each partition; the projector that follows
-- it resumes there.
INSERT INTO query.consumer_offsets (consumer, topic, "partition", next_offset)
SELECT $1, * FROM unnest($2::text[], $3::integer[], $4::bigint[])
ON CONFLICT (consumer, topic, "partition") DO UPDATE
SET next_offset = GREATEST(query.consumer_offsets.next_offset, EXCLUDED.next_offset),
    last_event_id = NULL,
    updated_at = now()

-- Where the consumer resumes in a partition (no row: it never handled one),
-- and the event id of the record just before.
SELECT next_offset, last_event_id FROM {schema}.consumer_offsets
WHERE consumer = $1 AND topic = $2 AND "partition" = $3

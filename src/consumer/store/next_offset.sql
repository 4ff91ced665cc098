-- Where the consumer resumes in a partition (no row: it never handled one).
SELECT next_offset FROM {schema}.consumer_offsets
WHERE consumer = $1 AND topic = $2 AND "partition" = $3

-- Up to $3 inbox rows of consumer $1 whose events were written before the
-- cutoff ($2: the smallest UUIDv7 of that instant). Event ids are UUIDv7,
-- so the primary key finds them oldest first without a scan.
DELETE FROM {schema}.inbox
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.inbox
    WHERE consumer = $1 AND event_id < $2
    LIMIT $3
))

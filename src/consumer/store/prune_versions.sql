-- Up to $4 aggregate versions of consumer $1 that did not move since $3.
-- $2 (the text of the smallest UUIDv7 of that instant) narrows the scan on
-- the primary key: an aggregate idle since before the cutoff was created
-- before it, and UUIDv7 ids sort by creation time. A row that moves
-- meanwhile has another ctid by then and is kept.
DELETE FROM {schema}.aggregate_versions
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.aggregate_versions
    WHERE consumer = $1 AND aggregate_id < $2 AND updated_at < $3
    LIMIT $4
))

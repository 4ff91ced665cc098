-- Up to $4 aggregate versions of consumer $1 that did not move since $3.
-- $2 (the text of the smallest UUIDv7 of that instant) narrows the scan on
-- the primary key: an aggregate idle since before the cutoff was created
-- before it, and UUIDv7 ids sort by creation time. The outer conditions
-- repeat the inner ones: a row that moves while the delete waits for it is
-- re-checked against them in its new version (a ctid match alone is not
-- re-checked) and kept.
DELETE FROM {schema}.aggregate_versions
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.aggregate_versions
    WHERE consumer = $1 AND aggregate_id < $2 AND updated_at < $3
    LIMIT $4
))
  AND consumer = $1 AND updated_at < $3

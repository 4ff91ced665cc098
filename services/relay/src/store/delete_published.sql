-- Marks delivered rows published by deleting them, for a relay that keeps
-- no published rows (retention 0); otherwise as mark_published.sql. A delete
-- writes no new row version and no index entry, where a stamp rewrites the
-- row and adds an entry to every index (`published_at` is in the partial
-- indexes' predicates, so no stamp is a HOT update): by hand, 1 000-row
-- marks of 100 000 rows took 2.7 times longer as stamps. Same fence: a
-- relay that lost a bucket deletes none of its rows. ($6, the deliveries'
-- ages, is unused.)
WITH fence AS (
    SELECT l.slot
    FROM {schema}.leases AS l
    JOIN unnest($2::integer[], $3::bigint[]) AS g(slot, epoch)
      ON g.slot = l.slot AND g.epoch = l.epoch
    WHERE l.lease_group = $4 AND l.owner = $5
    FOR SHARE OF l
),
deleted AS (
    DELETE FROM {outbox} AS o
    USING unnest($1::bigint[], $6::bigint[], $7::integer[]) AS d(id, age_us, bucket)
    WHERE d.bucket IN (SELECT slot FROM fence)
      AND o.id = d.id
      AND o.bucket = d.bucket
      AND o.published_at IS NULL
)
SELECT ARRAY(SELECT slot FROM fence)::integer[] AS fenced_in

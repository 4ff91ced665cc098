-- Marks delivered rows published as of their delivery: ids $1, each
-- delivered $6 microseconds ago, of bucket $7 (as read; checked against
-- the row). Only in the buckets this relay still owns at the epochs it was
-- granted ($2 buckets, $3 epochs; lease group $4, member $5): FOR SHARE on
-- the leases serialises with a claim, so a relay that lost a bucket marks
-- none of its rows (its new owner publishes them again, a duplicate the
-- consumers absorb). Returns the buckets that passed. The rows are joined
-- from the array by id, filtered by bucket on the array's side: with the
-- bucket filter on the table's side the planner scanned the array once
-- per unpublished row (1 s for 1 500 rows).
WITH fence AS (
    SELECT l.slot
    FROM {schema}.leases AS l
    JOIN unnest($2::integer[], $3::bigint[]) AS g(slot, epoch)
      ON g.slot = l.slot AND g.epoch = l.epoch
    WHERE l.lease_group = $4 AND l.owner = $5
    FOR SHARE OF l
),
marked AS (
    UPDATE {outbox} AS o
    SET published_at = now() - d.age_us * interval '1 microsecond'
    FROM unnest($1::bigint[], $6::bigint[], $7::integer[]) AS d(id, age_us, bucket)
    WHERE d.bucket IN (SELECT slot FROM fence)
      AND o.id = d.id
      AND o.bucket = d.bucket
      AND o.published_at IS NULL
)
SELECT ARRAY(SELECT slot FROM fence)::integer[] AS fenced_in

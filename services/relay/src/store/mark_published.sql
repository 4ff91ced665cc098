-- Marks delivered rows published: ids $1, each delivered $6 microseconds
-- ago, of bucket $7 (as read; checked against the row). The rows are
-- stamped (stamp_published.sql) or, by a relay that keeps none, deleted
-- (delete_published.sql), spliced in below. Only in the buckets this relay
-- still owns at the epochs it was granted ($2 buckets, $3 epochs; lease
-- group $4, member $5): FOR SHARE on the leases serialises with a claim,
-- so a relay that lost a bucket marks none of its rows (its new owner
-- publishes them again, a duplicate the consumers absorb). Returns the
-- buckets that passed. The rows are joined from the array by id, filtered
-- by bucket on the array's side: with the bucket filter on the table's
-- side the planner scanned the array once per unpublished row (1 s for
-- 1 500 rows).
WITH fence AS (
    SELECT l.slot
    FROM {schema}.leases AS l
    JOIN unnest($2::integer[], $3::bigint[]) AS g(slot, epoch)
      ON g.slot = l.slot AND g.epoch = l.epoch
    WHERE l.lease_group = $4 AND l.owner = $5
    FOR SHARE OF l
),
marked AS (
{mark_rows}
)
SELECT ARRAY(SELECT slot FROM fence)::integer[] AS fenced_in

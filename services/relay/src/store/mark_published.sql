-- Marks delivered rows ($1) published, only in the buckets this relay
-- still owns at the epochs it was granted ($2 buckets, $3 epochs; lease
-- group $4, member $5). FOR SHARE on the leases serialises with a claim: a
-- relay that lost a bucket marks none of its rows (the new owner publishes
-- them again, a duplicate the consumers absorb). Returns which of the
-- buckets passed the fence.
WITH fence AS (
    SELECT l.slot
    FROM {schema}.leases AS l
    JOIN unnest($2::integer[], $3::bigint[]) AS g(slot, epoch)
      ON g.slot = l.slot AND g.epoch = l.epoch
    WHERE l.lease_group = $4 AND l.owner = $5
    FOR SHARE OF l
),
marked AS (
    UPDATE {outbox}
    SET published_at = now()
    WHERE id = ANY($1::bigint[])
      AND published_at IS NULL
      AND bucket IN (SELECT slot FROM fence)
)
SELECT ARRAY(SELECT slot FROM fence)::integer[] AS fenced_in

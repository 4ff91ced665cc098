-- Takes up to $3 free slots (never owned, released, or whose owner's lease
-- expired), each under a new epoch. SKIP LOCKED: a slot whose deposed owner
-- is still inside an effect transaction (it holds the row FOR SHARE) is
-- left for a later round rather than waited for.
UPDATE {schema}.leases l
SET owner = $2, epoch = l.epoch + 1, acquired_at = now(), held = NULL,
    expires_at = now() + $4::bigint * interval '1 millisecond'
FROM (
    SELECT slot FROM {schema}.leases
    WHERE lease_group = $1 AND (owner IS NULL OR expires_at <= now())
    ORDER BY slot
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) free
WHERE l.lease_group = $1 AND l.slot = free.slot
RETURNING l.slot, l.epoch

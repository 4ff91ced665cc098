-- Takes up to $3 free slots (never owned, released, or whose owner's member
-- row expired), each under a new epoch. SKIP LOCKED: a slot whose deposed
-- owner is still inside an effect transaction (it holds the row FOR SHARE)
-- is left for a later round rather than waited for. expires_at 'infinity':
-- liveness is the owner's member row; replicas of versions that judged a
-- lease by this column (a rolling upgrade) then never take the slot.
UPDATE {schema}.leases l
SET owner = $2, epoch = l.epoch + 1, acquired_at = now(), held = NULL,
    expires_at = 'infinity'
FROM (
    SELECT s.slot FROM {schema}.leases s
    WHERE s.lease_group = $1
      AND (s.owner IS NULL OR NOT EXISTS (
          SELECT FROM {schema}.lease_members m
          WHERE m.lease_group = $1 AND m.member = s.owner AND m.expires_at > now()
      ))
    ORDER BY s.slot
    LIMIT $3
    FOR UPDATE OF s SKIP LOCKED
) free
WHERE l.lease_group = $1 AND l.slot = free.slot
RETURNING l.slot, l.epoch

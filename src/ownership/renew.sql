-- Extends every lease this replica still owns; a slot another replica took
-- (after this one's lease expired) is not returned, so it is known lost.
UPDATE {schema}.leases
SET expires_at = now() + $3::bigint * interval '1 millisecond'
WHERE lease_group = $1 AND owner = $2
RETURNING slot, epoch

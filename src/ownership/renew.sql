-- The leases this replica still owns. A lease lives as long as its owner's
-- member row (renewed by heartbeat.sql in the same round), so renewing
-- writes no lease row and never waits behind an effect transaction's fence
-- (FOR SHARE on the row). A slot another replica took (after this one's
-- member row expired) is not returned, so it is known lost.
SELECT slot, epoch FROM {schema}.leases
WHERE lease_group = $1 AND owner = $2

-- Who owns each slot of a group, for operators. A lease is live while its
-- owner's member row is.
SELECT l.slot, l.owner, m.instance, l.epoch,
       l.owner IS NOT NULL AND coalesce(m.expires_at > now(), false) AS live,
       l.held
FROM {schema}.leases l
LEFT JOIN {schema}.lease_members m ON m.lease_group = l.lease_group AND m.member = l.owner
WHERE l.lease_group = $1
ORDER BY l.slot

-- The group's live replicas, each with the slots it holds (a live member's
-- leases are live), and the group's slot count.
WITH live AS (
    SELECT member FROM {schema}.lease_members
    WHERE lease_group = $1 AND expires_at > now()
)
SELECT live.member,
       count(l.slot)::bigint AS owned,
       (SELECT count(*) FROM {schema}.leases WHERE lease_group = $1)::bigint AS slots
FROM live
LEFT JOIN {schema}.leases l ON l.lease_group = $1 AND l.owner = live.member
GROUP BY live.member

-- Replicas gone for a while (crashed, scaled down) are no longer listed.
DELETE FROM {schema}.lease_members
WHERE lease_group = $1 AND expires_at < now() - interval '10 minutes'

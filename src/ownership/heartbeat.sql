-- This replica is alive for another $4 milliseconds (by the database's clock).
INSERT INTO {schema}.lease_members (lease_group, member, instance, expires_at)
VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond')
ON CONFLICT (lease_group, member) DO UPDATE SET expires_at = EXCLUDED.expires_at

-- Gives slots back (a replica over its fair share, or leaving): free at
-- once, unless another replica took one already.
UPDATE {schema}.leases
SET owner = NULL, expires_at = '-infinity'
WHERE lease_group = $1 AND owner = $2 AND slot = ANY($3)

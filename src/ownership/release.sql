-- Gives slots back (a replica over its fair share, or leaving): free at
-- once, unless another replica took one already. A hold was the owner's
-- own finding; the next owner records its own.
UPDATE {schema}.leases
SET owner = NULL, expires_at = '-infinity', held = NULL
WHERE lease_group = $1 AND owner = $2 AND slot = ANY($3)

-- The group's slots 0..$2-1 exist (free until claimed); never removes any.
INSERT INTO {schema}.leases (lease_group, slot)
SELECT $1, s FROM generate_series(0, $2::integer - 1) AS s
ON CONFLICT DO NOTHING

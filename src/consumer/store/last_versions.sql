-- The newest version this consumer applied of each of several aggregates
-- (an aggregate it never applied has no row).
SELECT aggregate_id, version FROM {schema}.aggregate_versions
WHERE consumer = $1 AND aggregate_id = ANY($2)

-- The newest version of an aggregate this consumer applied (none: 0).
SELECT version FROM {schema}.aggregate_versions WHERE consumer = $1 AND aggregate_id = $2

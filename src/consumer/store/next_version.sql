-- Moves an aggregate to version $3, only from the version right before it.
UPDATE {schema}.aggregate_versions SET version = $3::bigint, updated_at = now()
WHERE consumer = $1 AND aggregate_id = $2 AND version = $3::bigint - 1

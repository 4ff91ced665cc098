-- The newest version of each aggregate a batch had, for the projector that
-- follows the bulk load (one row per aggregate, not per event).
INSERT INTO query.aggregate_versions (consumer, aggregate_id, version)
SELECT $1, * FROM unnest($2::text[], $3::bigint[])
ON CONFLICT (consumer, aggregate_id) DO UPDATE
SET version = GREATEST(query.aggregate_versions.version, EXCLUDED.version),
    updated_at = now()

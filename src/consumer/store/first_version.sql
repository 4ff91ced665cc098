-- The first event of an aggregate (version 1) this consumer applies.
INSERT INTO {schema}.aggregate_versions (consumer, aggregate_id, version) VALUES ($1, $2, 1)
ON CONFLICT DO NOTHING

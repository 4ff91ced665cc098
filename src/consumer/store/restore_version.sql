-- The version ($3) an aggregate is taken to be at when its row was pruned:
-- its earlier events are older than the retention and cannot arrive any
-- more. Never moves a row that is there.
INSERT INTO {schema}.aggregate_versions (consumer, aggregate_id, version) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING

-- When each aggregate's version last moved, so the consumers' bookkeeping
-- can be pruned once it is older than the topics' retention (a record that
-- old can no longer be redelivered). Not indexed: an index on it would
-- make every version move a non-HOT update; the prune narrows its scan by
-- the aggregate id instead (UUIDv7 ids sort by creation time).

DO $$
DECLARE
    schema_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['orders', 'payments', 'query'] LOOP
        EXECUTE format($sql$
            ALTER TABLE %1$I.aggregate_versions
                ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
        $sql$, schema_name);
    END LOOP;
END
$$;

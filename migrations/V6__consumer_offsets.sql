-- Where each consumer stands in each partition, kept next to its effects.
-- The broker's committed offsets are only a hint: a broker that loses them,
-- or hands a group another group's offsets, must never make a consumer skip
-- records. On (re)assignment a consumer resumes from here.

DO $$
DECLARE
    schema_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['orders', 'payments'] LOOP
        EXECUTE format($sql$
            CREATE TABLE %1$I.consumer_offsets (
                consumer    text        NOT NULL,
                topic       text        NOT NULL,
                "partition" integer     NOT NULL,
                -- The offset of the next record to handle.
                next_offset bigint      NOT NULL CHECK (next_offset >= 0),
                updated_at  timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, topic, "partition")
            );
        $sql$, schema_name);
    END LOOP;
END
$$;

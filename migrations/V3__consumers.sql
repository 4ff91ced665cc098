-- Consumer bookkeeping for the kit's consumer runtime, in every schema whose
-- service consumes events (the inbox, which dedupes events, is already
-- there): the newest aggregate version each consumer applied, which
-- enforces per-aggregate contiguity, and the dead letters it could not
-- apply, kept for listing and requeue.

DO $$
DECLARE
    schema_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['orders', 'payments'] LOOP
        EXECUTE format($sql$
            CREATE TABLE %1$I.aggregate_versions (
                consumer     text   NOT NULL,
                aggregate_id text   NOT NULL,
                version      bigint NOT NULL CHECK (version >= 1),
                PRIMARY KEY (consumer, aggregate_id)
            );

            CREATE TABLE %1$I.dead_letters (
                id                bigserial   PRIMARY KEY,
                consumer          text        NOT NULL,
                topic             text        NOT NULL,
                "partition"       integer     NOT NULL,
                "offset"          bigint      NOT NULL,
                record_key        text        NOT NULL DEFAULT '',
                payload           bytea       NOT NULL,
                headers           jsonb       NOT NULL DEFAULT '{}'::jsonb,
                event_id          uuid,
                event_type        text        NOT NULL DEFAULT '',
                aggregate_id      text        NOT NULL DEFAULT '',
                aggregate_version bigint      NOT NULL DEFAULT 0,
                error             text        NOT NULL,
                dead_lettered_at  timestamptz NOT NULL DEFAULT now(),
                requeued_at       timestamptz,
                requeue_attempts  integer     NOT NULL DEFAULT 0,
                -- A redelivered poison record is recorded once.
                UNIQUE (consumer, topic, "partition", "offset")
            );

            CREATE INDEX dead_letters_open ON %1$I.dead_letters (consumer, id)
                WHERE requeued_at IS NULL;
        $sql$, schema_name);
    END LOOP;
END
$$;

-- Outbox buckets: every outbox row carries a bucket derived from its
-- partition key, so all the events of one order are in one bucket. Relay
-- replicas share a source's buckets under the leases of
-- orderly::ownership (lease group 'orderly-relay' in the source's schema),
-- and each publishes only the buckets it owns; a mark is fenced by the
-- bucket's lease epoch.
--
-- The number of buckets is fixed here: a key must never move to another
-- bucket while it has rows waiting, or two relays could publish one
-- order's events side by side. 16 allows up to 16 relay replicas per
-- source. The bucket comes from md5 (stable across servers, versions and
-- architectures, unlike the internal hash functions) and is computed by
-- the database, so the writers are unchanged.

CREATE FUNCTION public.orderly_outbox_buckets() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS 'SELECT 16';

CREATE FUNCTION public.orderly_outbox_bucket(partition_key text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ('x' || substr(md5(partition_key), 1, 7))::bit(28)::integer % 16 $$;

-- Wakes the owner of the row's bucket: the payload is '<schema>:<bucket>'.
-- A transaction's identical notifications are sent once, so an order's
-- several rows wake its bucket once.
CREATE FUNCTION public.orderly_outbox_notify_bucket() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orderly_outbox', TG_TABLE_SCHEMA || ':' || NEW.bucket);
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    schema_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['orders', 'payments'] LOOP
        EXECUTE format($sql$
            ALTER TABLE %1$I.outbox ADD COLUMN bucket integer NOT NULL
                GENERATED ALWAYS AS (public.orderly_outbox_bucket(partition_key)) STORED;
            DROP TRIGGER outbox_notify ON %1$I.outbox;
            CREATE TRIGGER outbox_notify AFTER INSERT ON %1$I.outbox
                FOR EACH ROW EXECUTE FUNCTION public.orderly_outbox_notify_bucket();
        $sql$, schema_name);
    END LOOP;
END
$$;

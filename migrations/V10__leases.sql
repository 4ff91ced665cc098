-- Partition ownership (orderly::ownership): which replica of a consumer
-- group owns which slot (a partition number, or a relay bucket), under a
-- lease that expires unless renewed, and an epoch that grows with every
-- change of owner. Every effect transaction checks the epoch it was granted
-- (FOR SHARE on the slot's row), so a deposed or frozen owner can never
-- commit. Kept in each schema whose writes are fenced, so the check runs in
-- the effects' own transaction, even when schemas are separate databases.

DO $$
DECLARE
    schema_name text;
BEGIN
    FOREACH schema_name IN ARRAY ARRAY['orders', 'payments', 'query'] LOOP
        EXECUTE format($sql$
            -- The live replicas of a group; a replica that stops renewing
            -- its row is no longer counted when slots are shared out.
            CREATE TABLE %1$I.lease_members (
                lease_group text        NOT NULL,
                member      uuid        NOT NULL,
                -- Where it runs (pod or host name), for operators.
                instance    text        NOT NULL,
                joined_at   timestamptz NOT NULL DEFAULT now(),
                expires_at  timestamptz NOT NULL,
                PRIMARY KEY (lease_group, member)
            );
            CREATE TABLE %1$I.leases (
                lease_group text        NOT NULL,
                slot        integer     NOT NULL CHECK (slot >= 0),
                -- NULL: free. An owner whose lease expired may be replaced.
                owner       uuid,
                epoch       bigint      NOT NULL DEFAULT 0,
                expires_at  timestamptz NOT NULL DEFAULT '-infinity',
                acquired_at timestamptz,
                -- Why the owner holds a partition of the slot back (an offset
                -- jump, a log behind the saved position), for operators.
                held        text,
                PRIMARY KEY (lease_group, slot)
            );
            -- The event id of the record just before the saved position:
            -- a consumer resuming there checks the log still holds it, so a
            -- log recreated and grown past the position (a broker that lost
            -- its data) is told apart from the one the position was saved in.
            ALTER TABLE %1$I.consumer_offsets ADD COLUMN last_event_id uuid;
        $sql$, schema_name);
    END LOOP;
END
$$;

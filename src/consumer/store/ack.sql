-- One transaction's bookkeeping in ONE statement: the inbox rows of its
-- events ($8), the versions of its aggregates ($9) moved from the version
-- each was read at ($10; 0: no row yet) to its newest event's ($11) — with
-- $13 false (acknowledgements of records with nothing to commit), only
-- forwards from whatever version is there — and
-- the partition's position ($4, with $12 the event id of the record at
-- $4 - 1). Fenced like reset_offset.sql: nothing is written unless member
-- $6 owns the slot at epoch $7, and FOR SHARE holds off a claim until the
-- transaction ends. Nothing is written either when the saved position is
-- behind $14, the position this worker saved last (NULL: none yet): the
-- database lost commits of the partition. Returns whether the fence held,
-- how many versions moved (fewer than asked means another writer moved
-- one: the caller rolls back) and whether the position was intact.
WITH saved AS (
    SELECT next_offset FROM {schema}.consumer_offsets
    WHERE consumer = $1 AND topic = $2 AND "partition" = $3
),
intact AS (
    SELECT $14::bigint IS NULL
        OR coalesce((SELECT next_offset FROM saved), -1) >= $14::bigint AS ok
),
fence AS (
    SELECT 1 FROM {schema}.leases
    WHERE lease_group = $5 AND slot = $3 AND owner = $6 AND epoch = $7
      AND (SELECT ok FROM intact)
    FOR SHARE
),
inbox AS (
    INSERT INTO {schema}.inbox (consumer, event_id)
    SELECT $1, id FROM unnest($8::uuid[]) AS id
    WHERE EXISTS (SELECT FROM fence)
    ON CONFLICT DO NOTHING
),
moved AS (
    UPDATE {schema}.aggregate_versions AS v
    SET version = a.next, updated_at = now()
    FROM unnest($9::text[], $10::bigint[], $11::bigint[]) AS a(id, expected, next)
    WHERE v.consumer = $1 AND v.aggregate_id = a.id AND EXISTS (SELECT FROM fence)
      AND CASE WHEN $13 THEN a.expected > 0 AND v.version = a.expected
               ELSE v.version < a.next END
    RETURNING 1
),
created AS (
    INSERT INTO {schema}.aggregate_versions (consumer, aggregate_id, version)
    SELECT $1, a.id, a.next
    FROM unnest($9::text[], $10::bigint[], $11::bigint[]) AS a(id, expected, next)
    WHERE (a.expected = 0 OR NOT $13) AND EXISTS (SELECT FROM fence)
    ON CONFLICT DO NOTHING
    RETURNING 1
),
position AS (
    INSERT INTO {schema}.consumer_offsets (consumer, topic, "partition", next_offset, last_event_id)
    SELECT $1, $2, $3, $4, $12::uuid FROM fence
    ON CONFLICT (consumer, topic, "partition") DO UPDATE
    SET last_event_id = CASE
            WHEN EXCLUDED.next_offset >= {schema}.consumer_offsets.next_offset
            THEN EXCLUDED.last_event_id
            ELSE {schema}.consumer_offsets.last_event_id
        END,
        next_offset = GREATEST({schema}.consumer_offsets.next_offset, EXCLUDED.next_offset),
        updated_at = now()
    RETURNING 1
)
SELECT EXISTS (SELECT FROM position),
       (SELECT count(*) FROM moved) + (SELECT count(*) FROM created),
       (SELECT ok FROM intact)

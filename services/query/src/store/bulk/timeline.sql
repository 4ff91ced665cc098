-- A batch of timeline rows, once each.
INSERT INTO {timeline} (order_id, event_id, event_type, version, occurred_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::timestamptz[])
ON CONFLICT DO NOTHING

-- Whether the shadow has applied every event the live view has: each
-- applied event leaves exactly one timeline row.
SELECT NOT EXISTS (
    SELECT 1 FROM query.order_timeline l
    WHERE NOT EXISTS (
        SELECT 1 FROM {shadow_timeline} s
        WHERE s.order_id = l.order_id AND s.event_id = l.event_id))

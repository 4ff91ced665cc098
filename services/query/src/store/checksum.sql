-- A checksum over every row of a view and its timeline, in key order.
SELECT md5(
    coalesce((SELECT string_agg(v::text, '|' ORDER BY v.order_id) FROM {views} v), '')
    || '#' ||
    coalesce((SELECT string_agg(t::text, '|' ORDER BY t.order_id, t.event_id)
              FROM {timeline} t), ''))

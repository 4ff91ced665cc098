-- Every line of an order in one statement.
INSERT INTO orders.order_items (order_id, line_no, sku, quantity, unit_price_minor)
SELECT $1, line.line_no, line.sku, line.quantity, line.unit_price_minor
FROM unnest($2::integer[], $3::text[], $4::integer[], $5::bigint[])
    AS line (line_no, sku, quantity, unit_price_minor)

-- The lines of a chunk of orders, in line order.
SELECT order_id, sku, quantity, unit_price_minor
FROM orders.order_items
WHERE order_id = ANY($1)
ORDER BY order_id, line_no

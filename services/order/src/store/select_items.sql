SELECT sku, quantity, unit_price_minor
FROM orders.order_items
WHERE order_id = $1
ORDER BY line_no

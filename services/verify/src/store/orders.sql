-- One chunk of orders after the last id seen (keyset paging).
SELECT id, customer_id, status, currency, total_minor, payment_method, reason,
       version, created_at, updated_at
FROM orders.orders
WHERE id > $1
ORDER BY id
LIMIT $2

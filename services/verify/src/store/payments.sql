-- The payments of a chunk of orders (at most one each).
SELECT order_id, status, amount_minor, currency, version
FROM payments.payments
WHERE order_id = ANY($1)

-- Payments and views of orders the write model does not have (at most $1
-- in all). In one snapshot a payment or a view implies its order: both are
-- written only after the order's commit.
(SELECT 'payment' AS what, p.order_id
 FROM payments.payments AS p
 WHERE NOT EXISTS (SELECT 1 FROM orders.orders AS o WHERE o.id = p.order_id))
UNION ALL
(SELECT 'view' AS what, v.order_id
 FROM query.order_views AS v
 WHERE NOT EXISTS (SELECT 1 FROM orders.orders AS o WHERE o.id = v.order_id))
LIMIT $1

-- The saga's deadlines cancel orders left PENDING (their OrderCreated never
-- handled) or RESERVED (no payment outcome) for too long; both sweeps read
-- the oldest orders of one status, through one statement with the status
-- as a parameter. One partial index serves both and replaces the index of
-- RESERVED orders alone. Final orders, the bulk of the table, stay out of it.
CREATE INDEX orders_open ON orders.orders (status, updated_at)
    WHERE status IN ('PENDING', 'RESERVED');
DROP INDEX orders.orders_reserved;

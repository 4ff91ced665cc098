-- The outbox tables are queues: every row is inserted, updated once when
-- the relay marks it published and deleted when pruned. Each of those
-- leaves a dead entry in the partial index of unpublished rows that the
-- relay's read walks through until a vacuum removes it. With the default
-- settings a table is vacuumed only after a fifth of it changed, so under
-- steady load the read slowed from 0.2 ms to 13 ms (50 000 rows published
-- since the last vacuum), and every order's events waited for it. Vacuum
-- them after a fixed number of changes instead, whatever their size, and
-- without the cost-based pauses (they are small once vacuumed often).

ALTER TABLE orders.outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);

ALTER TABLE payments.outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);

-- The outbox's bucket is written by the writer instead of generated.
--
-- A stored generated column is set up again by every statement that
-- inserts or updates the table (Postgres 15 reads, plans and compiles its
-- expression at each executor start, and recomputes it on every updated
-- row): measured under the saga's load, about 7 % of the database's CPU,
-- on each outbox insert and each relay mark. Writers now set the bucket
-- with the same function, planned once with their prepared statement
-- (src/outbox/insert.sql: `public.orderly_outbox_bucket(partition_key)`).
-- A row without one is refused (NOT NULL stays), so a writer that forgets
-- it fails loudly rather than land in some bucket. Existing rows keep the
-- buckets they have.
ALTER TABLE orders.outbox ALTER COLUMN bucket DROP EXPRESSION;
ALTER TABLE payments.outbox ALTER COLUMN bucket DROP EXPRESSION;

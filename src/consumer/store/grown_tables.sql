-- Which of the tables $2 of schema $1 have at least doubled in pages since
-- the planner last counted them (an ANALYZE or a VACUUM set relpages), from
-- 4 pages on and below 100 000 (past that, autovacuum's own analyze after
-- 10 % of the rows changed comes often enough).
SELECT c.relname::text
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = $1
  AND c.relname::text = ANY($2::text[])
  AND c.relkind = 'r'
  AND c.relpages < 100000
  AND pg_relation_size(c.oid) / current_setting('block_size')::bigint
      >= greatest(2 * c.relpages::bigint, 4)

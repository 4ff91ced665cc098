-- Swaps the shadow tables in for the live ones and drops the old ones, in
-- the caller's transaction (readers wait only for the renames).
ALTER TABLE query.order_views RENAME TO order_views_retired_{id};
ALTER TABLE query.order_timeline RENAME TO order_timeline_retired_{id};
ALTER TABLE {shadow_views} RENAME TO order_views;
ALTER TABLE {shadow_timeline} RENAME TO order_timeline;
-- The shadow's indexes (and the constraints they back) were named after
-- the shadow; they take the names of the retired tables' matching ones, so
-- the live tables keep the names the migrations gave them (a later
-- migration may name an index). Indexes match by table pair, columns,
-- operator classes, options, uniqueness and predicate.
DO $$
DECLARE
    pair record;
BEGIN
    FOR pair IN
        SELECT retired.relname AS retired_name, shadow.relname AS shadow_name
        FROM (VALUES ('order_views_retired_{id}', 'order_views'),
                     ('order_timeline_retired_{id}', 'order_timeline')) AS t(retired_table, live_table)
        JOIN pg_index ri ON ri.indrelid = format('query.%I', t.retired_table)::regclass
        JOIN pg_index si ON si.indrelid = format('query.%I', t.live_table)::regclass
         AND si.indkey = ri.indkey
         AND si.indclass = ri.indclass
         AND si.indoption = ri.indoption
         AND si.indisunique = ri.indisunique
         AND si.indisprimary = ri.indisprimary
         AND pg_get_expr(si.indpred, si.indrelid) IS NOT DISTINCT FROM pg_get_expr(ri.indpred, ri.indrelid)
         AND pg_get_expr(si.indexprs, si.indrelid) IS NOT DISTINCT FROM pg_get_expr(ri.indexprs, ri.indrelid)
        JOIN pg_class retired ON retired.oid = ri.indexrelid
        JOIN pg_class shadow ON shadow.oid = si.indexrelid
    LOOP
        EXECUTE format('ALTER INDEX query.%I RENAME TO %I',
                       pair.retired_name, left('retired_{id}_' || pair.retired_name, 63));
        EXECUTE format('ALTER INDEX query.%I RENAME TO %I', pair.shadow_name, pair.retired_name);
    END LOOP;
END
$$;
DROP TABLE query.order_views_retired_{id}, query.order_timeline_retired_{id};

-- Swaps the shadow tables in for the live ones and drops the old ones, in
-- the caller's transaction (readers wait only for the renames).
ALTER TABLE query.order_views RENAME TO order_views_retired_{id};
ALTER TABLE query.order_timeline RENAME TO order_timeline_retired_{id};
ALTER TABLE {shadow_views} RENAME TO order_views;
ALTER TABLE {shadow_timeline} RENAME TO order_timeline;
DROP TABLE query.order_views_retired_{id}, query.order_timeline_retired_{id};

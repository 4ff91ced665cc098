-- A rebuild's shadow tables: empty copies of the live ones (columns,
-- defaults, checks, keys, indexes).
CREATE TABLE {shadow_views} (LIKE query.order_views INCLUDING ALL);
CREATE TABLE {shadow_timeline} (LIKE query.order_timeline INCLUDING ALL);

-- Drops a rebuild's shadow tables (a failed or interrupted rebuild).
DROP TABLE IF EXISTS {shadow_views}, {shadow_timeline};

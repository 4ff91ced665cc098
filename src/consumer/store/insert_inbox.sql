-- Records that the consumer applied the event; no row means it already had.
INSERT INTO {schema}.inbox (consumer, event_id) VALUES ($1, $2)
ON CONFLICT DO NOTHING

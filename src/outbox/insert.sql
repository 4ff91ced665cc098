-- An event, committed with the change it describes; the relay publishes it.
-- {schema} is the owning service's schema.
INSERT INTO {schema}.outbox (event_id, topic, partition_key, event_type, payload, headers)
VALUES ($1, $2, $3, $4, $5, $6)

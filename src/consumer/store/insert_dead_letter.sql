-- A record the consumer could not apply, once per position.
INSERT INTO {schema}.dead_letters
    (consumer, topic, "partition", "offset", record_key, payload, headers,
     event_id, event_type, aggregate_id, aggregate_version, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (consumer, topic, "partition", "offset") DO NOTHING

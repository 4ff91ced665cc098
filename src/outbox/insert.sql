-- An event, committed with the change it describes; the relay publishes it.
-- {schema} is the owning service's schema. The bucket is the partition
-- key's (every row of one order in one bucket; migration V16).
INSERT INTO {schema}.outbox (event_id, topic, partition_key, event_type, payload, headers, bucket)
VALUES ($1, $2, $3, $4, $5, $6, public.orderly_outbox_bucket($3))

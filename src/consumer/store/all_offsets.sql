-- Every partition position of a consumer.
SELECT topic, "partition", next_offset FROM {schema}.consumer_offsets WHERE consumer = $1

-- Where a consumer stands in each partition it handled.
SELECT topic, "partition", next_offset FROM query.consumer_offsets WHERE consumer = $1

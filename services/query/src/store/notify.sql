-- Wakes readers waiting for the view (every replica LISTENs); sent at commit.
SELECT pg_notify('orderly_query_view', $1::text || ':' || $2::text)

-- Stamps marked rows published as of their delivery (spliced into
-- mark_published.sql): they are kept for the retention.
    UPDATE {outbox} AS o
    SET published_at = now() - d.age_us * interval '1 microsecond'
    FROM unnest($1::bigint[], $6::bigint[], $7::integer[]) AS d(id, age_us, bucket)
    WHERE d.bucket IN (SELECT slot FROM fence)
      AND o.id = d.id
      AND o.bucket = d.bucket
      AND o.published_at IS NULL

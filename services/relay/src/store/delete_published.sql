-- Deletes marked rows (spliced into mark_published.sql), for a relay that
-- keeps no published rows (retention 0). A delete writes no new row
-- version and no index entry, where a stamp rewrites the row and adds an
-- entry to every index (`published_at` is in the partial indexes'
-- predicates, so no stamp is a HOT update): by hand, 1 000-row marks of
-- 100 000 rows took 2.7 times longer as stamps. ($6, the deliveries'
-- ages, is unused.)
    DELETE FROM {outbox} AS o
    USING unnest($1::bigint[], $6::bigint[], $7::integer[]) AS d(id, age_us, bucket)
    WHERE d.bucket IN (SELECT slot FROM fence)
      AND o.id = d.id
      AND o.bucket = d.bucket
      AND o.published_at IS NULL

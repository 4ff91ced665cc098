-- Puts set-aside rows back in line with a fresh attempt count: the ids in
-- $1, or every set-aside row when $1 is empty. last_error is kept as a
-- record of why the row was set aside.
UPDATE {outbox}
SET set_aside_at = NULL,
    attempts = 0
WHERE set_aside_at IS NOT NULL
  AND published_at IS NULL
  AND (cardinality($1::bigint[]) = 0 OR id = ANY($1::bigint[]))
RETURNING id

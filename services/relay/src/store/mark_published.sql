-- Marks a delivered batch in one statement.
UPDATE {outbox}
SET published_at = now()
WHERE id = ANY($1::bigint[]) AND published_at IS NULL

-- A requeued letter applied (or was applied already).
UPDATE {schema}.dead_letters
SET requeued_at = now(), requeue_attempts = requeue_attempts + 1
WHERE id = $1

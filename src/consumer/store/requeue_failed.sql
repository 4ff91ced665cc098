-- A requeued letter failed again.
UPDATE {schema}.dead_letters
SET error = $2, requeue_attempts = requeue_attempts + 1
WHERE id = $1

-- How many buckets the outboxes were created with (fixed at migration).
SELECT public.orderly_outbox_buckets()

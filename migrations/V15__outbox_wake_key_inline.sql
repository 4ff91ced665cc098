-- The trigger's wake-up key was not inlined into the trigger's
-- expression: an IMMUTABLE SQL function is inlined only when its body is
-- immutable too, and `text || integer` is not (it converts through a
-- STABLE operator). So every outbox row ran it as a query of its own,
-- planned each time (about 25 µs of the writer's transaction). The
-- integer's own cast to text is immutable and gives the same text, so
-- the same key.
CREATE OR REPLACE FUNCTION public.orderly_outbox_wake_key(source text, bucket integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashtextextended('orderly_outbox:' || source || ':' || bucket::text, 0) $$;

-- The outbox trigger notifies only a relay that waits for it.
--
-- A transaction that NOTIFYs takes, at commit, a lock global to the
-- Postgres server and keeps it until its commit is durable: notifying
-- commits queue behind one another, each with its WAL flush, so under load
-- the trigger's notification was what every order's writes waited for
-- most. A relay that is reading anyway (it polls while rows keep coming)
-- needs no notification.
--
-- So each bucket has a wake-up lock (a session advisory lock, keyed by
-- orderly_outbox_wake_key): the relay that owns the bucket holds it, alone,
-- only while it waits for notifications. The trigger tests it with a
-- shared try-lock: refused (the relay waits) → it notifies; granted (the
-- relay is reading, or there is none) → it does not, and keeps the shared
-- lock until its transaction ends, so a relay cannot start waiting before
-- that row is committed and visible to its next read.

CREATE FUNCTION public.orderly_outbox_wake_key(source text, bucket integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashtextextended('orderly_outbox:' || source || ':' || bucket, 0) $$;

CREATE OR REPLACE FUNCTION public.orderly_outbox_notify_bucket() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(
        public.orderly_outbox_wake_key(TG_TABLE_SCHEMA, NEW.bucket)
    ) THEN
        PERFORM pg_notify('orderly_outbox', TG_TABLE_SCHEMA || ':' || NEW.bucket);
    END IF;
    RETURN NULL;
END;
$$;

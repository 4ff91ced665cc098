-- Payment service: its outbox and inbox (the payments table arrives with the
-- payment service). The relay drains this outbox like the orders one.

CREATE SCHEMA IF NOT EXISTS payments;

CREATE TABLE payments.outbox (
    id            bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    partition_key text        NOT NULL,
    event_type    text        NOT NULL,
    payload       bytea       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);

CREATE INDEX outbox_unpublished ON payments.outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON payments.outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TRIGGER outbox_notify AFTER INSERT ON payments.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION public.orderly_outbox_notify();

CREATE TABLE payments.inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

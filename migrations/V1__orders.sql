-- Order service: the write model, its outbox and its inbox.

CREATE SCHEMA IF NOT EXISTS orders;

-- Wakes the outbox relay; the payload names the source schema. Statement
-- level, so a batch insert sends one notification.
CREATE OR REPLACE FUNCTION public.orderly_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orderly_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$;

CREATE TABLE orders.orders (
    id               uuid        PRIMARY KEY,
    customer_id      text        NOT NULL,
    status           text        NOT NULL
        CHECK (status IN ('PENDING', 'RESERVED', 'CONFIRMED', 'REJECTED', 'CANCELLED')),
    currency         char(3)     NOT NULL,
    total_minor      bigint      NOT NULL CHECK (total_minor >= 0),
    payment_method   text        NOT NULL,
    reason           text        NOT NULL DEFAULT '',
    version          bigint      NOT NULL CHECK (version >= 1),
    -- Client idempotency key, scoped to the customer, and a digest of the
    -- request it came with (a reuse with another request is refused).
    idempotency_key  text,
    request_digest   bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_idempotency UNIQUE (customer_id, idempotency_key)
);

CREATE INDEX orders_customer ON orders.orders (customer_id, created_at DESC);
-- The saga's payment deadline scans reserved orders by age.
CREATE INDEX orders_reserved ON orders.orders (updated_at) WHERE status = 'RESERVED';

CREATE TABLE orders.order_items (
    order_id         uuid    NOT NULL REFERENCES orders.orders (id) ON DELETE CASCADE,
    line_no          integer NOT NULL,
    sku              text    NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE orders.outbox (
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

-- The relay reads unpublished rows in id order; retention prunes by age.
CREATE INDEX outbox_unpublished ON orders.outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON orders.outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TRIGGER outbox_notify AFTER INSERT ON orders.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION public.orderly_outbox_notify();

-- Consumer dedupe: a row per (consumer, event) applied, written in the same
-- transaction as the effect.
CREATE TABLE orders.inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

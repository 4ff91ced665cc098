-- Query service: read models projected from the order and payment topics,
-- and the consumer runtime's bookkeeping for its projector (the same tables
-- V1/V3/V6 create for orders and payments).

CREATE SCHEMA IF NOT EXISTS query;

-- Consumer dedupe: a row per (consumer, event) applied, written in the same
-- transaction as the effect.
CREATE TABLE query.inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The newest version of each aggregate a consumer applied: the per-aggregate
-- version watermarks (contiguity is enforced against them).
CREATE TABLE query.aggregate_versions (
    consumer     text   NOT NULL,
    aggregate_id text   NOT NULL,
    version      bigint NOT NULL CHECK (version >= 1),
    PRIMARY KEY (consumer, aggregate_id)
);

CREATE TABLE query.dead_letters (
    id                bigserial   PRIMARY KEY,
    consumer          text        NOT NULL,
    topic             text        NOT NULL,
    "partition"       integer     NOT NULL,
    "offset"          bigint      NOT NULL,
    record_key        text        NOT NULL DEFAULT '',
    payload           bytea       NOT NULL,
    headers           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    event_id          uuid,
    event_type        text        NOT NULL DEFAULT '',
    aggregate_id      text        NOT NULL DEFAULT '',
    aggregate_version bigint      NOT NULL DEFAULT 0,
    error             text        NOT NULL,
    dead_lettered_at  timestamptz NOT NULL DEFAULT now(),
    requeued_at       timestamptz,
    requeue_attempts  integer     NOT NULL DEFAULT 0,
    -- A redelivered poison record is recorded once.
    UNIQUE (consumer, topic, "partition", "offset")
);

CREATE INDEX dead_letters_open ON query.dead_letters (consumer, id)
    WHERE requeued_at IS NULL;

CREATE TABLE query.consumer_offsets (
    consumer    text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    -- The offset of the next record to handle.
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, "partition")
);

-- The order view: one row per order. A payment event may arrive before the
-- order's first event (the two topics are consumed independently): the row
-- then holds only the payment part (version 0, status '') until the order's
-- events fill in the rest. `version` is the newest order version applied;
-- an order event moves status, reason and updated_at only when its version
-- is newer, so the view never moves backwards.
CREATE TABLE query.order_views (
    order_id        uuid        PRIMARY KEY,
    customer_id     text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT ''
        CHECK (status IN ('', 'PENDING', 'RESERVED', 'CONFIRMED', 'REJECTED', 'CANCELLED')),
    -- [{"sku", "quantity", "unit_price_minor"}], in the order the client sent.
    items           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    currency        text        NOT NULL DEFAULT '',
    total_minor     bigint      NOT NULL DEFAULT 0,
    payment_method  text        NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    version         bigint      NOT NULL DEFAULT 0 CHECK (version >= 0),
    created_at      timestamptz,
    updated_at      timestamptz,
    payment_id      uuid,
    payment_status  text        NOT NULL DEFAULT ''
        CHECK (payment_status IN ('', 'SUCCEEDED', 'FAILED', 'REFUNDED')),
    -- Newest payment version applied; payment events obey the same rule.
    payment_version bigint      NOT NULL DEFAULT 0 CHECK (payment_version >= 0)
);

-- The per-customer listing: newest first, with a stable tie-break.
CREATE INDEX order_views_by_customer
    ON query.order_views (customer_id, created_at DESC, order_id DESC)
    WHERE version > 0;

-- Every event applied to an order's view, once each.
CREATE TABLE query.order_timeline (
    order_id    uuid        NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    -- The version the event gave its aggregate (the order's, or the
    -- payment's for payment events).
    version     bigint      NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, event_id)
);

-- When each projector last applied an event per partition, and when that
-- event happened: the status report's last-applied time and end-to-end lag.
-- One row per partition, so parallel partition workers never contend.
CREATE TABLE query.projection_progress (
    consumer         text        NOT NULL,
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    last_applied_at  timestamptz NOT NULL,
    last_occurred_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, topic, "partition")
);

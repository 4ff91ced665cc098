-- Payment service: one payment per order. A row is written only once the
-- gateway has answered (SUCCEEDED or FAILED), together with its outbox event;
-- while a charge is being retried the order has no row yet.

CREATE TABLE payments.payments (
    id             uuid        PRIMARY KEY,
    -- The order paid for; the uniqueness makes a redelivered OrderReserved
    -- record nothing (INSERT … ON CONFLICT (order_id) DO NOTHING).
    order_id       uuid        NOT NULL UNIQUE,
    status         text        NOT NULL
        CHECK (status IN ('SUCCEEDED', 'FAILED', 'REFUNDED')),
    amount_minor   bigint      NOT NULL CHECK (amount_minor >= 0),
    currency       char(3)     NOT NULL,
    payment_method text        NOT NULL,
    -- Why the payment failed or was refunded; empty otherwise.
    reason         text        NOT NULL DEFAULT '',
    -- The gateway's reference of the charge; empty when declined.
    gateway_ref    text        NOT NULL DEFAULT '',
    -- Gateway calls the charge took (transient failures and timeouts count).
    attempts       integer     NOT NULL CHECK (attempts >= 1),
    -- Payment aggregate version: 1 at SUCCEEDED/FAILED, 2 at REFUNDED.
    version        bigint      NOT NULL CHECK (version >= 1),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

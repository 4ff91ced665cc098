-- Poison rows: an outbox row the broker keeps refusing for a reason of its
-- own (too large, unknown topic, ...) is counted per attempt and, past the
-- relay's limit, set aside, so it stops blocking its whole source. Later
-- rows with the same partition key wait behind it (per-order order holds);
-- RelayAdmin.RetrySetAside puts it back in line.

ALTER TABLE orders.outbox
    ADD COLUMN attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error   text,
    ADD COLUMN set_aside_at timestamptz;

ALTER TABLE payments.outbox
    ADD COLUMN attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error   text,
    ADD COLUMN set_aside_at timestamptz;

-- Set-aside rows are few; the relay's fetch looks them up by key for every
-- candidate row ("is an earlier row of this key set aside?"), and
-- ListSetAside reads them in id order.
CREATE INDEX outbox_set_aside ON orders.outbox (partition_key, id)
    WHERE set_aside_at IS NOT NULL AND published_at IS NULL;
CREATE INDEX outbox_set_aside ON payments.outbox (partition_key, id)
    WHERE set_aside_at IS NOT NULL AND published_at IS NULL;

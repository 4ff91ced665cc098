-- The reads' condition on a row `o`: no earlier row of its key is set
-- aside (spliced into fetch.sql). The first part is evaluated once per
-- read: with no row set aside (the usual case) the per-row probe is
-- skipped. Both use the small partial index outbox_set_aside.
(
    NOT (SELECT EXISTS (
        SELECT 1 FROM {outbox}
        WHERE set_aside_at IS NOT NULL AND published_at IS NULL
    ))
    OR NOT EXISTS (
        SELECT 1
        FROM {outbox} AS aside
        WHERE aside.set_aside_at IS NOT NULL
          AND aside.published_at IS NULL
          AND aside.partition_key = o.partition_key
          AND aside.id < o.id
    )
)

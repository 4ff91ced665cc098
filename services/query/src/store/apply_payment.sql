-- Applies a payment event to its order's view, creating the row when the
-- payment arrives before the order's first event. The payment part moves
-- only forward: when the event's version $4 is newer than the view's.
INSERT INTO {views} AS v (order_id, payment_id, payment_status, payment_version)
VALUES ($1, $2, $3, $4)
ON CONFLICT (order_id) DO UPDATE SET
    payment_id = CASE WHEN EXCLUDED.payment_version > v.payment_version
                      THEN EXCLUDED.payment_id ELSE v.payment_id END,
    payment_status = CASE WHEN EXCLUDED.payment_version > v.payment_version
                          THEN EXCLUDED.payment_status ELSE v.payment_status END,
    payment_version = GREATEST(v.payment_version, EXCLUDED.payment_version)

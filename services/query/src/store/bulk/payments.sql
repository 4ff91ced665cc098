-- A batch's payment parts, one row per order (its newest payment state in
-- the batch), with the rules of apply_payment.sql.
INSERT INTO {views} AS v (order_id, payment_id, payment_status, payment_version)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[])
ON CONFLICT (order_id) DO UPDATE SET
    payment_id = CASE WHEN EXCLUDED.payment_version > v.payment_version
                      THEN EXCLUDED.payment_id ELSE v.payment_id END,
    payment_status = CASE WHEN EXCLUDED.payment_version > v.payment_version
                          THEN EXCLUDED.payment_status ELSE v.payment_status END,
    payment_version = GREATEST(v.payment_version, EXCLUDED.payment_version)

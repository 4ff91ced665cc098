-- Order service: the W3C trace context of the request that created each
-- order, so work started later without an incoming request or event (the
-- payment-deadline sweeper's cancellation) continues the order's trace
-- instead of starting a new one. NULL when the request carried none.

ALTER TABLE orders.orders
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate  text;

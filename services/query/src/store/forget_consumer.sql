-- Forgets a finished rebuild consumer's bookkeeping (its dead letters stay
-- for inspection).
DELETE FROM query.inbox WHERE consumer = '{consumer}';
DELETE FROM query.aggregate_versions WHERE consumer = '{consumer}';
DELETE FROM query.consumer_offsets WHERE consumer = '{consumer}';
DELETE FROM query.projection_progress WHERE consumer = '{consumer}';

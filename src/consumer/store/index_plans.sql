-- Every statement of a consumer's transaction finds its rows by key (an
-- aggregate's version, a partition's position and lease, an order's view
-- or row). A prepared statement's generic plan is made once, from the
-- statistics of the moment: made while aggregate_versions was small, the
-- acknowledgement's version update hashed a scan of every row of the
-- consumer, which a table of 3 000 rows made 2-8 ms per transaction on a
-- busy machine and grew with the table until its next analyze. Plans made
-- in these transactions use the indexes whatever the statistics say.
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_mergejoin = off;

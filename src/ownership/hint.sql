-- Sends $2 on channel $1 to the members listening there, that the shares
-- changed (a hint: each still rounds on its interval).
SELECT pg_notify($1, $2)
